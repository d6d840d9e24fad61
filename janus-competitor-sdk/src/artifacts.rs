//! Artifacts: bytes in, a verifiable descriptor out (contract.md §5).
//!
//! Up to 1,000,000 bytes an artifact travels inline as a base64 `data:` URL. Larger ones are
//! written to the artifact directory under their generated id and served by the SDK at
//! `/artifacts/<id>` (single byte ranges honoured). Their links start with the request's
//! artifact prefix: the gateway's `X-Janus-Artifact-Base` when the request came through a
//! gateway, so clients download through it, else the competitor's own base. File names on
//! disk are only ever ids the store generated itself and looked up in its own index, so no
//! request can name a path outside the directory.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use janus_core::contract::{DATA_URL_MAX_BYTES, DEFAULT_ARTIFACT_TTL_SECONDS};
use janus_core::{is_artifact_id, ArtifactDescriptor, CompetitorError};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Why an artifact could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactStoreError {
    /// Outside a request handler there is no artifact directory, so only `data:` URLs work.
    #[error(
        "artifact of {size} bytes is over the {DATA_URL_MAX_BYTES}-byte data: url limit and \
         no artifact store is available outside a request handler"
    )]
    NoStore {
        /// Size of the bytes.
        size: u64,
    },
    /// Writing the file failed.
    #[error("writing artifact {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl From<ArtifactStoreError> for CompetitorError {
    fn from(error: ArtifactStoreError) -> Self {
        CompetitorError::Internal(error.to_string())
    }
}

/// A stored file's metadata.
#[derive(Debug, Clone)]
pub(crate) struct StoredArtifact {
    pub(crate) path: PathBuf,
    pub(crate) mime_type: String,
    pub(crate) display_name: String,
    pub(crate) size: u64,
    pub(crate) expires: Instant,
}

/// The server's artifact directory and the index of the files it wrote there.
#[derive(Debug)]
pub(crate) struct ArtifactStore {
    dir: PathBuf,
    ttl: Duration,
    index: Mutex<HashMap<String, StoredArtifact>>,
    metrics: Arc<Metrics>,
}

impl ArtifactStore {
    pub(crate) fn new(dir: PathBuf, metrics: Arc<Metrics>) -> Self {
        ArtifactStore {
            dir,
            ttl: Duration::from_secs(DEFAULT_ARTIFACT_TTL_SECONDS),
            index: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredArtifact>> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored artifact `id`, if it exists and has not expired.
    pub(crate) fn get(&self, id: &str) -> Option<StoredArtifact> {
        if !is_artifact_id(id) {
            return None;
        }
        self.index()
            .get(id)
            .filter(|a| a.expires > Instant::now())
            .cloned()
    }

    /// Deletes expired files (or all of them), off the async threads.
    pub(crate) async fn sweep(&self, all: bool) {
        let now = Instant::now();
        let expired: Vec<PathBuf> = {
            let mut index = self.index();
            let ids: Vec<String> = index
                .iter()
                .filter(|(_, a)| all || a.expires <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| index.remove(id))
                .map(|a| a.path)
                .collect()
        };
        if expired.is_empty() {
            return;
        }
        let removed = tokio::task::spawn_blocking(move || {
            for path in &expired {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::debug!(path = %path.display(), error = %e, "removing artifact failed");
                }
            }
            expired.len()
        })
        .await;
        tracing::debug!(removed = removed.unwrap_or(0), "artifacts swept");
    }

    async fn write(
        &self,
        bytes: Vec<u8>,
        display_name: &str,
        mime_type: &str,
        prefix: &str,
    ) -> Result<ArtifactDescriptor, ArtifactStoreError> {
        let mut descriptor = ArtifactDescriptor::for_bytes(&bytes, display_name, mime_type, "");
        descriptor.url = format!("{prefix}{}", descriptor.id);
        descriptor.ttl_seconds = Some(self.ttl.as_secs());
        let path = self.dir.join(&descriptor.id);
        let dir = self.dir.clone();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &bytes))
            .await
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|result| result);
        written.map_err(|source| ArtifactStoreError::Io {
            path: path.clone(),
            source,
        })?;
        self.index().insert(
            descriptor.id.clone(),
            StoredArtifact {
                path,
                mime_type: descriptor.mime_type.clone(),
                display_name: display_name.to_owned(),
                size: descriptor.size_bytes,
                expires: Instant::now() + self.ttl,
            },
        );
        self.metrics.artifact_published(false);
        Ok(descriptor)
    }
}

/// Writes to `<path>.part` then renames, so a reader never sees half a file.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension("part");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&partial, path)
}

/// Where the artifacts of the request being handled go: the server's store and the URL
/// prefix their links start with — the gateway's `X-Janus-Artifact-Base` when the request
/// came through a gateway, else the competitor's own `<base>/artifacts/`.
///
/// Inside a handler, [`Artifacts::current`] returns it; clone it into tasks the handler
/// spawns (the current one is only visible on the handler's own task).
#[derive(Clone)]
pub struct Artifacts {
    store: Arc<ArtifactStore>,
    /// Ends with `/`; a served artifact's URL is this followed by its id.
    prefix: Arc<str>,
}

