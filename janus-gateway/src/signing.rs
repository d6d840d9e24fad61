//! Stateless signed tokens: the platform grants and the artifact capabilities.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, purpose 0x00 payload))`.
//! The purpose is a domain separator, so a grant can never be replayed as a capability (or
//! the other way round). Keys come from `--platform-key-file`: one key per line, the first
//! signs, every key verifies, so replicas sharing the file verify each other's tokens and
//! a key can be rotated by putting the new one first and dropping the old one later.
//! Payloads are the callers' business (they encode their own fields and expiry); this module
//! only guarantees that a verified payload was produced by a holder of one of the keys.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Fewer bytes than this in a key line is refused: a short key is a guessable key.
pub const MIN_KEY_BYTES: usize = 32;

/// Largest token accepted for verification; anything longer is malformed, not expensive.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Why a token did not verify. The messages name no key and echo no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not two base64url parts, too long, or not decodable.
    #[error("malformed token")]
    Malformed,
    /// Well formed, but no key produced this signature (forged, tampered, other purpose).
    #[error("token signature does not verify")]
    BadSignature,
}

/// The HMAC key ring. `Debug` prints the number of keys, never a key.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SigningKeys {
    /// Keys from text: one per line, surrounding whitespace trimmed, blank lines and lines
    /// starting with `#` ignored. At least one key, each at least [`MIN_KEY_BYTES`] long.
    pub fn from_lines(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "key on line {} is {} bytes; at least {MIN_KEY_BYTES} are required",
                    index + 1,
                    line.len()
                ));
            }
            keys.push(line.as_bytes().to_vec());
        }
        if keys.is_empty() {
            return Err("no key in the file (one key per line, the first signs)".to_owned());
        }
        Ok(Self { keys })
    }

    /// Keys from a file (see [`SigningKeys::from_lines`]); the error names the file, not
    /// its contents.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Self::from_lines(&text).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// A random key for a single replica when no key file is configured: tokens then verify
    /// only on this process and die with it (documented for operators running replicas).
    pub fn ephemeral() -> Result<Self, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|error| format!("no randomness: {error}"))?;
        Ok(Self {
            keys: vec![URL_SAFE_NO_PAD.encode(key).into_bytes()],
        })
    }

    fn mac(key: &[u8], purpose: &str, payload: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// Signs `payload` for `purpose` with the first key.
    pub fn sign(&self, purpose: &str, payload: &[u8]) -> String {
        let signature = Self::mac(&self.keys[0], purpose, payload)
            .finalize()
            .into_bytes();
        let mut token = URL_SAFE_NO_PAD.encode(payload);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// The payload of `token` if one of the keys signed it for `purpose`; constant-time
    /// comparison of the signature.
    pub fn verify(&self, purpose: &str, token: &str) -> Result<Vec<u8>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        for key in &self.keys {
            if Self::mac(key, purpose, &payload)
                .verify_slice(&signature)
                .is_ok()
            {
                return Ok(payload);
            }
        }
        Err(TokenError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn signs_and_verifies_round_trip() {
        let keys = SigningKeys::from_lines(KEY_A).unwrap();
        let token = keys.sign("grant", b"req-1|echo|123");
        assert_eq!(keys.verify("grant", &token).unwrap(), b"req-1|echo|123");
    }

    #[test]
    fn purpose_separates_token_kinds() {
        let keys = SigningKeys::from_lines(KEY_A).unwrap();
        let token = keys.sign("grant", b"x");
        assert_eq!(
            keys.verify("artifact", &token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_and_other_key_fail() {
        let a = SigningKeys::from_lines(KEY_A).unwrap();
        let b = SigningKeys::from_lines(KEY_B).unwrap();
        let token = a.sign("grant", b"req-1|echo");
        assert_eq!(b.verify("grant", &token), Err(TokenError::BadSignature));
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(b"req-1|other"));
        assert_eq!(a.verify("grant", &forged), Err(TokenError::BadSignature));
        assert_eq!(a.verify("grant", "no-dot"), Err(TokenError::Malformed));
        assert_eq!(a.verify("grant", "a.!!"), Err(TokenError::Malformed));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(a.verify("grant", &huge), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_first_key_signs_all_verify() {
        let old = SigningKeys::from_lines(KEY_A).unwrap();
        let rotated = SigningKeys::from_lines(&format!("{KEY_B}\n{KEY_A}\n")).unwrap();
        let old_token = old.sign("grant", b"p");
        assert_eq!(rotated.verify("grant", &old_token).unwrap(), b"p");
        let new_token = rotated.sign("grant", b"p");
        assert_eq!(
            old.verify("grant", &new_token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn key_file_rules() {
        assert!(SigningKeys::from_lines("").is_err());
        assert!(SigningKeys::from_lines("# only a comment\n\n").is_err());
        let short = SigningKeys::from_lines("short").unwrap_err();
        assert!(short.contains("line 1"), "{short}");
        assert!(
            !short.contains("short"),
            "the key must not be echoed: {short}"
        );
        let keys = SigningKeys::from_lines(&format!("# comment\n  {KEY_A}  \n")).unwrap();
        assert_eq!(format!("{keys:?}"), "SigningKeys { keys: 1 }");
        let eph = SigningKeys::ephemeral().unwrap();
        let token = eph.sign("grant", b"p");
        assert!(eph.verify("grant", &token).is_ok());
    }
}
