//! [`export`]: images as a deterministic OCI image-layout tar.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::Serialize;

use super::resolve::Desc;
use super::MAX_INDEX_DEPTH;
use super::{is_attestation, read_document, tag_of, ANNOTATION_IMAGE_NAME, IMAGE_LAYOUT_VERSION};
use crate::content::Provider;
use crate::event::Target;
use crate::ids::{Digest, ImageName};
use crate::image::media;
use crate::image::{self, descriptor_digest, Parsed};
use crate::{EngineError, Result};

#[derive(Serialize)]
struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: &'static str,
}

#[derive(Serialize)]
struct IndexDoc<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Desc<'a>>,
}

/// Writes `images` and every blob they reach as an OCI image-layout tar to `out`:
/// `oci-layout`, `index.json`, `blobs/`, `blobs/sha256/` and the blobs.
///
/// `index.json` has one entry per image, sorted by name, carrying the
/// `io.containerd.image.name` annotation (the full name) and, when the name has a tag,
/// `org.opencontainers.image.ref.name` (the tag, as containerd and skopeo write it).
/// Blobs: each target, and from it (the present children of an index; attestations
/// and non-image entries skipped) every manifest, config and layer, each once, sorted
/// by digest, streamed from the store. Headers are fixed (mtime 0, uid/gid 0, mode
/// 0644 for files and 0755 for directories, no user names), so the same store and
/// images always give the same bytes.
///
/// Errors: `NotFound` if a target, config or layer is not in the store (a manifest an
/// index names but the store lacks is skipped, as the layout allows),
/// `FailedPrecondition` if a blob's size differs from what references it,
/// `InvalidArgument` if a document does not parse, `Internal` on IO errors (writing
/// to `out` included). Every blob is looked up before the first byte is written; a
/// failure after that (a blob removed meanwhile, an IO error) stops the output where
/// it is, without an end-of-archive marker, so a reader sees a truncated archive,
/// never a well-formed incomplete one. Hold a lease on the images while exporting.
pub fn export<W: Write>(
    store: &dyn Provider,
    images: &[(ImageName, Target)],
    out: W,
) -> Result<()> {
    let mut sorted: Vec<&(ImageName, Target)> = images.iter().collect();
    sorted.sort_by(|a, b| (&a.0, &a.1.digest).cmp(&(&b.0, &b.1.digest)));
    sorted.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);

    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for (name, target) in &sorted {
        collect(
            store,
            &target.media_type,
            &target.digest,
            target.size,
            &mut blobs,
            0,
        )
        .map_err(|e| match e {
            EngineError::InvalidArgument(m) => {
                EngineError::InvalidArgument(format!("image {name}: {m}"))
            }
            EngineError::FailedPrecondition(m) => {
                EngineError::FailedPrecondition(format!("image {name}: {m}"))
            }
            other => other,
        })?;
    }

    let manifests = sorted
        .iter()
        .map(|(name, target)| {
            let mut annotations = BTreeMap::new();
            annotations.insert(ANNOTATION_IMAGE_NAME, name.as_str());
            if let Some(tag) = tag_of(name) {
                annotations.insert(media::ANNOTATION_REF_NAME, tag);
            }
            Desc {
                media_type: &target.media_type,
                digest: &target.digest,
                size: target.size,
                annotations: Some(annotations),
            }
        })
        .collect();
    let index = serde_json::to_vec(&IndexDoc {
        schema_version: 2,
        media_type: media::OCI_INDEX,
        manifests,
    })
    .map_err(|e| EngineError::Internal(format!("encode index.json: {e}")))?;
    let layout = serde_json::to_vec(&Layout {
        image_layout_version: IMAGE_LAYOUT_VERSION,
    })
    .map_err(|e| EngineError::Internal(format!("encode oci-layout: {e}")))?;

    // On failure nothing more reaches `out`: tar's builder would otherwise end the
    // archive properly when dropped, and a reader would take a short archive for a
    // whole one.
    let broken = Cell::new(false);
    let mut builder = tar::Builder::new(Guarded {
        inner: out,
        broken: &broken,
    });
    match write_entries(&mut builder, store, &layout, &index, &blobs) {
        Ok(()) => builder
            .into_inner()
            .and_then(|mut out| out.flush())
            .map_err(write_error),
        Err(e) => {
            broken.set(true);
            drop(builder);
            Err(e)
        }
    }
}

