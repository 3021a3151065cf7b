//! Events: past-tense facts, each with a topic (its type name, also the event-stream
//! topic) and a schema version.
//!
//! On the journal an event is stored as `(topic, schema, payload)` where the payload is
//! the variant's body encoded with `rmp_serde::to_vec_named`. Decoding looks at the
//! schema: the current version decodes directly, an older one is decoded into its
//! frozen type (see [`v1`]) and upcast; a newer one (written by a newer berth) is
//! refused, never guessed at. Stored events are never rewritten.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::container::{ContainerConfig, ContainerId, ExitStatus};
use crate::ids::{Digest, ImageName, Labels, NamespaceName};
use crate::network::cni::CniResult;
use crate::network::{PortMapping, Subnet};
use crate::snapshot::{Kind, SnapshotId};

/// The kind of aggregate an event belongs to (the journal's stream kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A namespace.
    Namespace,
    /// A blob of the content store.
    Content,
    /// A named image.
    Image,
    /// A snapshot.
    Snapshot,
    /// A lease (protection of work in flight from garbage collection).
    Lease,
    /// An image import.
    Import,
    /// A garbage collection run.
    Gc,
    /// A container.
    Container,
    /// An image pull from a registry.
    Pull,
    /// A network (host-wide).
    Network,
}

impl StreamKind {
    /// The kind as stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Namespace => "namespace",
            StreamKind::Content => "content",
            StreamKind::Image => "image",
            StreamKind::Snapshot => "snapshot",
            StreamKind::Lease => "lease",
            StreamKind::Import => "import",
            StreamKind::Gc => "gc",
            StreamKind::Container => "container",
            StreamKind::Pull => "pull",
            StreamKind::Network => "network",
        }
    }
}

/// A namespace was created.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NamespaceCreated {
    /// Its name.
    pub name: NamespaceName,
    /// Its labels (added in schema 2; upcast from 1 as empty).
    pub labels: Labels,
    /// When it was created (added in schema 2; upcast from 1 as the record's time).
    pub created_at: DateTime<Utc>,
}

/// A namespace was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NamespaceDeleted {
    /// Its name.
    pub name: NamespaceName,
}

/// What an image name points at: a manifest or an index in the content store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Target {
    /// Media type of the manifest or index.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A blob was committed to the content store (verified, durable).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContentCommitted {
    /// The namespace whose work brought it.
    pub namespace: NamespaceName,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Labels.
    pub labels: Labels,
    /// When.
    pub at: DateTime<Utc>,
}

/// A blob's labels were replaced.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContentLabelsSet {
    /// The namespace of the request.
    pub namespace: NamespaceName,
    /// The blob.
    pub digest: Digest,
    /// The new labels.
    pub labels: Labels,
}

/// A blob was removed from the content store.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContentDeleted {
    /// The namespace of the request (or of the collection).
    pub namespace: NamespaceName,
    /// The blob.
    pub digest: Digest,
}

/// An image name was created, or moved to another target.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImageStored {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name.
    pub name: ImageName,
    /// What it points at.
    pub target: Target,
    /// Labels.
    pub labels: Labels,
    /// When.
    pub at: DateTime<Utc>,
}

/// An image name was removed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImageDeleted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name.
    pub name: ImageName,
}

/// Intent: a snapshot is being created with storage id `id` (the outcome is
/// [`SnapshotPrepared`]; an intent without outcome is rolled back at recovery).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SnapshotPrepareRequested {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Key.
    pub key: String,
    /// Storage id.
    pub id: SnapshotId,
    /// Parent (a committed snapshot's name).
    pub parent: Option<String>,
    /// Active or view.
    pub kind: Kind,
    /// The snapshotter.
    pub snapshotter: String,
    /// Labels.
    pub labels: Labels,
    /// When.
    pub at: DateTime<Utc>,
}

/// Outcome: a snapshot's storage exists.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SnapshotPrepared {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Key.
    pub key: String,
}

/// An active snapshot was committed under a name.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SnapshotCommitted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// The active key.
    pub key: String,
    /// The committed name (an image layer's chain id).
    pub name: String,
}

/// A snapshot was removed (its storage too).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SnapshotRemoved {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Key or name.
    pub key: String,
    /// Why (`removed`, `rolled back`, `collected`).
    pub reason: String,
}

/// What a lease protects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseResource {
    /// A blob (committed or still being written).
    Content(Digest),
    /// A snapshot by key.
    Snapshot(String),
}

