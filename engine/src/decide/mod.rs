//! The pure decision: a [`Command`] against a [`State`] gives the events to append, or
//! the reason it is refused. No IO, no clock (times come in the command).

pub mod container;
mod namespace;
pub mod network;
mod storage;

use chrono::{DateTime, Utc};

use crate::container::{ContainerConfig, ContainerId};
use crate::event::Event;
use crate::event::{LeaseResource, Target};
use crate::ids::{Digest, ImageName, Labels, NamespaceName};
use crate::snapshot::Kind;
use crate::state::State;
use crate::Result;

/// What a client asks for, validated (ids already parsed).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create a namespace.
    CreateNamespace {
        /// Its name.
        name: NamespaceName,
        /// Its labels.
        labels: Labels,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Delete an empty namespace (never `default`).
    DeleteNamespace {
        /// Its name.
        name: NamespaceName,
    },
    /// Record a committed blob (no event when it is already known with these labels).
    CommitContent {
        /// Namespace of the work.
        namespace: NamespaceName,
        /// Digest.
        digest: Digest,
        /// Size.
        size: u64,
        /// Labels to add.
        labels: Labels,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Forget a blob (its file is removed by the caller).
    DeleteContent {
        /// Namespace of the request.
        namespace: NamespaceName,
        /// Digest.
        digest: Digest,
    },
    /// Replace a blob's labels.
    SetContentLabels {
        /// Namespace of the request.
        namespace: NamespaceName,
        /// Digest.
        digest: Digest,
        /// Labels.
        labels: Labels,
    },
    /// Create or move an image name.
    StoreImage {
        /// Namespace.
        namespace: NamespaceName,
        /// Name.
        name: ImageName,
        /// Target (must be in the content store).
        target: Target,
        /// Labels.
        labels: Labels,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Give an image another name.
    TagImage {
        /// Namespace.
        namespace: NamespaceName,
        /// Existing name.
        source: ImageName,
        /// New name.
        name: ImageName,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Remove an image name.
    DeleteImage {
        /// Namespace.
        namespace: NamespaceName,
        /// Name.
        name: ImageName,
    },
    /// Prepare an active snapshot or a view (intent; the id is allocated here).
    PrepareSnapshot {
        /// Namespace.
        namespace: NamespaceName,
        /// Key.
        key: String,
        /// Committed parent.
        parent: Option<String>,
        /// Active or view.
        kind: Kind,
        /// Snapshotter.
        snapshotter: String,
        /// Labels.
        labels: Labels,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Commit an active snapshot under a name.
    CommitSnapshot {
        /// Namespace.
        namespace: NamespaceName,
        /// Active key.
        key: String,
        /// Name.
        name: String,
    },
    /// Remove a snapshot without children.
    RemoveSnapshot {
        /// Namespace.
        namespace: NamespaceName,
        /// Key or name.
        key: String,
        /// Why.
        reason: String,
    },
    /// Take a lease.
    CreateLease {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: String,
        /// Dropped at the next daemon start.
        ephemeral: bool,
        /// Labels.
        labels: Labels,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Protect a resource with a lease.
    AddLeaseResource {
        /// Namespace.
        namespace: NamespaceName,
        /// Lease id.
        id: String,
        /// Resource.
        resource: LeaseResource,
    },
    /// Release a lease.
    DeleteLease {
        /// Namespace.
        namespace: NamespaceName,
        /// Lease id.
        id: String,
    },
    /// Create a container (intent; the actor prepares its snapshot and bundle).
    CreateContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Its new id.
        id: ContainerId,
        /// Its name (default: the short id).
        name: Option<String>,
        /// Its configuration.
        config: Box<ContainerConfig>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Start a created or stopped container.
    StartContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Stop a container: `signal`, then SIGKILL after `timeout_secs`.
    StopContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Stop signal.
        signal: i32,
        /// Seconds before SIGKILL.
        timeout_secs: u64,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Send a signal to a container.
    KillContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Signal.
        signal: i32,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Pause a container.
    PauseContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Resume a paused container.
    ResumeContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Create a bridge network.
    CreateNetwork {
        /// Its name.
        name: String,
        /// Its bridge (derived from the name when `None`).
        bridge: Option<String>,
        /// Its subnet.
        subnet: crate::network::Subnet,
        /// Its gateway (the subnet's first address when `None`).
        gateway: Option<std::net::Ipv4Addr>,
        /// Labels.
        labels: Labels,
        /// The daemon's default network.
        default: bool,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Delete a network nothing uses.
    DeleteNetwork {
        /// Its name.
        name: String,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Delete a container (`force`: even a running one).
    DeleteContainer {
        /// Namespace.
        namespace: NamespaceName,
        /// Id.
        id: ContainerId,
        /// Kill a running container first.
        force: bool,
        /// Now.
        at: DateTime<Utc>,
    },
}

/// Decides a command against the state.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>> {
    match command {
        Command::CreateNamespace { name, labels, at } => namespace::create(state, name, labels, at),
        Command::DeleteNamespace { name } => namespace::delete(state, name),
        Command::CommitContent {
            namespace,
            digest,
            size,
            labels,
            at,
        } => storage::commit_content(state, namespace, digest, size, labels, at),
        Command::DeleteContent { namespace, digest } => {
            storage::delete_content(state, namespace, digest)
        }
        Command::SetContentLabels {
            namespace,
            digest,
            labels,
        } => storage::set_content_labels(state, namespace, digest, labels),
        Command::StoreImage {
            namespace,
            name,
            target,
            labels,
            at,
        } => storage::store_image(state, namespace, name, target, labels, at),
        Command::TagImage {
            namespace,
            source,
            name,
            at,
        } => storage::tag_image(state, namespace, source, name, at),
        Command::DeleteImage { namespace, name } => storage::delete_image(state, namespace, name),
        Command::PrepareSnapshot {
            namespace,
            key,
            parent,
            kind,
            snapshotter,
            labels,
            at,
        } => {
            storage::prepare_snapshot(state, namespace, key, parent, kind, snapshotter, labels, at)
        }
        Command::CommitSnapshot {
            namespace,
            key,
            name,
        } => storage::commit_snapshot(state, namespace, key, name),
        Command::RemoveSnapshot {
            namespace,
            key,
            reason,
        } => storage::remove_snapshot(state, namespace, key, reason),
        Command::CreateLease {
            namespace,
            id,
            ephemeral,
            labels,
            at,
        } => storage::create_lease(state, namespace, id, ephemeral, labels, at),
        Command::AddLeaseResource {
            namespace,
            id,
            resource,
        } => storage::add_lease_resource(state, namespace, id, resource),
        Command::DeleteLease { namespace, id } => storage::delete_lease(state, namespace, id),
        Command::CreateContainer {
            namespace,
            id,
            name,
            config,
            at,
        } => container::create(state, namespace, id, name, config, at),
        Command::CreateNetwork {
            name,
            bridge,
            subnet,
            gateway,
            labels,
            default,
            at,
        } => network::create(state, name, bridge, subnet, gateway, labels, default, at),
        Command::DeleteNetwork { name, at } => network::delete(state, name, at),
        Command::StartContainer { namespace, id, at } => container::start(state, namespace, id, at),
        Command::StopContainer {
            namespace,
            id,
            signal,
            timeout_secs,
            at,
        } => container::stop(state, namespace, id, signal, timeout_secs, at),
        Command::KillContainer {
            namespace,
            id,
            signal,
            at,
        } => container::kill(state, namespace, id, signal, at),
        Command::PauseContainer { namespace, id, at } => container::pause(state, namespace, id, at),
        Command::ResumeContainer { namespace, id, at } => {
            container::resume(state, namespace, id, at)
        }
        Command::DeleteContainer {
            namespace,
            id,
            force,
            at,
        } => container::delete(state, namespace, id, force, at),
    }
}

/// The events that bring a new installation to life: the `default` namespace.
pub fn genesis(state: &State, at: DateTime<Utc>) -> Vec<Event> {
    if state.namespaces.contains_key(&NamespaceName::default_ns()) {
        return Vec::new();
    }
    decide(
        state,
        Command::CreateNamespace {
            name: NamespaceName::default_ns(),
            labels: Labels::new(),
            at,
        },
    )
    .unwrap_or_default()
}
