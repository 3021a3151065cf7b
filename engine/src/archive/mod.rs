//! Image archives: import of OCI image-layout archives and `docker save` archives into
//! the content store, and export of images as OCI image-layout archives.
//!
//! - [`import`]: reads a tar stream **once, sequentially** (it may arrive over HTTP and
//!   be large), writes every blob into the content store through an ingest, then checks
//!   what the archive's images reference and names them. It returns the
//!   [`Imported`] images; it creates no image records and appends no events: the
//!   caller does, through the [`BlobEvent`] callback and after unpacking.
//! - [`export`]: writes images and every blob they reach as a deterministic OCI
//!   image-layout tar: the same store and images give the same bytes, so export →
//!   import → export is byte-identical.
//!
//! # Formats read
//!
//! - **OCI image layout** (`skopeo copy … oci-archive:`, `umoci`, containerd,
//!   berth's [`export`]): `oci-layout` (its `imageLayoutVersion` must be `1.0.0` when it
//!   is present), `index.json`, `blobs/sha256/<hex>`. Each blob is ingested with the
//!   digest its name states and the size its tar header states, so the store verifies
//!   it before it can be committed.
//! - **`docker save`**, classic: `manifest.json` (`[{Config, RepoTags, Layers}]`),
//!   `<hex>.json` configs, `<dir>/layer.tar` layers (possibly symlinks to another
//!   layer), `<dir>/json`, `<dir>/VERSION` and `repositories` (ignored); the
//!   containers/image form (`skopeo copy … docker-archive:`, `podman save`) with
//!   `<hex>.tar` layers is read as well. Their blobs are ingested without an expected
//!   digest (the digest computed while writing identifies them), and an OCI image
//!   manifest is synthesized for each image (config
//!   [`media::OCI_CONFIG`], layers
//!   [`media::OCI_LAYER_TAR`], or the gzip / zstd
//!   type when a layer is compressed), and written into the store too.
//! - **`docker save`, Docker 25+**: an OCI layout plus `manifest.json`. When
//!   `index.json` is present the OCI layout is what is imported; `manifest.json` only
//!   supplies names (`RepoTags`, matched by config digest) for `index.json` entries that
//!   carry none.
//!
//! Entry paths may start with `./`. Refused, with an error naming the entry: absolute
//! paths and `..` components; files other than the ones above; directories other than
//! `blobs/`, `blobs/sha256/` and top-level ones (docker's layer directories); devices,
//! fifos and links other than docker's `layer.tar` / `<hex>.tar` links (which must stay
//! inside the archive); `blobs/<algorithm>/` for any algorithm but sha256. A stream
//! that ends before the tar's end-of-archive marker is truncated, even at an entry
//! boundary.
//!
//! # Naming rules (import)
//!
//! 1. With [`ImportOptions::name`]: the archive must hold exactly one image (one
//!    distinct top-level target in `index.json`, one entry in `manifest.json`); it
//!    gets that name and only that name (the archive's own names are ignored). An
//!    archive with several images and a name is refused.
//! 2. Without: each `index.json` entry is named by its `io.containerd.image.name`
//!    annotation, else by its `org.opencontainers.image.ref.name` annotation if that is
//!    a full name (it contains `/`, `:` or `@`; a bare word such as `latest` is a
//!    tag), else by the `RepoTags` of a `manifest.json` entry with the same config
//!    (Docker 25+). A classic docker archive's images are named by their `RepoTags`.
//!    Names are normalised by [`ImageName::parse`] (`:latest` added when untagged; no
//!    registry is defaulted, so docker's `busybox:latest` stays `busybox:latest`).
//!    An image left without a name is refused, asking for `?name=`; so is a name given
//!    to two different images.
//!
//! # What a failed import leaves behind
//!
//! Every failure is an error and the import commits nothing *for the bad part*:
//! - the blob being written when the failure happens (a truncated entry, a digest or
//!   size that does not match, a store error) is never committed, and its ingest is
//!   aborted: no ingest of the import is left in the store;
//! - blobs fully written and verified *before* the failure stay in the store as
//!   unreferenced content (each was reported with [`BlobEvent::Committed`]); no image
//!   refers to them and garbage collection removes them once the caller's lease is
//!   gone. Checks of manifests and configs run after the stream, so a bad manifest
//!   leaves the archive's verified blobs behind in the same way, but never a
//!   synthesized docker manifest (those are written only after every check passed).
//!
//! Bad input is [`EngineError::InvalidArgument`](crate::EngineError) with a message
//! naming the entry or digest; a failing store is `Internal` (or `Unavailable` when
//! the disk is full); a failing callback's error is returned as it is.