/// A lease was taken.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LeaseCreated {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Lease id.
    pub id: String,
    /// Dropped at the next daemon start (work of a process that is gone).
    pub ephemeral: bool,
    /// Labels.
    pub labels: Labels,
    /// When.
    pub at: DateTime<Utc>,
}

/// A resource was added to a lease.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LeaseResourceAdded {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Lease id.
    pub id: String,
    /// The resource.
    pub resource: LeaseResource,
}

/// A lease was released.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LeaseDeleted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Lease id.
    pub id: String,
}

/// An import began.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImportStarted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Import id.
    pub id: String,
    /// The name requested for the image, if any.
    pub name: Option<ImageName>,
    /// When.
    pub at: DateTime<Utc>,
}

/// An import finished.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImportCompleted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Import id.
    pub id: String,
    /// The image names stored.
    pub images: Vec<ImageName>,
    /// When.
    pub at: DateTime<Utc>,
}

/// An import failed; nothing it did is visible (its lease is dropped, collection
/// removes what it wrote).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImportFailed {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Import id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A pull from a registry began (under the ephemeral lease `pull-<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PullStarted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Pull id.
    pub id: String,
    /// The reference pulled (`host[:port]/repo[:tag][@digest]`).
    pub reference: String,
    /// The platform unpacked (`os/arch[/variant]`).
    pub platform: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A layer of a pull is in the content store (downloaded and verified, or already
/// there).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PullLayerFetched {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Pull id.
    pub id: String,
    /// The layer blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// A pull finished: the image is named and unpacked.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PullCompleted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Pull id.
    pub id: String,
    /// The image name stored.
    pub image: ImageName,
    /// The digest it points at (the manifest or index the reference resolved to).
    pub digest: Digest,
    /// When.
    pub at: DateTime<Utc>,
}

/// A pull failed; nothing it did is visible (its lease is dropped, collection removes
/// what it wrote).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PullFailed {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Pull id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A garbage collection finished.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GcCompleted {
    /// The namespace that asked (collection is global).
    pub namespace: NamespaceName,
    /// Blobs removed.
    pub content_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Bytes freed (approximate).
    pub bytes_freed: u64,
    /// Time taken.
    pub took_ms: u64,
}

/// Intent: a container is being created (its snapshot prepared, its bundle written).
/// The outcome is `container.created` or `container.create_failed`; an intent without
/// outcome is rolled back at recovery.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerCreateRequested {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// Name (unique in the namespace).
    pub name: String,
    /// Everything it is created with.
    pub config: Box<ContainerConfig>,
    /// Key of its active snapshot (the rootfs).
    pub snapshot_key: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container event that carries nothing but its subject and time (created, start,
/// pause and resume intents and outcomes, deleted).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerRef {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// When.
    pub at: DateTime<Utc>,
}

/// An operation on a container failed (create, start, stop, kill, pause, resume, delete).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerFailed {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// The operation (`create`, `start`, …).
    pub action: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container's process is running.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerStarted {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// Host pid of its init process.
    pub pid: u32,
    /// Pid of its shim.
    pub shim_pid: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// Intent: stop a container (the stop signal now, SIGKILL after the timeout). The
/// outcome is `container.exited`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerStopRequested {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// The stop signal.
    pub signal: i32,
    /// Seconds before SIGKILL.
    pub timeout_secs: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A signal for a container: the intent (`container.kill_requested`) and its outcome
/// (`container.signaled`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerSignal {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// Signal number.
    pub signal: i32,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container's process ended.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerExited {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// How it ended.
    pub exit: ExitStatus,
    /// What berth knows beyond the status (e.g. `shim lost`), if anything.
    pub reason: Option<String>,
}

/// A container will be restarted by its restart policy after `delay_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerRestartScheduled {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// Which restart this is (1 for the first).
    pub attempt: u32,
    /// Back-off before it.
    pub delay_ms: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// Intent: delete a container (stop its shim, unmount, remove bundle and snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerDeleteRequested {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Id.
    pub id: ContainerId,
    /// A running container is killed first.
    pub force: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The topic is not one this berth knows.
    #[error("unknown event topic {topic:?} (written by a newer berth?)")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The schema is newer than this berth's.
    #[error("event {topic} has schema {schema}, newer than this berth's {current}")]
    NewerSchema {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
        /// This berth's schema.
        current: u16,
    },
    /// The schema is older than any this berth can upcast.
    #[error("event {topic} has schema {schema}, which this berth cannot upcast")]
    UnknownOldSchema {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
    },
    /// The payload does not decode as the type its topic and schema name.
    #[error("event {topic} (schema {schema}) does not decode: {reason}")]
    Payload {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
        /// The decoder's complaint.
        reason: String,
    },
}

