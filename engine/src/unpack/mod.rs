//! The layer unpacker: one streaming pass per layer, read → decompress → hash →
//! extract, into a snapshot directory.
//!
//! [`apply_layer`] reads a layer blob to its very end, checks its magic number against
//! the [`Compression`] its media type declares, decompresses it, hashes the tar bytes
//! (the layer's *diff_id*, checked against the image config's `rootfs.diff_ids` when
//! [`ApplyOptions::expected_diff_id`] is given) and applies every tar entry to `root`.
//! Decompression and hashing run on a helper thread, extraction on the calling one.
//!
//! What is preserved: regular files, directories, symlinks, hardlinks, character and
//! block devices, fifos; permission bits including setuid, setgid and sticky; uid and
//! gid (numeric, no mapping); mtimes (and PAX atimes, to the nanosecond when PAX
//! records carry them); extended attributes from PAX `SCHILY.xattr.*` records.
//! Directory times are set after the whole layer, since creating children changes them.
//!
//! # Safety against hostile layers
//!
//! No entry can create, change or remove anything outside `root`:
//! - a name with a `..` component is refused (the whole layer fails, naming the entry);
//!   an absolute name is taken relative to `root`;
//! - every parent directory is opened with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`, so symlinks already in the tree resolve as if `root`
//!   were `/`: a link to `/` leads back to `root`, a link to `/host/dir` (even one
//!   planted in place of a directory earlier in the same layer) to `root/host/dir`;
//! - the entry itself is made with `*at` calls on that directory fd and its last name
//!   component only (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`),
//!   after removing whatever is in the way (never following it);
//! - a hardlink's target is resolved inside `root` the same way and must exist there;
//!   nothing outside can be linked in. (In overlay mode `root` holds this layer only,
//!   so a link to a lower layer's file is refused; layer writers — Docker, BuildKit,
//!   Go's `archive/tar` users — never emit one, writing the first name of a file in a
//!   layer as a regular file.)
//!
//! A layer that fails leaves a partial tree in `root`, and only there: the caller
//! discards the snapshot.
//!
//! # Whiteouts
//!
//! `.wh.<name>` and the opaque marker `.wh..wh..opq` never become files.
//! - [`WhiteoutMode::Overlay`]: `root` is the layer's own, initially empty, upper
//!   directory. `.wh.<name>` becomes a 0/0 character device `<name>`; an opaque
//!   directory gets `trusted.overlay.opaque=y`.
//! - [`WhiteoutMode::Native`]: `root` already holds the lower layers. `.wh.<name>`
//!   removes `<name>` (recursively); an opaque marker empties its directory.
//!
//! Whiteouts only hide what lower layers put there (OCI image spec): what this layer
//! itself puts at a whited-out name, or in an opaque directory, stays, whether it
//! comes before or after the whiteout in the stream. Native mode tracks the names the
//! layer creates, per directory (by device and inode, so paths reached through
//! symlinks count once); an opaque marker then removes every other child of its
//! directory, recursively keeping this layer's own. Overlay mode needs no tracking:
//! the upper directory holds only this layer, and whiteout devices never replace an
//! entry already there. aufs metadata (`.wh..wh.plnk`, …) is skipped.
//!
//! Extended attributes `trusted.overlay.*` and `user.overlay.*` carried by layer
//! entries are dropped (with a warning): they would steer overlayfs. An attribute the
//! filesystem does not support (`EOPNOTSUPP`), or a `security.*` attribute an LSM
//! refuses (`EPERM`), is skipped with a warning; any other failure fails the layer.
//!
//! # Parallelism and durability
//!
//! A call touches nothing outside its own `root` and changes no process-wide state
//! (no umask, no cwd), so independent layers — each overlay layer has its own
//! directory — may be unpacked concurrently from several threads. Native mode applies
//! layers in order to one root.
//!
//! Nothing is fsynced per file. The caller makes a finished snapshot durable with one
//! [`sync_root`] (`syncfs(2)`) before recording it as committed.

mod compression;
mod extract;
mod fs;
mod path;
mod stream;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::thread;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

pub use compression::Compression;

use crate::ids::Digest;
use crate::{EngineError, Result};
use extract::Extractor;
use stream::{produce, ChunkReader, ProduceError, CHUNKS};

/// How whiteouts are represented in the unpacked tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhiteoutMode {
    /// For an overlayfs lower/upper directory holding this layer only: whiteouts
    /// become 0/0 character devices, opaque directories get
    /// `trusted.overlay.opaque=y`.
    Overlay,
    /// For a plain directory holding all layers so far: whiteouts remove what they
    /// name; opaque markers empty their directory.
    Native,
}

/// Options of [`apply_layer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions<'a> {
    /// The layer's diff_id from the image config (`rootfs.diff_ids`). When given, a
    /// layer whose uncompressed bytes hash differently fails with
    /// [`EngineError::FailedPrecondition`] naming both digests.
    pub expected_diff_id: Option<&'a Digest>,
    /// Also hash the bytes as read (the blob's digest), reported in
    /// [`Applied::compressed`].
    pub hash_compressed: bool,
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream, every byte to the end.
    pub diff_id: Digest,
    /// sha256 of the bytes read, if [`ApplyOptions::hash_compressed`].
    pub compressed: Option<Digest>,
    /// Length of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Tar entries applied (whiteouts included; PAX and GNU extension headers not).
    pub entries: u64,
}