impl fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifacts")
            .field("dir", &self.store.dir)
            .field("prefix", &self.prefix)
            .finish()
    }
}

tokio::task_local! {
    static CURRENT: Artifacts;
}

impl Artifacts {
    /// `prefix` must end with `/` (the server makes sure).
    pub(crate) fn new(store: Arc<ArtifactStore>, prefix: String) -> Self {
        Artifacts {
            store,
            prefix: prefix.into(),
        }
    }

    /// The artifacts of the request being handled; `None` outside a handler's task.
    pub fn current() -> Option<Artifacts> {
        CURRENT.try_with(Artifacts::clone).ok()
    }

    /// Runs `future` with `self` as the current artifacts.
    pub(crate) async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Describes `bytes` (sha256, size, type, TTL) and makes them retrievable: inline as a
    /// `data:` URL up to 1,000,000 bytes, else as a file served at `/artifacts/<id>` and
    /// linked under the request's artifact prefix (through the gateway when there is one).
    pub async fn publish(
        &self,
        bytes: impl Into<Vec<u8>>,
        display_name: &str,
        mime_type: &str,
    ) -> Result<ArtifactDescriptor, ArtifactStoreError> {
        let bytes = bytes.into();
        if bytes.len() as u64 <= DATA_URL_MAX_BYTES {
            self.store.metrics.artifact_published(true);
            return Ok(inline(&bytes, display_name, mime_type));
        }
        self.store
            .write(bytes, display_name, mime_type, &self.prefix)
            .await
    }
}

fn inline(bytes: &[u8], display_name: &str, mime_type: &str) -> ArtifactDescriptor {
    let url = janus_core::data_url_encode(mime_type, bytes);
    ArtifactDescriptor::for_bytes(bytes, display_name, mime_type, url)
}

/// Builds an artifact descriptor from bytes, a display name and a MIME type, in one call.
///
/// Up to 1,000,000 bytes the artifact is a `data:` URL; larger ones are written to the
/// competitor's artifact directory, served at `/artifacts/<id>`, and linked through the
/// gateway (`X-Janus-Artifact-Base`) or at `<public base URL>/artifacts/<id>`. Send
/// the result with [`EventWriter::artifact`](janus_core::EventWriter::artifact).
///
/// Large artifacts need the request's store, which is reachable on the handler's own task;
/// from a task the handler spawned, use a clone of [`Artifacts::current`] instead. Outside
/// any handler (e.g. a unit test of your logic) small artifacts still work.
pub async fn publish_artifact(
    bytes: impl Into<Vec<u8>>,
    display_name: &str,
    mime_type: &str,
) -> Result<ArtifactDescriptor, ArtifactStoreError> {
    let bytes = bytes.into();
    match Artifacts::current() {
        Some(artifacts) => artifacts.publish(bytes, display_name, mime_type).await,
        None if bytes.len() as u64 <= DATA_URL_MAX_BYTES => {
            Ok(inline(&bytes, display_name, mime_type))
        }
        None => Err(ArtifactStoreError::NoStore {
            size: bytes.len() as u64,
        }),
    }
}

/// Reads `len` bytes of a stored artifact from `offset` in a blocking task and hands them
/// over in 64 KiB pieces; the small channel keeps at most a few pieces in memory when the
/// client reads slowly.
pub(crate) struct FileBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody")
            .field("remaining", &self.remaining)
            .finish()
    }
}

const FILE_PIECE: usize = 64 * 1024;

impl FileBody {
    pub(crate) fn open(path: PathBuf, offset: u64, len: u64) -> FileBody {
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).and_then(|mut file| {
                file.seek(io::SeekFrom::Start(offset))?;
                Ok(file)
            });
            let mut file = match file {
                Ok(file) => file.take(len),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let mut piece = vec![0u8; FILE_PIECE];
                match file.read(&mut piece) {
                    Ok(0) => return,
                    Ok(n) => {
                        piece.truncate(n);
                        // A send error means the client is gone: stop reading.
                        if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        FileBody { rx, remaining: len }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(piece))) => {
                self.remaining = self.remaining.saturating_sub(piece.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "artifact file is shorter than recorded",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_artifacts_work_outside_a_handler() {
        let descriptor = publish_artifact(b"hi".to_vec(), "hi.txt", "text/plain")
            .await
            .unwrap();
        assert!(descriptor.is_inline());
        let decoded = janus_core::data_url_decode(&descriptor.url).unwrap();
        descriptor.verify(&decoded.bytes).unwrap();
        let big = vec![0u8; DATA_URL_MAX_BYTES as usize + 1];
        assert!(matches!(
            publish_artifact(big, "big.bin", "application/octet-stream").await,
            Err(ArtifactStoreError::NoStore { .. })
        ));
    }
}