/// A network was created. Networks are host-wide (a bridge and a subnet are host
/// resources, as podman's and nerdctl's networks are); their events belong to the
/// `default` namespace's stream.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NetworkCreated {
    /// Its name.
    pub name: String,
    /// The Linux bridge on the host.
    pub bridge: String,
    /// The subnet containers get addresses from.
    pub subnet: Subnet,
    /// The bridge's address (the containers' default route).
    pub gateway: std::net::Ipv4Addr,
    /// Labels.
    pub labels: Labels,
    /// The daemon's default network (made at first start; never deleted).
    pub default: bool,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A network was deleted (its bridge removed).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NetworkDeleted {
    /// Its name.
    pub name: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container's network attachment is being made (intent: a crash before its
/// outcome is undone by a CNI DEL at recovery).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerNetworkAttachRequested {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Container.
    pub id: ContainerId,
    /// The network.
    pub network: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container was attached to a network (CNI ADD succeeded).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerNetworkAttached {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Container.
    pub id: ContainerId,
    /// The network.
    pub network: String,
    /// The interface inside the container.
    pub ifname: String,
    /// Its IPv4 address.
    pub ip: std::net::Ipv4Addr,
    /// Its hardware address.
    pub mac: String,
    /// Its gateway.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Ports published on the host.
    pub ports: Vec<PortMapping>,
    /// The CNI result, handed back to CHECK and DEL.
    pub result: CniResult,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container was detached from its network (CNI DEL done; lease, veth and port
/// rules released).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerNetworkDetached {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Container.
    pub id: ContainerId,
    /// The network.
    pub network: String,
    /// The address it released, when it had one.
    pub ip: Option<std::net::Ipv4Addr>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Declares the event enum with one line per variant: its body type, topic and
/// current schema version.
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) => $topic:literal, schema $schema:literal; )*) => {
        /// Every fact berth records. Serializes (to JSON for the API) as the body alone;
        /// the topic says which variant it is.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $( $(#[$doc])* $variant($ty), )*
        }

        impl Event {
            /// Every topic with its current schema.
            pub const TOPICS: &'static [(&'static str, u16)] = &[$( ($topic, $schema), )*];

            /// The event's topic (type name), e.g. `namespace.created`.
            pub fn topic(&self) -> &'static str {
                match self { $( Event::$variant(_) => $topic, )* }
            }

            /// The current schema version of this event's type.
            pub fn schema(&self) -> u16 {
                match self { $( Event::$variant(_) => $schema, )* }
            }

            /// The body encoded for the journal (`rmp_serde::to_vec_named`).
            pub fn encode_payload(&self) -> Vec<u8> {
                let out = match self { $( Event::$variant(e) => rmp_serde::to_vec_named(e), )* };
                // Encoding plain structs of strings, maps and times cannot fail.
                out.expect("event bodies always encode")
            }

            fn current_schema(topic: &str) -> Option<u16> {
                match topic { $( $topic => Some($schema), )* _ => None }
            }

            fn decode_current(topic: &str, payload: &[u8]) -> Result<Event, String> {
                match topic {
                    $( $topic => rmp_serde::from_slice::<$ty>(payload)
                        .map(Event::$variant)
                        .map_err(|e| e.to_string()), )*
                    _ => Err(format!("unknown topic {topic}")),
                }
            }
        }
    };
}

