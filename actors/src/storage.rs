//! The daemon's stores: the content store and the snapshotter, opened once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_engine::content::LocalStore;
use berth_engine::snapshot::{Native, Overlay, Snapshotter};
use berth_engine::EngineError;

/// Which snapshotter to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotterKind {
    /// overlayfs when the kernel has it, else native.
    Auto,
    /// overlayfs.
    Overlay,
    /// The copying fallback.
    Native,
}

impl SnapshotterKind {
    /// Parses `auto`, `overlayfs` (or `overlay`) and `native`.
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        match raw {
            "auto" => Ok(SnapshotterKind::Auto),
            "overlayfs" | "overlay" => Ok(SnapshotterKind::Overlay),
            "native" => Ok(SnapshotterKind::Native),
            other => Err(EngineError::InvalidArgument(format!(
                "unknown snapshotter {other:?}: use overlayfs, native or auto"
            ))),
        }
    }
}

/// The content store and the snapshotter.
#[derive(Clone)]
pub struct Stores {
    /// `<root>`.
    pub root: PathBuf,
    /// `<root>/content`.
    pub content: LocalStore,
    /// `<root>/snapshots/<name>`.
    pub snapshotter: Arc<dyn Snapshotter>,
    /// Held while deciding whether a blob exists and while garbage collection deletes
    /// one, so a blob found present is never deleted under an import that relies on it.
    pub content_gate: Arc<Mutex<()>>,
}

impl Stores {
    /// Opens (creating) the stores under `root`.
    pub fn open(root: &Path, kind: SnapshotterKind) -> Result<Stores, EngineError> {
        let content = LocalStore::open(&root.join("content"))?;
        let overlay = match kind {
            SnapshotterKind::Overlay => true,
            SnapshotterKind::Native => false,
            SnapshotterKind::Auto => berth_engine::mount::overlay_supported(),
        };
        let snapshotter: Arc<dyn Snapshotter> = if overlay {
            Arc::new(Overlay::new(root.join("snapshots").join("overlayfs"))?)
        } else {
            Arc::new(Native::new(root.join("snapshots").join("native"))?)
        };
        Ok(Stores {
            root: root.to_path_buf(),
            content,
            snapshotter,
            content_gate: Arc::new(Mutex::new(())),
        })
    }

    /// Reads a small document blob (manifest, index, config) whole; larger than
    /// [`berth_engine::archive::MAX_DOCUMENT_SIZE`] is refused (such blobs are layers,
    /// never documents).
    pub fn read_document(
        &self,
        digest: &berth_engine::ids::Digest,
    ) -> Result<Vec<u8>, EngineError> {
        use berth_engine::content::Provider;
        use std::io::Read;
        let blob = self.content.open(digest)?;
        if blob.size() > berth_engine::archive::MAX_DOCUMENT_SIZE {
            return Err(EngineError::InvalidArgument(format!(
                "blob {digest} is {} bytes: too large for a manifest, index or config",
                blob.size()
            )));
        }
        let mut buf = Vec::new();
        blob.into_file()
            .read_to_end(&mut buf)
            .map_err(|e| EngineError::Internal(format!("reading blob {digest}: {e}")))?;
        Ok(buf)
    }

    /// Takes the content gate.
    pub fn gate(&self) -> std::sync::MutexGuard<'_, ()> {
        self.content_gate.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs blocking work off the actor threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("blocking task failed: {e}")))?
}
