//! Every actix message, grouped by recipient.

use actix::Message;
use berth_engine::ids::{Labels, NamespaceName};
use berth_engine::state::Namespace;
use berth_engine::EngineError;

/// A namespace and the journal position its view reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceReply {
    /// The namespace.
    pub namespace: Namespace,
    /// The sequence number of the event that produced it.
    pub seq: u64,
}

// ---- to the Supervisor ----

/// Create a namespace.
#[derive(Debug, Message)]
#[rtype(result = "Result<NamespaceReply, EngineError>")]
pub struct CreateNamespace {
    /// Its name.
    pub name: NamespaceName,
    /// Its labels.
    pub labels: Labels,
}

/// Delete a namespace (routed to its actor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct DeleteNamespace {
    /// Its name.
    pub name: NamespaceName,
}

/// How many entity actors the supervisor holds (for stats and tests).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountActors;

// ---- snapshots (to the Supervisor) ----

/// A snapshot and the mounts to use it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotReply {
    /// The snapshot.
    pub snapshot: berth_engine::state::Snapshot,
    /// How to mount it.
    pub mounts: Vec<berth_engine::mount::Mount>,
    /// Journal position.
    pub seq: u64,
}

/// Prepare an active snapshot or a view.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<SnapshotReply, EngineError>")]
pub struct PrepareSnapshot {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Key.
    pub key: String,
    /// Committed parent.
    pub parent: Option<String>,
    /// Active or view.
    pub kind: berth_engine::snapshot::Kind,
    /// Labels.
    pub labels: Labels,
}

/// Commit an active snapshot under a name.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct CommitSnapshot {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Active key.
    pub key: String,
    /// Committed name.
    pub name: String,
}

/// Remove a snapshot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct RemoveSnapshot {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Key or name.
    pub key: String,
}

/// Collect garbage now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<berth_engine::event::GcCompleted, EngineError>")]
pub struct CollectGarbage {
    /// The namespace asking.
    pub namespace: NamespaceName,
}

/// Delete an image name (and collect what it alone referenced).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct DeleteImage {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name.
    pub name: berth_engine::ids::ImageName,
}

// ---- to a SnapshotActor ----

/// Create the storage (after the intent was journaled).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(Vec<berth_engine::mount::Mount>, u64), EngineError>")]
pub struct Materialize {
    /// Active or view.
    pub kind: berth_engine::snapshot::Kind,
    /// Committed ancestors' storage ids, nearest first.
    pub parents: Vec<berth_engine::snapshot::SnapshotId>,
}

/// Commit the storage, then append `events`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct CommitStorage {
    /// The new name.
    pub name: String,
    /// The decided events.
    pub events: Vec<berth_engine::Event>,
}

/// Append `events`, then remove the storage; the actor stops.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct RemoveStorage {
    /// The decided events.
    pub events: Vec<berth_engine::Event>,
}

// ---- imports ----

/// What an import produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReply {
    /// Import id.
    pub id: String,
    /// Images stored.
    pub images: Vec<(berth_engine::ids::ImageName, berth_engine::event::Target)>,
    /// Journal position.
    pub seq: u64,
}

/// Run an import (to an [`crate::import::ImportActor`]).
#[derive(Message)]
#[rtype(result = "Result<ImportReply, EngineError>")]
pub struct RunImport {
    /// The archive.
    pub reader: Box<dyn std::io::Read + Send>,
}

/// Start an import (to the Supervisor): returns the import actor to send
/// [`RunImport`] to.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<actix::Addr<crate::import::ImportActor>, EngineError>")]
pub struct StartImport {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name for the image (required when the archive names none).
    pub name: Option<berth_engine::ids::ImageName>,
    /// Platform to unpack.
    pub platform: berth_engine::image::Platform,
}