events! {
    /// A namespace was created.
    NamespaceCreated(NamespaceCreated) => "namespace.created", schema 2;
    /// A namespace was deleted.
    NamespaceDeleted(NamespaceDeleted) => "namespace.deleted", schema 1;
    /// A blob was committed.
    ContentCommitted(ContentCommitted) => "content.committed", schema 1;
    /// A blob's labels were set.
    ContentLabelsSet(ContentLabelsSet) => "content.labels_set", schema 1;
    /// A blob was deleted.
    ContentDeleted(ContentDeleted) => "content.deleted", schema 1;
    /// An image name was stored (created or moved).
    ImageStored(ImageStored) => "image.stored", schema 1;
    /// An image name was deleted.
    ImageDeleted(ImageDeleted) => "image.deleted", schema 1;
    /// A snapshot is being prepared (intent).
    SnapshotPrepareRequested(SnapshotPrepareRequested) => "snapshot.prepare_requested", schema 1;
    /// A snapshot was prepared (outcome).
    SnapshotPrepared(SnapshotPrepared) => "snapshot.prepared", schema 1;
    /// A snapshot was committed.
    SnapshotCommitted(SnapshotCommitted) => "snapshot.committed", schema 1;
    /// A snapshot was removed.
    SnapshotRemoved(SnapshotRemoved) => "snapshot.removed", schema 1;
    /// A lease was created.
    LeaseCreated(LeaseCreated) => "lease.created", schema 1;
    /// A lease gained a resource.
    LeaseResourceAdded(LeaseResourceAdded) => "lease.resource_added", schema 1;
    /// A lease was deleted.
    LeaseDeleted(LeaseDeleted) => "lease.deleted", schema 1;
    /// An import started.
    ImportStarted(ImportStarted) => "image.import.started", schema 1;
    /// An import completed.
    ImportCompleted(ImportCompleted) => "image.import.completed", schema 1;
    /// An import failed.
    ImportFailed(ImportFailed) => "image.import.failed", schema 1;
    /// A garbage collection completed.
    GcCompleted(GcCompleted) => "gc.completed", schema 1;
    /// A pull started.
    PullStarted(PullStarted) => "pull.started", schema 1;
    /// A layer of a pull was fetched.
    PullLayerFetched(PullLayerFetched) => "pull.layer_fetched", schema 1;
    /// A pull completed.
    PullCompleted(PullCompleted) => "pull.completed", schema 1;
    /// A pull failed.
    PullFailed(PullFailed) => "pull.failed", schema 1;
    /// A container is being created (intent).
    ContainerCreateRequested(ContainerCreateRequested) => "container.create_requested", schema 1;
    /// A container was created (outcome).
    ContainerCreated(ContainerRef) => "container.created", schema 1;
    /// Creating a container failed; it is gone.
    ContainerCreateFailed(ContainerFailed) => "container.create_failed", schema 1;
    /// A container is being started (intent).
    ContainerStartRequested(ContainerRef) => "container.start_requested", schema 1;
    /// A container started (outcome).
    ContainerStarted(ContainerStarted) => "container.started", schema 1;
    /// Starting a container failed (outcome).
    ContainerStartFailed(ContainerFailed) => "container.start_failed", schema 1;
    /// A container is being stopped (intent; the outcome is `container.exited`).
    ContainerStopRequested(ContainerStopRequested) => "container.stop_requested", schema 1;
    /// A signal is being sent to a container (intent).
    ContainerKillRequested(ContainerSignal) => "container.kill_requested", schema 1;
    /// A signal was delivered (outcome).
    ContainerSignaled(ContainerSignal) => "container.signaled", schema 1;
    /// A container is being paused (intent).
    ContainerPauseRequested(ContainerRef) => "container.pause_requested", schema 1;
    /// A container was paused (outcome).
    ContainerPaused(ContainerRef) => "container.paused", schema 1;
    /// A container is being resumed (intent).
    ContainerResumeRequested(ContainerRef) => "container.resume_requested", schema 1;
    /// A container was resumed (outcome).
    ContainerResumed(ContainerRef) => "container.resumed", schema 1;
    /// A stop, kill, pause or resume failed (outcome).
    ContainerRequestFailed(ContainerFailed) => "container.request_failed", schema 1;
    /// A container's process exited.
    ContainerExited(ContainerExited) => "container.exited", schema 1;
    /// A restart was scheduled by the restart policy.
    ContainerRestartScheduled(ContainerRestartScheduled) => "container.restart_scheduled", schema 1;
    /// A container is being deleted (intent).
    ContainerDeleteRequested(ContainerDeleteRequested) => "container.delete_requested", schema 1;
    /// A container was deleted (outcome).
    ContainerDeleted(ContainerRef) => "container.deleted", schema 1;
    /// A network was created.
    NetworkCreated(NetworkCreated) => "network.created", schema 1;
    /// A network was deleted.
    NetworkDeleted(NetworkDeleted) => "network.deleted", schema 1;
    /// A container is being attached to its network (intent).
    ContainerNetworkAttachRequested(ContainerNetworkAttachRequested) => "container.network_attach_requested", schema 1;
    /// A container was attached to its network (outcome).
    ContainerNetworkAttached(ContainerNetworkAttached) => "container.network_attached", schema 1;
    /// A container was detached from its network.
    ContainerNetworkDetached(ContainerNetworkDetached) => "container.network_detached", schema 1;
}