mod export;
mod import;
mod resolve;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Component, Path};

use crate::content::Provider;
use crate::event::Target;
use crate::ids::{Digest, ImageName};
use crate::image::media;
use crate::{EngineError, Result};

pub use export::export;
pub use import::import;

/// Annotation naming the image (full name) of an `index.json` entry, as containerd and
/// Docker write it.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// The `imageLayoutVersion` of the `oci-layout` file berth reads and writes.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";

/// Largest JSON document read into memory: `index.json`, `manifest.json`,
/// `oci-layout`, image manifests, indexes and configs.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// How deep indexes may nest in an archive.
const MAX_INDEX_DEPTH: usize = 8;

/// What an import is told besides the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The name to give the archive's single image, instead of the names it carries
    /// (see the [naming rules](self#naming-rules-import)).
    pub name: Option<ImageName>,
    /// Prefix of the ingest refs of this import, unique per import (e.g.
    /// `import-<id>`). Refs are `<prefix>-<digest>` for blobs whose digest is known
    /// before writing, `<prefix>-entry-<n>` for the others.
    pub ingest_prefix: String,
}

/// What [`import`] reports about each blob it brings into the store, so the caller
/// can protect it (a lease) and journal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobEvent {
    /// The blob is about to be written: reported before it can appear in the store
    /// (before the write when the archive states its digest, after the write and
    /// before the commit otherwise). It may still fail verification and never appear.
    Committing {
        /// Its digest.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// The blob is in the store, verified and durable (written now, or already there:
    /// see `created`).
    Committed {
        /// Its digest.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// Whether this import wrote it (false: the store had it already).
        created: bool,
    },
}

/// The outcome of a successful [`import`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// The named images, in archive order: each name once.
    pub images: Vec<(ImageName, Target)>,
    /// Every blob reported through [`BlobEvent::Committed`] (the archive's blobs and
    /// the manifests synthesized for a docker archive), in the order they were
    /// committed, each once.
    pub blobs: Vec<Digest>,
    /// The single-platform image manifests that were checked (config parsed, every
    /// layer present), each once, in the order met. Manifests an index names but the
    /// archive does not hold are not listed (an index may name platforms it does not
    /// include).
    pub manifests: Vec<Digest>,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// Normalises a path from an archive: `./` and `.` components dropped, separators
/// collapsed; `..`, absolute paths and non-UTF-8 names refused. Returns the
/// components.
fn normalise(path: &Path) -> Result<Vec<String>> {
    let shown = path.display();
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s.to_string()),
                None => {
                    return Err(invalid(format!(
                        "archive entry {shown:?}: name is not UTF-8"
                    )))
                }
            },
            Component::ParentDir => {
                return Err(invalid(format!(
                    "archive entry {shown:?}: '..' components are not allowed"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!(
                    "archive entry {shown:?}: absolute paths are not allowed"
                )))
            }
        }
    }
    Ok(parts)
}

/// Reads a whole document blob (at most [`MAX_DOCUMENT_SIZE`] bytes).
fn read_document(store: &dyn Provider, digest: &Digest) -> Result<Vec<u8>> {
    let blob = store.open(digest)?;
    if blob.size() > MAX_DOCUMENT_SIZE {
        return Err(invalid(format!(
            "blob {digest} is {} bytes; image documents are limited to {MAX_DOCUMENT_SIZE}",
            blob.size()
        )));
    }
    let mut bytes = Vec::new();
    blob.take(MAX_DOCUMENT_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| EngineError::Internal(format!("read blob {digest}: {e}")))?;
    Ok(bytes)
}

/// Whether an index entry is not a runnable image: a buildx attestation.
fn is_attestation(d: &oci_spec::image::Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(media::DOCKER_REFERENCE_TYPE))
}

/// The tag of a name (`v1` of `a/b:v1`, `v1` of `a:v1@sha256:…`), if it has one.
fn tag_of(name: &ImageName) -> Option<&str> {
    let s = name.as_str();
    let s = s.split_once('@').map_or(s, |(r, _)| r);
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    s[last_slash..].rfind(':').map(|i| &s[last_slash + i + 1..])
}
