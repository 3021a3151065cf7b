//! [`LocalStore`]: the content store on a local directory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::ingest::{self, io_error, Locked, DATA, LOCK_ATTEMPTS};
use super::{
    Blob, Expected, Info, IngestManager, IngestStatus, Ingester, Manager, Provider, Writer,
};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// The content store on a directory (`<berth root>/content`); see the
/// [module documentation](super) for its layout and guarantees. Cheap to clone; any
/// number of clones, threads or processes may use one directory at once.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
}

impl LocalStore {
    /// Opens the store at `root`, creating `blobs/sha256/` and `ingest/` if needed, and
    /// cleans what a crash can leave in `ingest/` (half-deleted or never set-up ingests;
    /// interrupted writes are kept, to be resumed or aborted).
    pub fn open(root: &Path) -> Result<LocalStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(|e| io_error("create directory", dir, &e))?;
        }
        ingest::sweep(&ingest)?;
        Ok(LocalStore {
            root: root.to_path_buf(),
            blobs,
            ingest,
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    fn metadata(&self, digest: &Digest) -> Result<(PathBuf, fs::Metadata)> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok((path, m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(digest)),
            Err(e) => Err(io_error("stat", &path, &e)),
        }
    }

    fn ingest_status(&self, dir: &Path) -> Result<Option<IngestStatus>> {
        let Some(meta) = ingest::read_meta(dir)? else {
            return Ok(None);
        };
        let data = dir.join(DATA);
        let (offset, updated_at) = match fs::metadata(&data) {
            // File times come from a coarse clock: never before the start.
            Ok(m) => (m.len(), ingest::mtime(&m).max(meta.started_at)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, meta.started_at),
            Err(e) => return Err(io_error("stat", &data, &e)),
        };
        Ok(Some(IngestStatus {
            reference: meta.reference,
            offset,
            total: meta.expected.as_ref().map(|e| e.size),
            expected: meta.expected.map(|e| e.digest),
            started_at: meta.started_at,
            updated_at,
        }))
    }
}

impl Provider for LocalStore {
    fn info(&self, digest: &Digest) -> Result<Info> {
        let (_, meta) = self.metadata(digest)?;
        Ok(Info {
            digest: digest.clone(),
            size: meta.len(),
            committed_at: ingest::mtime(&meta),
        })
    }

    fn open(&self, digest: &Digest) -> Result<Blob> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(digest)),
            Err(e) => return Err(io_error("open", &path, &e)),
        };
        let size = file
            .metadata()
            .map_err(|e| io_error("stat", &path, &e))?
            .len();
        Ok(Blob {
            file,
            digest: digest.clone(),
            size,
        })
    }
}

impl Ingester for LocalStore {
    fn writer(&self, reference: &str, expected: Option<Expected>) -> Result<Writer> {
        ingest::validate_ref(reference)?;
        if let Some(exp) = &expected {
            if self.blob_path(&exp.digest).exists() {
                return Err(EngineError::AlreadyExists {
                    kind: "blob",
                    id: exp.digest.to_string(),
                });
            }
        }
        Writer::open(&self.ingest, &self.blobs, reference, expected)
    }
}

impl Manager for LocalStore {
    fn list(&self) -> Result<Vec<Info>> {
        let entries =
            fs::read_dir(&self.blobs).map_err(|e| io_error("read directory", &self.blobs, &e))?;
        let mut infos = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read directory", &self.blobs, &e))?;
            let name = entry.file_name();
            let Ok(digest) = Digest::parse(&format!("sha256:{}", name.to_string_lossy())) else {
                tracing::warn!(path = %entry.path().display(), "stray file among blobs");
                continue;
            };
            match self.info(&digest) {
                Ok(info) => infos.push(info),
                // Deleted since we read the directory.
                Err(EngineError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        infos.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(infos)
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(digest)),
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        ingest::sync_dir(&self.blobs)?;
        tracing::debug!(%digest, "blob deleted");
        Ok(())
    }

    fn verify(&self, digest: &Digest) -> Result<()> {
        let mut blob = self.open(digest)?;
        let path = self.blob_path(digest);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match blob.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read", &path, &e)),
            }
        }
        let actual = Digest::from_sha256(hasher.finalize().as_slice());
        if actual != *digest {
            return Err(EngineError::Internal(format!(
                "blob {digest} is corrupt: {} hashes to {actual}",
                path.display()
            )));
        }
        Ok(())
    }
}

impl IngestManager for LocalStore {
    fn status(&self, reference: &str) -> Result<IngestStatus> {
        ingest::validate_ref(reference)?;
        let dir = self.ingest.join(ingest::dir_name(reference));
        self.ingest_status(&dir)?
            .ok_or_else(|| ingest_not_found(reference))
    }

    fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| io_error("read directory", &self.ingest, &e))?;
        let mut statuses = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read directory", &self.ingest, &e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Some(status) = self.ingest_status(&entry.path())? {
                statuses.push(status);
            }
        }
        statuses.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(statuses)
    }

    fn abort(&self, reference: &str) -> Result<()> {
        ingest::validate_ref(reference)?;
        let dir = self.ingest.join(ingest::dir_name(reference));
        for _ in 0..LOCK_ATTEMPTS {
            if !dir.exists() {
                return Err(ingest_not_found(reference));
            }
            match ingest::lock(&dir, false)? {
                Locked::Held(_lock) => {
                    ingest::discard(&self.ingest, &dir)?;
                    tracing::debug!(reference, "ingest aborted");
                    return Ok(());
                }
                Locked::Busy => {
                    return Err(EngineError::Unavailable(format!(
                        "ingest {reference:?} is locked by another writer"
                    )))
                }
                Locked::Gone => {}
            }
        }
        Err(EngineError::Unavailable(format!(
            "ingest {reference:?} keeps changing while it is aborted"
        )))
    }
}

fn not_found(digest: &Digest) -> EngineError {
    EngineError::NotFound {
        kind: "blob",
        id: digest.to_string(),
    }
}

fn ingest_not_found(reference: &str) -> EngineError {
    EngineError::NotFound {
        kind: "ingest",
        id: reference.to_string(),
    }
}