/// The namespace whose stream carries host-wide events (networks).
fn host_namespace() -> &'static NamespaceName {
    static NS: std::sync::OnceLock<NamespaceName> = std::sync::OnceLock::new();
    NS.get_or_init(|| NamespaceName::parse("default").expect("default is a valid name"))
}

impl Event {
    /// The namespace this event belongs to.
    pub fn namespace(&self) -> &NamespaceName {
        match self {
            Event::NamespaceCreated(e) => &e.name,
            Event::NamespaceDeleted(e) => &e.name,
            Event::ContentCommitted(e) => &e.namespace,
            Event::ContentLabelsSet(e) => &e.namespace,
            Event::ContentDeleted(e) => &e.namespace,
            Event::ImageStored(e) => &e.namespace,
            Event::ImageDeleted(e) => &e.namespace,
            Event::SnapshotPrepareRequested(e) => &e.namespace,
            Event::SnapshotPrepared(e) => &e.namespace,
            Event::SnapshotCommitted(e) => &e.namespace,
            Event::SnapshotRemoved(e) => &e.namespace,
            Event::LeaseCreated(e) => &e.namespace,
            Event::LeaseResourceAdded(e) => &e.namespace,
            Event::LeaseDeleted(e) => &e.namespace,
            Event::ImportStarted(e) => &e.namespace,
            Event::ImportCompleted(e) => &e.namespace,
            Event::ImportFailed(e) => &e.namespace,
            Event::GcCompleted(e) => &e.namespace,
            Event::PullStarted(e) => &e.namespace,
            Event::PullLayerFetched(e) => &e.namespace,
            Event::PullCompleted(e) => &e.namespace,
            Event::PullFailed(e) => &e.namespace,
            Event::ContainerCreateRequested(e) => &e.namespace,
            Event::ContainerCreated(e)
            | Event::ContainerStartRequested(e)
            | Event::ContainerPauseRequested(e)
            | Event::ContainerPaused(e)
            | Event::ContainerResumeRequested(e)
            | Event::ContainerResumed(e)
            | Event::ContainerDeleted(e) => &e.namespace,
            Event::ContainerCreateFailed(e)
            | Event::ContainerStartFailed(e)
            | Event::ContainerRequestFailed(e) => &e.namespace,
            Event::ContainerStarted(e) => &e.namespace,
            Event::ContainerStopRequested(e) => &e.namespace,
            Event::ContainerKillRequested(e) | Event::ContainerSignaled(e) => &e.namespace,
            Event::ContainerExited(e) => &e.namespace,
            Event::ContainerRestartScheduled(e) => &e.namespace,
            Event::ContainerDeleteRequested(e) => &e.namespace,
            Event::ContainerNetworkAttachRequested(e) => &e.namespace,
            Event::ContainerNetworkAttached(e) => &e.namespace,
            Event::ContainerNetworkDetached(e) => &e.namespace,
            Event::NetworkCreated(_) | Event::NetworkDeleted(_) => host_namespace(),
        }
    }

