//! Media types of image documents and blobs, OCI and Docker, and what each one is.

/// OCI image index (a list of manifests, usually one per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer: a plain tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer: a gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer: a zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer: a plain tar (deprecated by the spec, still met).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer: a gzip-compressed tar.
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer: a zstd-compressed tar.
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker manifest list (schema 2), the Docker form of an image index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker container (image) configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer: a gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer: a plain tar (rare; containerd accepts it).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer: a zstd-compressed tar (containerd's name for it).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign layer (gzip tar fetched from its `urls`, e.g. Windows base layers).
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign layer, plain tar.
pub const DOCKER_LAYER_FOREIGN_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";

/// Docker schema 1 manifest: recognised only to be refused.
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 signed manifest: recognised only to be refused.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The message every schema 1 refusal carries.
pub const SCHEMA1_REFUSAL: &str =
    "schema 1 manifests are not supported; push the image again with a current client";

/// Annotation that marks an index entry as something other than a runnable image
/// (buildx attestations: `attestation-manifest`). Such entries are never selected.
pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Annotation holding the tag of a manifest in an OCI image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a document media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// An image index or manifest list.
    Index,
    /// A single-platform image manifest.
    Manifest,
    /// A schema 1 manifest (refused).
    Schema1,
}

/// The kind of document a media type names, or `None` if it names no image document.
/// Parameters (`; charset=…`) and case are ignored.
pub fn document_kind(media_type: &str) -> Option<DocumentKind> {
    match essence(media_type).as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(DocumentKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(DocumentKind::Manifest),
        DOCKER_SCHEMA1_MANIFEST | DOCKER_SCHEMA1_SIGNED => Some(DocumentKind::Schema1),
        _ => None,
    }
}

/// How a layer blob is compressed, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression of a layer media type (OCI or Docker, distributable or not), or
/// `None` if the media type is not a layer berth knows.
pub fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR | DOCKER_LAYER_FOREIGN_TAR => {
            Some(LayerCompression::None)
        }
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => {
            Some(LayerCompression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD | DOCKER_LAYER_ZSTD => Some(LayerCompression::Zstd),
        _ => None,
    }
}

/// Whether `media_type` is a layer berth can apply.
pub fn is_layer(media_type: &str) -> bool {
    layer_compression(media_type).is_some()
}

/// Whether a layer may be absent from the registry and fetched from the descriptor's
/// `urls` instead (OCI non-distributable, Docker foreign).
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD
            | DOCKER_LAYER_FOREIGN_GZIP
            | DOCKER_LAYER_FOREIGN_TAR
    )
}

/// Whether `media_type` is an image configuration (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONFIG)
}

/// A media type without parameters, trimmed and lower-cased (`Content-Type` headers
/// may carry `; charset=utf-8`).
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(document_kind(OCI_INDEX), Some(DocumentKind::Index));
        assert_eq!(
            document_kind(
                "Application/VND.docker.distribution.manifest.list.v2+json; charset=utf-8"
            ),
            Some(DocumentKind::Index)
        );
        assert_eq!(document_kind(DOCKER_MANIFEST), Some(DocumentKind::Manifest));
        assert_eq!(
            document_kind(DOCKER_SCHEMA1_SIGNED),
            Some(DocumentKind::Schema1)
        );
        assert_eq!(document_kind(OCI_CONFIG), None);
        assert_eq!(document_kind("application/json"), None);
    }

    #[test]
    fn layers() {
        assert_eq!(
            layer_compression(OCI_LAYER_ZSTD),
            Some(LayerCompression::Zstd)
        );
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(LayerCompression::Gzip)
        );
        assert_eq!(
            layer_compression(OCI_LAYER_NONDIST_TAR),
            Some(LayerCompression::None)
        );
        assert!(is_non_distributable(DOCKER_LAYER_FOREIGN_GZIP));
        assert!(!is_non_distributable(OCI_LAYER_GZIP));
        assert!(!is_layer(OCI_CONFIG));
        assert!(is_config(DOCKER_CONFIG));
        // oci-spec names the same strings.
        use oci_spec::image::MediaType;
        assert_eq!(MediaType::ImageLayerZstd.as_ref(), OCI_LAYER_ZSTD);
        assert_eq!(MediaType::ImageIndex.as_ref(), OCI_INDEX);
        assert_eq!(
            MediaType::from(DOCKER_MANIFEST),
            MediaType::Other(DOCKER_MANIFEST.into())
        );
    }
}
