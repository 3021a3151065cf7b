//! The OCI image model: image indexes and manifests (OCI and Docker schema 2),
//! configurations, chain ids and platforms. Built on [`oci_spec::image`]; raw bytes are
//! parsed and validated here once, so past [`parse`] every digest is a sha256
//! [`Digest`], every layer media type is one berth can apply and the schema version is 2.
//!
//! - [`media`]: the media type strings (OCI, Docker, schema 1) and what each one is.
//! - [`parse`]: bytes (+ the media type they were served as) → [`Parsed::Index`] or
//!   [`Parsed::Manifest`]. Schema 1 is refused with [`media::SCHEMA1_REFUSAL`].
//! - [`Config`]: the image configuration: diff ids, run defaults, platform.
//! - [`chain_ids`]: the OCI chain ids of a layer stack.
//! - [`Platform`] and [`select`]: the host's platform, matching as containerd's
//!   `platforms.Only()`, and choosing a manifest from an index.
//!
//! oci-spec parses Docker schema 2 manifests and manifest lists into the same
//! [`ImageManifest`] / [`ImageIndex`] types (the shapes are the same); their media
//! types come out as `MediaType::Other(..)`, so this module compares media types as
//! strings (the constants in [`media`]).

pub mod media;

mod chain;
mod config;
mod platform;

#[cfg(test)]
mod tests;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::{Map, Value};

pub use chain::chain_ids;
pub use config::Config;
pub use platform::{select, Platform};

use crate::ids::Digest;
use crate::{EngineError, Result};
use media::DocumentKind;

/// A parsed and validated image document.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An OCI image index or a Docker manifest list.
    Index(Index),
    /// An OCI image manifest or a Docker schema 2 manifest.
    Manifest(Manifest),
}

impl Parsed {
    /// The document's media type (as it declares itself, else as it was served).
    pub fn media_type(&self) -> &str {
        match self {
            Parsed::Index(i) => i.media_type(),
            Parsed::Manifest(m) => m.media_type(),
        }
    }
}

/// A validated image index or manifest list.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    media_type: String,
    inner: Box<ImageIndex>,
}

impl Index {
    /// [`media::OCI_INDEX`] or [`media::DOCKER_MANIFEST_LIST`].
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The entries, in document order. Their digests are valid sha256 digests (see
    /// [`descriptor_digest`]); their media types may be anything (artifacts, nested
    /// indexes), [`select`] picks only runnable images.
    pub fn manifests(&self) -> &[Descriptor] {
        self.inner.manifests()
    }

    /// The best manifest for `wanted` (see [`select`]).
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor> {
        select(self, wanted)
    }

    /// The index as oci-spec models it.
    pub fn oci(&self) -> &ImageIndex {
        &self.inner
    }
}

/// A reference to a blob from a manifest: its media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Media type (a config or layer type; see [`media`]).
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Where a non-distributable / foreign layer may be fetched from.
    pub urls: Vec<String>,
}

/// A validated single-platform image manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    media_type: String,
    inner: Box<ImageManifest>,
    config: BlobRef,
    layers: Vec<BlobRef>,
}

impl Manifest {
    /// [`media::OCI_MANIFEST`] or [`media::DOCKER_MANIFEST`].
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The configuration blob (its media type is an image config type).
    pub fn config(&self) -> &BlobRef {
        &self.config
    }

    /// The layers, bottom first (each media type a known layer type).
    pub fn layers(&self) -> &[BlobRef] {
        &self.layers
    }

    /// The manifest as oci-spec models it.
    pub fn oci(&self) -> &ImageManifest {
        &self.inner
    }
}

/// The digest of a descriptor as berth's validated sha256 [`Digest`].
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Digest::parse(d.digest().as_ref())
}

/// `Content-Type`s that say nothing about the document: treated as no hint.
const GENERIC_TYPES: &[&str] = &[
    "application/json",
    "application/octet-stream",
    "binary/octet-stream",
    "text/plain",
];

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

fn schema1_refusal() -> EngineError {
    invalid(media::SCHEMA1_REFUSAL)
}

/// The kind of a media type that must name an image document.
fn kind_of(media_type: &str, what: &str) -> Result<DocumentKind> {
    match media::document_kind(media_type) {
        Some(DocumentKind::Schema1) => Err(schema1_refusal()),
        Some(k) => Ok(k),
        None => Err(invalid(format!(
            "{what} media type {media_type:?} is not an image index or manifest \
             (expected OCI or Docker schema 2)"
        ))),
    }
}