    /// The aggregate this event belongs to: `(kind, id)`.
    pub fn stream(&self) -> (StreamKind, String) {
        use StreamKind as K;
        match self {
            Event::NamespaceCreated(e) => (K::Namespace, e.name.to_string()),
            Event::NamespaceDeleted(e) => (K::Namespace, e.name.to_string()),
            Event::ContentCommitted(e) => (K::Content, e.digest.to_string()),
            Event::ContentLabelsSet(e) => (K::Content, e.digest.to_string()),
            Event::ContentDeleted(e) => (K::Content, e.digest.to_string()),
            Event::ImageStored(e) => (K::Image, e.name.to_string()),
            Event::ImageDeleted(e) => (K::Image, e.name.to_string()),
            Event::SnapshotPrepareRequested(e) => (K::Snapshot, e.key.clone()),
            Event::SnapshotPrepared(e) => (K::Snapshot, e.key.clone()),
            Event::SnapshotCommitted(e) => (K::Snapshot, e.key.clone()),
            Event::SnapshotRemoved(e) => (K::Snapshot, e.key.clone()),
            Event::LeaseCreated(e) => (K::Lease, e.id.clone()),
            Event::LeaseResourceAdded(e) => (K::Lease, e.id.clone()),
            Event::LeaseDeleted(e) => (K::Lease, e.id.clone()),
            Event::ImportStarted(e) => (K::Import, e.id.clone()),
            Event::ImportCompleted(e) => (K::Import, e.id.clone()),
            Event::ImportFailed(e) => (K::Import, e.id.clone()),
            Event::GcCompleted(_) => (K::Gc, "gc".to_string()),
            Event::PullStarted(e) => (K::Pull, e.id.clone()),
            Event::PullLayerFetched(e) => (K::Pull, e.id.clone()),
            Event::PullCompleted(e) => (K::Pull, e.id.clone()),
            Event::PullFailed(e) => (K::Pull, e.id.clone()),
            Event::NetworkCreated(e) => (K::Network, e.name.clone()),
            Event::NetworkDeleted(e) => (K::Network, e.name.clone()),
            _ => (
                K::Container,
                self.container_id()
                    .map(ContainerId::to_string)
                    .unwrap_or_default(),
            ),
        }
    }

    /// The container this event is about, if it is a container event.
    pub fn container_id(&self) -> Option<&ContainerId> {
        match self {
            Event::ContainerCreateRequested(e) => Some(&e.id),
            Event::ContainerCreated(e)
            | Event::ContainerStartRequested(e)
            | Event::ContainerPauseRequested(e)
            | Event::ContainerPaused(e)
            | Event::ContainerResumeRequested(e)
            | Event::ContainerResumed(e)
            | Event::ContainerDeleted(e) => Some(&e.id),
            Event::ContainerCreateFailed(e)
            | Event::ContainerStartFailed(e)
            | Event::ContainerRequestFailed(e) => Some(&e.id),
            Event::ContainerStarted(e) => Some(&e.id),
            Event::ContainerStopRequested(e) => Some(&e.id),
            Event::ContainerKillRequested(e) | Event::ContainerSignaled(e) => Some(&e.id),
            Event::ContainerExited(e) => Some(&e.id),
            Event::ContainerRestartScheduled(e) => Some(&e.id),
            Event::ContainerDeleteRequested(e) => Some(&e.id),
            Event::ContainerNetworkAttachRequested(e) => Some(&e.id),
            Event::ContainerNetworkAttached(e) => Some(&e.id),
            Event::ContainerNetworkDetached(e) => Some(&e.id),
            _ => None,
        }
    }

    /// Decodes a stored event. `at` is the record's time, which upcasters may use to fill
    /// fields older schemas did not carry.
    pub fn decode(
        topic: &str,
        schema: u16,
        payload: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Event, DecodeError> {
        let current = Event::current_schema(topic).ok_or_else(|| DecodeError::UnknownTopic {
            topic: topic.to_string(),
        })?;
        let payload_err = |reason: String| DecodeError::Payload {
            topic: topic.to_string(),
            schema,
            reason,
        };
        if schema == current {
            return Event::decode_current(topic, payload).map_err(payload_err);
        }
        if schema > current {
            return Err(DecodeError::NewerSchema {
                topic: topic.to_string(),
                schema,
                current,
            });
        }
        match v1::upcast(topic, schema, payload, at) {
            Some(r) => r.map_err(payload_err),
            None => Err(DecodeError::UnknownOldSchema {
                topic: topic.to_string(),
                schema,
            }),
        }
    }
}

/// A decoded journal record, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventEnvelope {
    /// Sequence number.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// Aggregate.
    pub stream: StreamView,
    /// Topic.
    pub topic: String,
    /// Schema of `event` as shown (the current one: old events are upcast).
    pub schema: u16,
    /// The event body.
    pub event: Event,
}

/// `(kind, id)` of an aggregate, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamView {
    /// Aggregate kind.
    pub kind: String,
    /// Aggregate id.
    pub id: String,
}