fn write_error(e: io::Error) -> EngineError {
    EngineError::Internal(format!("write image archive: {e}"))
}

fn write_entries<W: Write>(
    builder: &mut tar::Builder<W>,
    store: &dyn Provider,
    layout: &[u8],
    index: &[u8],
    blobs: &BTreeMap<Digest, u64>,
) -> Result<()> {
    builder
        .append(&header("oci-layout", len64(layout), false)?, layout)
        .map_err(write_error)?;
    builder
        .append(&header("index.json", len64(index), false)?, index)
        .map_err(write_error)?;
    builder
        .append(&header("blobs/", 0, true)?, io::empty())
        .map_err(write_error)?;
    builder
        .append(&header("blobs/sha256/", 0, true)?, io::empty())
        .map_err(write_error)?;
    for (digest, size) in blobs {
        let blob = store.open(digest)?;
        if blob.size() != *size {
            return Err(size_mismatch(digest, *size, blob.size()));
        }
        let path = format!("blobs/sha256/{}", digest.hex());
        builder
            .append(
                &header(&path, *size, false)?,
                Exact {
                    inner: blob,
                    left: *size,
                },
            )
            .map_err(write_error)?;
    }
    Ok(())
}

/// The output, refusing every write once the export has failed.
struct Guarded<'a, W> {
    inner: W,
    broken: &'a Cell<bool>,
}

impl<W: Write> Write for Guarded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken.get() {
            return Err(io::Error::other("export failed"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.broken.get() {
            return Err(io::Error::other("export failed"));
        }
        self.inner.flush()
    }
}

fn len64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn size_mismatch(digest: &Digest, want: u64, got: u64) -> EngineError {
    EngineError::FailedPrecondition(format!(
        "blob {digest} is {got} bytes in the content store, but is referenced as {want} bytes"
    ))
}

/// A fixed header.
fn header(path: &str, size: u64, dir: bool) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(|e| EngineError::Internal(format!("tar header for {path}: {e}")))?;
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    Ok(h)
}

/// Adds the blob at `digest` and everything it reaches to `out`.
fn collect(
    store: &dyn Provider,
    media_type: &str,
    digest: &Digest,
    size: u64,
    out: &mut BTreeMap<Digest, u64>,
    depth: usize,
) -> Result<()> {
    if out.contains_key(digest) {
        return Ok(());
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(EngineError::InvalidArgument(format!(
            "index {digest} nests indexes more than {MAX_INDEX_DEPTH} deep"
        )));
    }
    check_size(store, digest, size)?;
    let bytes = read_document(store, digest)?;
    let parsed = image::parse(Some(media_type), &bytes)
        .map_err(|e| EngineError::InvalidArgument(format!("blob {digest}: {e}")))?;
    out.insert(digest.clone(), size);
    match parsed {
        Parsed::Manifest(m) => {
            for blob in std::iter::once(m.config()).chain(m.layers()) {
                check_size(store, &blob.digest, blob.size)?;
                out.insert(blob.digest.clone(), blob.size);
            }
        }
        Parsed::Index(index) => {
            for child in index.manifests() {
                let child_type = child.media_type().to_string();
                if is_attestation(child) || media::document_kind(&child_type).is_none() {
                    continue;
                }
                let child_digest = descriptor_digest(child)?;
                match store.info(&child_digest) {
                    Ok(_) => {}
                    // Platforms the store does not hold are left out.
                    Err(EngineError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                }
                collect(
                    store,
                    &child_type,
                    &child_digest,
                    child.size(),
                    out,
                    depth + 1,
                )?;
            }
        }
    }
    Ok(())
}

fn check_size(store: &dyn Provider, digest: &Digest, size: u64) -> Result<()> {
    let info = store.info(digest)?;
    if info.size != size {
        return Err(size_mismatch(digest, size, info.size));
    }
    Ok(())
}

/// Reads exactly `left` bytes from `inner`; an early end is an error (the tar would
/// otherwise be corrupt).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob ends {} bytes early", self.left),
            ));
        }
        self.left -= u64::try_from(n).unwrap_or(u64::MAX);
        Ok(n)
    }
}
