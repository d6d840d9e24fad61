//! The bearer-key check every server shares.
//!
//! Keys are compared as SHA-256 digests in constant time, so neither a prefix match nor a
//! key's length shows in the timing. The scheme is case-insensitive (RFC 7235) and a
//! request with more than one `Authorization` header is refused.

use http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// A configured key list is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The setting is present but holds no key (`''`, `','`, `' '`): refusing to run with
    /// authentication silently off.
    #[error("no key given: leave the setting unset for no authentication, or give at least one non-blank key")]
    Empty,
    /// One entry of the list is blank (`'a,,b'`).
    #[error("entry {0} of the key list is blank")]
    BlankEntry(usize),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing API key: send 'Authorization: Bearer <key>'")]
    Missing,
    /// Not `Bearer <token>`, or several `Authorization` headers.
    #[error("malformed Authorization header: send exactly one 'Authorization: Bearer <key>'")]
    Malformed,
    /// No configured key matches.
    #[error("invalid API key")]
    Invalid,
}

/// The accepted bearer keys (never empty).
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// Keys from a list (a file's array, or a split flag). Entries are trimmed; a list with
    /// no key or with a blank entry is an error.
    pub fn new<I, S>(keys: I) -> Result<ApiKeys, KeysError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut digests = Vec::new();
        let mut blank = None;
        for (i, key) in keys.into_iter().enumerate() {
            let key = key.as_ref().trim();
            if key.is_empty() {
                blank.get_or_insert(i + 1);
                continue;
            }
            digests.push(digest(key.as_bytes()));
        }
        match (digests.is_empty(), blank) {
            (true, _) => Err(KeysError::Empty),
            (false, Some(i)) => Err(KeysError::BlankEntry(i)),
            (false, None) => Ok(ApiKeys { digests }),
        }
    }

    /// Keys from a comma-separated setting (`--api-keys a,b`).
    pub fn parse(list: &str) -> Result<ApiKeys, KeysError> {
        ApiKeys::new(list.split(','))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always false: an `ApiKeys` holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Checks the request's `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let token = bearer_token(headers)?;
        let presented = digest(token.as_bytes());
        // Every key is compared, so the time does not depend on which one matched.
        let matched = self.digests.iter().fold(false, |found, key| {
            found | constant_time_eq(key, &presented)
        });
        if matched {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// The token of the single `Authorization: Bearer <token>` header (scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn with_auth(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn blank_lists_are_errors_not_no_auth() {
        assert_eq!(ApiKeys::parse("").unwrap_err(), KeysError::Empty);
        assert_eq!(ApiKeys::parse(",").unwrap_err(), KeysError::Empty);
        assert_eq!(ApiKeys::parse(" ").unwrap_err(), KeysError::Empty);
        assert_eq!(
            ApiKeys::parse("a,,b").unwrap_err(),
            KeysError::BlankEntry(2)
        );
        assert_eq!(ApiKeys::parse(" a , b ").unwrap().len(), 2);
    }

    #[test]
    fn scheme_is_case_insensitive_and_one_header_only() {
        let keys = ApiKeys::parse("k1,k2").unwrap();
        assert_eq!(keys.check(&with_auth(&["Bearer k1"])), Ok(()));
        assert_eq!(keys.check(&with_auth(&["BEARER k2"])), Ok(()));
        assert_eq!(keys.check(&with_auth(&["bearer   k1 "])), Ok(()));
        assert_eq!(
            keys.check(&with_auth(&["Bearer k3"])),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            keys.check(&with_auth(&["Bearer k"])),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            keys.check(&with_auth(&["Basic k1"])),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            keys.check(&with_auth(&["Bearer"])),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            keys.check(&with_auth(&["Bearer k1", "Bearer k1"])),
            Err(AuthError::Malformed)
        );
        assert_eq!(keys.check(&HeaderMap::new()), Err(AuthError::Missing));
        assert!(!format!("{keys:?}").contains("k1"));
    }
}
