//! Request and response bodies. Requests refuse unknown fields.

use berth_engine::ids::Labels;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `{"error":{"kind":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Kind and message of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of the canonical kinds (`NotFound`, `InvalidArgument`…).
    pub kind: String,
    /// What went wrong, for people.
    pub message: String,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// berth's version.
    pub version: String,
    /// API version (`v1`).
    pub api_version: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
}

/// `GET /v1/healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The last durable sequence number.
    pub seq: u64,
}

/// `POST /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    /// The name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A namespace and the sequence number it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceResponse {
    /// The namespace.
    pub namespace: NamespaceView,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceList {
    /// Namespaces, by name.
    pub namespaces: Vec<NamespaceView>,
    /// Journal position the list reflects.
    pub seq: u64,
}

/// `DELETE /v1/namespaces/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// What was deleted.
    pub deleted: String,
    /// Journal position of the deletion.
    pub seq: u64,
}

/// One journal record as the API shows it (the event stream's `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Sequence number.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// Aggregate.
    pub stream: berth_engine::event::StreamView,
    /// Topic.
    pub topic: String,
    /// Schema of `event`.
    pub schema: u16,
    /// The event body.
    pub event: serde_json::Value,
}

/// `GET /v1/journal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalPage {
    /// Records, in order.
    pub records: Vec<EventView>,
    /// The `from` of the next page.
    pub next: u64,
    /// The last durable sequence number.
    pub last_seq: u64,
}

/// `POST /v1/journal/checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointTaken {
    /// The sequence number the checkpoint reflects.
    pub seq: u64,
}

/// `GET /v1/journal/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalStatsResponse {
    /// Journal numbers.
    pub stats: berth_journal::JournalStats,
    /// What recovery did at the last start.
    pub recovery: berth_actors::RecoveryReport,
}

/// What an image name points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetView {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
}

/// An image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Name.
    pub name: String,
    /// Target.
    pub target: TargetView,
    /// Labels.
    pub labels: Labels,
    /// First stored.
    pub created_at: DateTime<Utc>,
    /// Last stored.
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    /// Images by name.
    pub images: Vec<ImageView>,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/images/{name}`: the image and what it resolves to for the host platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInspect {
    /// The image.
    pub image: ImageView,
    /// The manifest used on this host.
    pub manifest: String,
    /// The config digest.
    pub config: String,
    /// Platform (`os/arch[/variant]`).
    pub platform: String,
    /// Layer digests.
    pub layers: Vec<String>,
    /// Uncompressed layer digests.
    pub diff_ids: Vec<String>,
    /// Chain ids (the committed snapshots' names).
    pub chain_ids: Vec<String>,
    /// Whether every layer is unpacked in this namespace.
    pub unpacked: bool,
    /// Sum of the blobs (manifest, config, layers) in bytes.
    pub size: u64,
    /// The image configuration (OCI JSON).
    pub config_json: serde_json::Value,
}

/// `POST /v1/images/import` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportResponse {
    /// Import id (its events' stream id).
    pub id: String,
    /// Images stored.
    pub images: Vec<ImageView>,
    /// Journal position.
    pub seq: u64,
}

/// `POST /v1/images/{name}/tag` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The new name.
    pub target: String,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotView {
    /// Key or name.
    pub key: String,
    /// Parent.
    pub parent: Option<String>,
    /// `active`, `view`, `committed`.
    pub kind: String,
    /// Storage id.
    pub id: u64,
    /// Snapshotter.
    pub snapshotter: String,
    /// Labels.
    pub labels: Labels,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Bytes of its own storage.
    pub size: u64,
    /// Inodes of its own storage.
    pub inodes: u64,
}

/// `GET /v1/snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// Snapshots.
    pub snapshots: Vec<SnapshotView>,
    /// Journal position.
    pub seq: u64,
}

/// A blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentView {
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
    /// Labels.
    pub labels: Labels,
    /// Committed.
    pub committed_at: DateTime<Utc>,
}

/// `GET /v1/content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentList {
    /// Blobs.
    pub content: Vec<ContentView>,
    /// Journal position.
    pub seq: u64,
}

/// One line of `GET /v1/system/df`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DfLine {
    /// How many.
    pub count: u64,
    /// Bytes.
    pub size: u64,
    /// Bytes garbage collection would free.
    pub reclaimable: u64,
}

/// `GET /v1/system/df`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Df {
    /// Images (all namespaces).
    pub images: DfLine,
    /// Content store.
    pub content: DfLine,
    /// Snapshots.
    pub snapshots: DfLine,
}

/// `POST /v1/gc` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    /// Blobs removed.
    pub content_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Milliseconds.
    pub took_ms: u64,
}

/// `PUT /v1/content/{digest}/labels` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    /// The labels (replacing the current ones).
    pub labels: Labels,
}