/// Frozen types of schema 1 and their upcasters. These types never change: they are how
/// events written by older berths are read.
pub mod v1 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::{Event, NamespaceCreated};
    use crate::ids::{Labels, NamespaceName};

    /// `namespace.created`, schema 1: the name only.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct NamespaceCreatedV1 {
        /// Its name.
        pub name: NamespaceName,
    }

    /// Upcasts an old-schema payload to the current event; `None` when no upcaster
    /// exists for `(topic, schema)`.
    pub fn upcast(
        topic: &str,
        schema: u16,
        payload: &[u8],
        at: DateTime<Utc>,
    ) -> Option<Result<Event, String>> {
        match (topic, schema) {
            ("namespace.created", 1) => Some(
                rmp_serde::from_slice::<NamespaceCreatedV1>(payload)
                    .map(|old| {
                        Event::NamespaceCreated(NamespaceCreated {
                            name: old.name,
                            labels: Labels::new(),
                            created_at: at,
                        })
                    })
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn created(name: &str) -> Event {
        let mut labels = Labels::new();
        labels.insert("team".into(), "a".into());
        Event::NamespaceCreated(NamespaceCreated {
            name: NamespaceName::parse(name).unwrap(),
            labels,
            created_at: at(),
        })
    }

    #[test]
    fn current_roundtrip() {
        let e = created("blue");
        let back = Event::decode(e.topic(), e.schema(), &e.encode_payload(), at()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.topic(), "namespace.created");
        assert_eq!(e.stream(), (StreamKind::Namespace, "blue".to_string()));
    }

    #[test]
    fn v1_is_upcast() {
        let old = v1::NamespaceCreatedV1 {
            name: NamespaceName::parse("legacy").unwrap(),
        };
        let payload = rmp_serde::to_vec_named(&old).unwrap();
        let e = Event::decode("namespace.created", 1, &payload, at()).unwrap();
        assert_eq!(
            e,
            Event::NamespaceCreated(NamespaceCreated {
                name: NamespaceName::parse("legacy").unwrap(),
                labels: Labels::new(),
                created_at: at(),
            })
        );
    }

    #[test]
    fn refuses_newer_unknown_and_garbage() {
        let e = created("x");
        assert!(matches!(
            Event::decode(e.topic(), 99, &e.encode_payload(), at()),
            Err(DecodeError::NewerSchema { .. })
        ));
        assert!(matches!(
            Event::decode("container.teleported", 1, &[], at()),
            Err(DecodeError::UnknownTopic { .. })
        ));
        assert!(matches!(
            Event::decode("namespace.created", 2, b"\xc1garbage", at()),
            Err(DecodeError::Payload { .. })
        ));
        assert!(matches!(
            Event::decode("namespace.deleted", 0, b"", at()),
            Err(DecodeError::UnknownOldSchema { .. })
        ));
    }

    #[test]
    fn pull_events_roundtrip_and_track_pulls_in_flight() {
        let ns = NamespaceName::parse("default").unwrap();
        let started = Event::PullStarted(PullStarted {
            namespace: ns.clone(),
            id: "p1".into(),
            reference: "127.0.0.1:5000/app:v1".into(),
            platform: "linux/amd64".into(),
            at: at(),
        });
        let fetched = Event::PullLayerFetched(PullLayerFetched {
            namespace: ns.clone(),
            id: "p1".into(),
            digest: Digest::of_bytes(b"layer"),
            size: 5,
        });
        let done = Event::PullCompleted(PullCompleted {
            namespace: ns.clone(),
            id: "p1".into(),
            image: ImageName::parse("127.0.0.1:5000/app:v1").unwrap(),
            digest: Digest::of_bytes(b"manifest"),
            at: at(),
        });
        let failed = Event::PullFailed(PullFailed {
            namespace: ns,
            id: "p2".into(),
            reason: "interrupted by a daemon restart".into(),
            at: at(),
        });
        for e in [&started, &fetched, &done, &failed] {
            let back = Event::decode(e.topic(), e.schema(), &e.encode_payload(), at()).unwrap();
            assert_eq!(&back, e);
            assert_eq!(e.stream().0, StreamKind::Pull);
            assert!(e.topic().starts_with("pull."));
        }
        let mut state = crate::State::default();
        state.apply_at(1, &started);
        state.apply_at(2, &fetched);
        assert!(state.storage.pulls.contains_key("p1"));
        state.apply_at(3, &done);
        assert!(state.storage.pulls.is_empty());
    }

    #[test]
    fn invalid_names_in_payload_are_rejected() {
        // A payload whose name breaks the rules cannot become an event.
        #[derive(Serialize)]
        struct Raw<'a> {
            name: &'a str,
        }
        let payload = rmp_serde::to_vec_named(&Raw { name: "../etc" }).unwrap();
        assert!(Event::decode("namespace.deleted", 1, &payload, at()).is_err());
    }
}
