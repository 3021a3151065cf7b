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
