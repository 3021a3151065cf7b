//! The JSON documents, as structs with a fixed field order and sorted maps, so their
//! bytes do not depend on serde_json's map features.

use std::collections::BTreeMap;

use serde::Serialize;

/// `{}` (Go's `struct{}` in `ExposedPorts`).
#[derive(Serialize)]
pub struct Empty {}

/// A platform in a descriptor.
#[derive(Serialize, Clone)]
pub struct PlatformDoc {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DescriptorDoc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformDoc>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    pub schema_version: u32,
    pub media_type: String,
    pub config: DescriptorDoc,
    pub layers: Vec<DescriptorDoc>,
}

/// An image index.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDoc {
    pub schema_version: u32,
    pub media_type: String,
    pub manifests: Vec<DescriptorDoc>,
}

/// The run configuration inside an image config.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfigDoc {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `rootfs` of an image config.
#[derive(Serialize)]
pub struct RootFsDoc {
    #[serde(rename = "type")]
    pub typ: String,
    pub diff_ids: Vec<String>,
}

/// One `history` entry.
#[derive(Serialize)]
pub struct HistoryDoc {
    pub created: String,
    pub created_by: String,
}

/// An image config.
#[derive(Serialize)]
pub struct ConfigDoc {
    pub created: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub config: RunConfigDoc,
    pub rootfs: RootFsDoc,
    pub history: Vec<HistoryDoc>,
}

/// One entry of a `docker save` `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerSaveDoc {
    pub config: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
}

/// The `oci-layout` file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutDoc {
    pub image_layout_version: String,
}