/// Parses an image index or manifest. `media_type_hint` is the media type it was
/// served or referenced as (a descriptor's `mediaType`, a registry's `Content-Type`);
/// without one, or with a generic one (`application/json`), the kind is read from the
/// document's own `mediaType`, else from its shape (`manifests` → index, `config` /
/// `layers` → manifest). Every failure is [`EngineError::InvalidArgument`]:
/// unknown media types are named, schema 1 documents are refused with
/// [`media::SCHEMA1_REFUSAL`], and the document must have `schemaVersion` 2, sha256
/// digests, non-negative sizes, a known config media type and known layer media types.
pub fn parse(media_type_hint: Option<&str>, bytes: &[u8]) -> Result<Parsed> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("image manifest or index is not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(invalid("image manifest or index must be a JSON object"));
    };
    let schema_version = obj.get("schemaVersion");
    if schema_version.and_then(Value::as_u64) == Some(1) {
        return Err(schema1_refusal());
    }
    let declared = match obj.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(media::essence(s)),
        Some(_) => return Err(invalid("image document's mediaType must be a string")),
    };
    let hint = media_type_hint
        .map(media::essence)
        .filter(|h| !h.is_empty() && !GENERIC_TYPES.contains(&h.as_str()));

    let (kind, media_type) = match (hint, declared) {
        (Some(hint), declared) => {
            let kind = kind_of(&hint, "served")?;
            match declared {
                None => (kind, hint),
                Some(d) => {
                    let dk = kind_of(&d, "declared")?;
                    if dk != kind {
                        return Err(invalid(format!(
                            "document declares media type {d:?} but was served as {hint:?}"
                        )));
                    }
                    (kind, d)
                }
            }
        }
        (None, Some(d)) => (kind_of(&d, "declared")?, d),
        (None, None) => {
            let is_index = obj.contains_key("manifests");
            let is_manifest = obj.contains_key("layers") || obj.contains_key("config");
            match (is_index, is_manifest) {
                (true, false) => (DocumentKind::Index, media::OCI_INDEX.to_string()),
                (false, true) => (DocumentKind::Manifest, media::OCI_MANIFEST.to_string()),
                (true, true) => {
                    return Err(invalid(
                        "document has both manifests and layers: not an index nor a manifest",
                    ))
                }
                (false, false) => {
                    return Err(invalid(
                        "document has no mediaType and neither manifests nor layers: \
                         not an image index or manifest",
                    ))
                }
            }
        }
    };

    match schema_version {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) => {
            return Err(invalid(format!(
                "schemaVersion {v} is not supported; image documents must have schemaVersion 2"
            )))
        }
        None => return Err(invalid("image document has no schemaVersion (must be 2)")),
    }

    match kind {
        DocumentKind::Index => parse_index(obj, value.clone(), media_type).map(Parsed::Index),
        DocumentKind::Manifest => {
            parse_manifest(obj, value.clone(), media_type).map(Parsed::Manifest)
        }
        DocumentKind::Schema1 => Err(schema1_refusal()),
    }
}

/// Checks the descriptor at `v` has a non-negative integer size, before serde turns a
/// negative one into an opaque message.
fn check_size(v: &Value, what: &str) -> Result<()> {
    match v.get("size") {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(()),
        Some(other) => Err(invalid(format!(
            "{what} size {other} is not a non-negative integer"
        ))),
        None => Err(invalid(format!("{what} has no size"))),
    }
}

fn digest_at(d: &Descriptor, what: &str) -> Result<Digest> {
    descriptor_digest(d).map_err(|e| invalid(format!("{what}: {e}")))
}

fn parse_index(obj: &Map<String, Value>, value: Value, media_type: String) -> Result<Index> {
    if obj.contains_key("layers") || obj.contains_key("config") {
        return Err(invalid(format!(
            "{media_type} document has layers or config: it is a manifest, not an index"
        )));
    }
    let Some(Value::Array(entries)) = obj.get("manifests") else {
        return Err(invalid(format!(
            "{media_type} document has no manifests array"
        )));
    };
    for (i, e) in entries.iter().enumerate() {
        check_size(e, &format!("index entry {i}"))?;
    }
    let inner: ImageIndex = serde_json::from_value(value)
        .map_err(|e| invalid(format!("{media_type} document is not valid: {e}")))?;
    for (i, d) in inner.manifests().iter().enumerate() {
        digest_at(d, &format!("index entry {i}"))?;
    }
    Ok(Index {
        media_type,
        inner: Box::new(inner),
    })
}

fn blob_ref(d: &Descriptor, what: &str) -> Result<BlobRef> {
    Ok(BlobRef {
        media_type: d.media_type().to_string(),
        digest: digest_at(d, what)?,
        size: d.size(),
        urls: d.urls().clone().unwrap_or_default(),
    })
}

fn parse_manifest(obj: &Map<String, Value>, value: Value, media_type: String) -> Result<Manifest> {
    if obj.contains_key("manifests") {
        return Err(invalid(format!(
            "{media_type} document has manifests: it is an index, not a manifest"
        )));
    }
    let Some(config) = obj.get("config") else {
        return Err(invalid(format!("{media_type} document has no config")));
    };
    check_size(config, "config")?;
    let Some(Value::Array(layers)) = obj.get("layers") else {
        return Err(invalid(format!(
            "{media_type} document has no layers array"
        )));
    };
    for (i, l) in layers.iter().enumerate() {
        check_size(l, &format!("layer {i}"))?;
    }
    let inner: ImageManifest = serde_json::from_value(value)
        .map_err(|e| invalid(format!("{media_type} document is not valid: {e}")))?;
    let config = blob_ref(inner.config(), "config")?;
    if !media::is_config(&config.media_type) {
        return Err(invalid(format!(
            "config media type {:?} is not an image config (expected {} or {})",
            config.media_type,
            media::OCI_CONFIG,
            media::DOCKER_CONFIG
        )));
    }
    let layers = inner
        .layers()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let what = format!("layer {i}");
            let b = blob_ref(d, &what)?;
            if !media::is_layer(&b.media_type) {
                return Err(invalid(format!(
                    "{what} media type {:?} is not a layer type berth supports \
                     (OCI tar, tar+gzip or tar+zstd; Docker tar, tar.gzip or foreign)",
                    b.media_type
                )));
            }
            Ok(b)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Manifest {
        media_type,
        inner: Box::new(inner),
        config,
        layers,
    })
}