/// Applies one layer, read from `reader` and compressed as `compression` says, to the
/// directory `root`, in one streaming pass. See the [module docs](self) for what is
/// preserved, how whiteouts are written and how hostile entries are contained.
///
/// Errors: a stream that does not match its declared compression, a corrupt or
/// truncated stream, and a hostile or malformed entry give
/// [`EngineError::InvalidArgument`]; a diff_id mismatch
/// [`EngineError::FailedPrecondition`]; a failing `reader` or a full disk
/// [`EngineError::Unavailable`]. After an error `root` holds a partial layer and must
/// be discarded. A tar stream that stops without its end-of-archive marker is taken as
/// truncated, unless `expected_diff_id` is given: then the digest decides (Go's
/// `archive/tar`, which containerd uses, accepts such streams too).
pub fn apply_layer<R: Read + Send>(
    reader: R,
    compression: Compression,
    root: &Path,
    mode: WhiteoutMode,
    opts: &ApplyOptions<'_>,
) -> Result<Applied> {
    let root_fd = open_root(root, OFlag::O_PATH)?;
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(CHUNKS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(CHUNKS);
    let hash_compressed = opts.hash_compressed;
    let (consumed, produced) = thread::scope(|s| {
        let producer = thread::Builder::new()
            .name("berth-unpack".into())
            .spawn_scoped(s, move || {
                produce(reader, compression, hash_compressed, full_tx, empty_rx)
            })
            .map_err(|e| {
                EngineError::Unavailable(format!("cannot start the unpack thread: {e}"))
            })?;
        // Returns only after dropping its reader, which stops a producer still
        // waiting to hand over a chunk.
        let consumed = extract_all(ChunkReader::new(full_rx, empty_tx), root_fd, mode);
        let produced = producer
            .join()
            .map_err(|_| EngineError::Internal("the layer decompression thread panicked".into()))?;
        Ok::<_, EngineError>((consumed, produced))
    })?;
    let ((entries, ended_with_marker), produced) = match (consumed, produced) {
        // A bad stream explains whatever the extracting side saw.
        (_, Err(ProduceError::Failed(e))) | (Err(e), _) => return Err(e),
        (Ok(_), Err(ProduceError::Cancelled)) => {
            return Err(EngineError::Internal(
                "layer extraction finished but decompression was cancelled".into(),
            ))
        }
        (Ok(consumed), Ok(produced)) => (consumed, produced),
    };
    if let Some(want) = opts.expected_diff_id {
        if *want != produced.diff_id {
            return Err(EngineError::FailedPrecondition(format!(
                "layer diff_id mismatch: the image config expects {want} but the layer's \
                 uncompressed content is {}; the snapshot must be discarded",
                produced.diff_id
            )));
        }
    } else if !ended_with_marker {
        // With a matching diff_id the bytes are what the image's author published;
        // without one, a stream that stops without tar's end-of-archive marker is
        // taken as truncated.
        return Err(EngineError::InvalidArgument(
            "the layer's tar stream ends without its end-of-archive marker: the layer is truncated"
                .into(),
        ));
    }
    Ok(Applied {
        diff_id: produced.diff_id,
        compressed: produced.compressed,
        uncompressed_size: produced.uncompressed_size,
        entries,
    })
}

/// Flushes the filesystem holding `root` (`syncfs(2)`): one call makes a whole
/// unpacked snapshot durable, instead of an fsync per file.
pub fn sync_root(root: &Path) -> Result<()> {
    let fd = open_root(root, OFlag::O_RDONLY)?;
    nix::unistd::syncfs(&fd)
        .map_err(|e| EngineError::Unavailable(format!("syncfs {}: {}", root.display(), e.desc())))
}

/// Applies all entries; returns how many, and whether the stream had its
/// end-of-archive marker. Reads the stream to its end either way.
fn extract_all(reader: ChunkReader, root: OwnedFd, mode: WhiteoutMode) -> Result<(u64, bool)> {
    let corrupt = |e: std::io::Error| {
        EngineError::InvalidArgument(format!(
            "the layer's tar stream is corrupt or truncated: {e}"
        ))
    };
    let mut archive = tar::Archive::new(reader);
    let mut extractor = Extractor::new(root, mode);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        extractor.apply(&mut entry)?;
    }
    extractor.finish()?;
    let mut reader = archive.into_inner();
    // The tar reader stops at the first zero block without reading past it; if it
    // met the end of the stream instead, the marker was missing.
    let ended_with_marker = !reader.hit_eof();
    reader.drain();
    Ok((extractor.entries(), ended_with_marker))
}

fn open_root(root: &Path, access: OFlag) -> Result<OwnedFd> {
    open(
        root,
        access | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let msg = format!("snapshot root {}: {}", root.display(), e.desc());
        match e {
            Errno::ENOENT => EngineError::NotFound {
                kind: "snapshot directory",
                id: root.display().to_string(),
            },
            Errno::ENOTDIR => EngineError::InvalidArgument(msg),
            _ => EngineError::Internal(msg),
        }
    })
}
