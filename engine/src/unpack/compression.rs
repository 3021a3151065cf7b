//! Layer compression: chosen by media type, confirmed by the stream's magic bytes.

use std::fmt;

use crate::EngineError;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (one or more members, as `gzip` and Go's `compress/gzip` write them).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// The first bytes of a gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression of a layer media type, OCI or Docker; distributable or not.
    /// Any other media type (a config, a manifest, an unknown layer format) is refused
    /// with [`EngineError::InvalidArgument`] naming it.
    pub fn from_media_type(media_type: &str) -> Result<Self, EngineError> {
        // One table of layer media types, in the image model.
        use crate::image::media::{layer_compression, LayerCompression};
        match layer_compression(media_type) {
            Some(LayerCompression::None) => Ok(Compression::None),
            Some(LayerCompression::Gzip) => Ok(Compression::Gzip),
            Some(LayerCompression::Zstd) => Ok(Compression::Zstd),
            None => Err(EngineError::InvalidArgument(format!(
                "media type {media_type:?} is not a supported layer type \
                 (expected an OCI or Docker tar, tar+gzip or tar+zstd layer)"
            ))),
        }
    }

    /// What the first bytes of a stream say it is: gzip, zstd, or neither (taken as
    /// tar). `head` holds up to the first four bytes.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Checks that a stream starting with `head` is compressed as `self` claims: a
    /// gzip or zstd layer must start with its magic number, and a plain tar layer must
    /// not start with either.
    pub(crate) fn check_magic(self, head: &[u8]) -> Result<(), EngineError> {
        let found = Compression::sniff(head);
        if found == self {
            return Ok(());
        }
        let what = match found {
            Compression::None if head.is_empty() => "an empty stream".to_string(),
            Compression::None => format!("bytes {}", hex(head)),
            other => format!("{other} magic bytes {}", hex(head)),
        };
        Err(EngineError::InvalidArgument(format!(
            "layer is declared {self} but the stream starts with {what}; \
             refusing a layer whose content does not match its media type"
        )))
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
