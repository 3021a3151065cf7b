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

// ---- containers ----

/// A container and the journal position its view reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerReply {
    /// The container.
    pub container: berth_engine::state::Container,
    /// Journal position.
    pub seq: u64,
}

/// What a client asks a container to be created with; the image is resolved (and the
/// configuration completed) by the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRequest {
    /// Image name.
    pub image: berth_engine::ids::ImageName,
    /// Entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd override.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` pairs (validated).
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Labels (validated).
    pub labels: Labels,
    /// Mounts (syntax validated; sources are checked at creation).
    pub mounts: Vec<berth_engine::container::MountSpec>,
    /// Read-only rootfs.
    pub read_only: bool,
    /// Limits (validated).
    pub resources: berth_engine::container::Resources,
    /// Restart policy.
    pub restart: berth_engine::container::RestartPolicy,
    /// Runtime name (the daemon's default when `None`).
    pub runtime: Option<String>,
    /// Stop timeout in seconds.
    pub stop_timeout: Option<u64>,
    /// Stop signal name or number.
    pub stop_signal: Option<String>,
    /// `--network`: a network's name, `bridge` (the default network), `none`, `host`
    /// or `container:<id, name or prefix>`; the default network when `None`.
    pub network: Option<String>,
    /// Published ports (bridge networks only).
    pub ports: Vec<berth_engine::network::PortMapping>,
}

/// Create a bridge network (to the Supervisor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<NetworkReply, EngineError>")]
pub struct CreateNetwork {
    /// Its name.
    pub name: String,
    /// Its subnet.
    pub subnet: berth_engine::network::Subnet,
    /// Its gateway (the subnet's first address when `None`).
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Its bridge (`bn-<hash of the name>` when `None`).
    pub bridge: Option<String>,
    /// Labels.
    pub labels: Labels,
}

/// A network and the journal position that has it.
#[derive(Debug, Clone)]
pub struct NetworkReply {
    /// The network.
    pub network: berth_engine::state::Network,
    /// Sequence number of its event.
    pub seq: u64,
}

/// Delete a network no container uses (to the Supervisor); answers the sequence number
/// of its `network.deleted` event.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct DeleteNetwork {
    /// Its name.
    pub name: String,
}

/// Create a container (to the Supervisor): records the intent and returns the new
/// container's actor, to which [`Provision`] is sent next (see
/// [`crate::container::create`], which does both).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<crate::container::Created, EngineError>")]
pub struct CreateContainer {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name (default: the short id).
    pub name: Option<String>,
    /// The request.
    pub request: ContainerRequest,
}

/// The actor of an existing container, found by id, name or unique id prefix (to the
/// Supervisor).
#[derive(Debug, Clone, Message)]
#[rtype(
    result = "Result<(berth_engine::container::ContainerId, actix::Addr<crate::container::ContainerActor>), EngineError>"
)]
pub struct GetContainer {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id, name or id prefix.
    pub key: String,
}

/// Re-attach every container to reality after a restart (to the Supervisor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainersReconciled, EngineError>")]
pub struct ReconcileContainers;

/// What reconciling containers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainersReconciled {
    /// Live shims re-attached.
    pub reattached: u64,
    /// Containers found exited (exit recorded from the shim or its record).
    pub exited: u64,
    /// Containers whose shim was gone without a record.
    pub lost: u64,
    /// Interrupted creations rolled back, deletions finished, starts settled.
    pub settled: u64,
}

// ---- to a ContainerActor ----

/// Make the snapshot and bundle after the creation intent.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct Provision {
    /// The image's config (for the runtime spec).
    pub image_config: berth_engine::image::Config,
    /// The committed snapshot the rootfs is prepared on (the image's top layer).
    pub parent: String,
}

/// Start the container.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct StartContainer;

/// Stop the container: its stop signal, SIGKILL after the timeout; answered after it
/// exited.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct StopContainer {
    /// Seconds before SIGKILL (the container's own when `None`).
    pub timeout: Option<u64>,
    /// Signal (the container's stop signal when `None`).
    pub signal: Option<i32>,
}

/// Send a signal.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct KillContainer {
    /// Signal number.
    pub signal: i32,
}

/// Pause.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct PauseContainer;

/// Resume.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainerReply, EngineError>")]
pub struct ResumeContainer;

/// Answered when the container is not running: its last exit (`None` when it never ran).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<berth_engine::container::ExitStatus>, EngineError>")]
pub struct WaitContainer;

/// Run a process in the running container.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<berth_engine::shim::proto::ExecOutput, EngineError>")]
pub struct ExecInContainer(pub berth_engine::shim::proto::ExecRequest);

/// Delete the container (`force`: kill it first when it runs).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct DeleteContainer {
    /// Kill a running container first.
    pub force: bool,
}

/// Settle the container with reality after a daemon restart.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ContainersReconciled, EngineError>")]
pub struct RecoverContainer;

// ---- pulls ----

/// A pull as a client asks for it.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// Namespace the image is stored in.
    pub namespace: NamespaceName,
    /// What to pull.
    pub reference: berth_engine::registry::Reference,
    /// The platform to pick from an index and unpack.
    pub platform: berth_engine::image::Platform,
    /// Credentials from the request (the credentials file is read otherwise).
    pub credentials: Option<berth_engine::registry::Credentials>,
}

/// What a completed pull produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PullReply {
    /// Pull id (its events' stream id).
    pub id: String,
    /// The image name stored.
    pub image: berth_engine::ids::ImageName,
    /// The digest the reference resolved to (manifest or index).
    pub digest: berth_engine::ids::Digest,
    /// Journal position.
    pub seq: u64,
}

/// Progress of a pull, broadcast to whoever follows it (not journaled).
#[derive(Debug, Clone, PartialEq)]
pub enum PullProgress {
    /// The reference resolved to this manifest or index.
    Resolved {
        /// Its digest.
        digest: berth_engine::ids::Digest,
        /// Its media type.
        media_type: String,
    },
    /// Bytes of a layer are in the ingest.
    Layer {
        /// The layer.
        digest: berth_engine::ids::Digest,
        /// Bytes so far.
        current: u64,
        /// Its size.
        total: u64,
    },
    /// A layer is committed (downloaded and verified, or already present).
    LayerDone {
        /// The layer.
        digest: berth_engine::ids::Digest,
        /// Its size.
        size: u64,
    },
    /// The layers are being unpacked.
    Unpacking,
}

/// A place in a pull: its id, its progress from now on, and its outcome.
#[derive(Debug)]
pub struct PullTicket {
    /// Pull id.
    pub id: String,
    /// Progress events from now on.
    pub progress: tokio::sync::broadcast::Receiver<PullProgress>,
    /// The outcome.
    pub done: tokio::sync::oneshot::Receiver<Result<PullReply, EngineError>>,
}

/// Start a pull, or join the one of the same reference and platform in flight (to
/// the Supervisor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PullTicket, EngineError>")]
pub struct StartPull(pub PullRequest);

/// Follow a pull (to a [`crate::pull::PullActor`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "PullTicket")]
pub struct JoinPull;
