//! State of the storage aggregates: content, images, snapshots, leases, imports and pulls
//! in flight. One `match` per aggregate.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::State;
use crate::event::{Event, LeaseResource, Target};
use crate::ids::{Digest, ImageName, Labels, NamespaceName};
use crate::snapshot::{Kind, SnapshotId};

/// A blob berth holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentRecord {
    /// Digest.
    pub digest: Digest,
    /// Size.
    pub size: u64,
    /// Labels.
    pub labels: Labels,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
}

/// A named image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Name.
    pub name: ImageName,
    /// Target manifest or index.
    pub target: Target,
    /// Labels.
    pub labels: Labels,
    /// First stored.
    pub created_at: DateTime<Utc>,
    /// Last stored.
    pub updated_at: DateTime<Utc>,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Key (active, view) or name (committed).
    pub key: String,
    /// Storage id.
    pub id: SnapshotId,
    /// Parent's name.
    pub parent: Option<String>,
    /// Kind.
    pub kind: Kind,
    /// Snapshotter holding it.
    pub snapshotter: String,
    /// Labels.
    pub labels: Labels,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// False between the intent and its outcome (storage may be half made).
    pub ready: bool,
}

/// A lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Id.
    pub id: String,
    /// Dropped at the next daemon start.
    pub ephemeral: bool,
    /// Labels.
    pub labels: Labels,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// What it protects.
    pub resources: BTreeSet<LeaseResource>,
}

/// An import in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Import {
    /// Id.
    pub id: String,
    /// Namespace.
    pub namespace: NamespaceName,
    /// Requested name.
    pub name: Option<ImageName>,
    /// Started.
    pub started_at: DateTime<Utc>,
}

/// A pull in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    /// Id.
    pub id: String,
    /// Namespace.
    pub namespace: NamespaceName,
    /// The reference being pulled.
    pub reference: String,
    /// The platform.
    pub platform: String,
    /// Started.
    pub started_at: DateTime<Utc>,
}

/// Everything storage-related in [`State`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// Blobs (global, as the content store is).
    pub content: BTreeMap<Digest, ContentRecord>,
    /// Images per namespace.
    pub images: BTreeMap<NamespaceName, BTreeMap<ImageName, Image>>,
    /// Snapshots per namespace, by key or committed name.
    pub snapshots: BTreeMap<NamespaceName, BTreeMap<String, Snapshot>>,
    /// The next snapshot storage id.
    pub next_snapshot_id: SnapshotId,
    /// Leases per namespace.
    pub leases: BTreeMap<NamespaceName, BTreeMap<String, Lease>>,
    /// Imports in flight, by id.
    pub imports: BTreeMap<String, Import>,
    /// Pulls in flight, by id.
    #[serde(default)]
    pub pulls: BTreeMap<String, Pull>,
}

impl Storage {
    /// The snapshot `key` of `ns`.
    pub fn snapshot(&self, ns: &NamespaceName, key: &str) -> Option<&Snapshot> {
        self.snapshots.get(ns).and_then(|m| m.get(key))
    }

    /// The committed ancestors of a snapshot whose parent is `parent`, nearest first,
    /// as storage ids.
    pub fn parent_ids(&self, ns: &NamespaceName, parent: Option<&str>) -> Vec<SnapshotId> {
        let mut ids = Vec::new();
        let mut next = parent.map(str::to_string);
        while let Some(p) = next {
            match self.snapshot(ns, &p) {
                Some(s) => {
                    ids.push(s.id);
                    next = s.parent.clone();
                }
                None => break,
            }
        }
        ids
    }

    /// The image `name` of `ns`.
    pub fn image(&self, ns: &NamespaceName, name: &ImageName) -> Option<&Image> {
        self.images.get(ns).and_then(|m| m.get(name))
    }
}

pub(super) fn apply(state: &mut State, event: &Event) {
    let st = &mut state.storage;
    match event {
        Event::ContentCommitted(e) => {
            st.content
                .entry(e.digest.clone())
                .and_modify(|c| c.labels.extend(e.labels.clone()))
                .or_insert_with(|| ContentRecord {
                    digest: e.digest.clone(),
                    size: e.size,
                    labels: e.labels.clone(),
                    committed_at: e.at,
                });
        }
        Event::ContentLabelsSet(e) => {
            if let Some(c) = st.content.get_mut(&e.digest) {
                c.labels = e.labels.clone();
            }
        }
        Event::ContentDeleted(e) => {
            st.content.remove(&e.digest);
        }
        Event::ImageStored(e) => {
            let images = st.images.entry(e.namespace.clone()).or_default();
            let created_at = images.get(&e.name).map_or(e.at, |i| i.created_at);
            images.insert(
                e.name.clone(),
                Image {
                    name: e.name.clone(),
                    target: e.target.clone(),
                    labels: e.labels.clone(),
                    created_at,
                    updated_at: e.at,
                },
            );
        }
        Event::ImageDeleted(e) => {
            if let Some(m) = st.images.get_mut(&e.namespace) {
                m.remove(&e.name);
                if m.is_empty() {
                    st.images.remove(&e.namespace);
                }
            }
        }
        Event::SnapshotPrepareRequested(e) => {
            st.next_snapshot_id = st.next_snapshot_id.max(e.id + 1);
            st.snapshots.entry(e.namespace.clone()).or_default().insert(
                e.key.clone(),
                Snapshot {
                    key: e.key.clone(),
                    id: e.id,
                    parent: e.parent.clone(),
                    kind: e.kind,
                    snapshotter: e.snapshotter.clone(),
                    labels: e.labels.clone(),
                    created_at: e.at,
                    ready: false,
                },
            );
        }
        Event::SnapshotPrepared(e) => {
            if let Some(s) = st
                .snapshots
                .get_mut(&e.namespace)
                .and_then(|m| m.get_mut(&e.key))
            {
                s.ready = true;
            }
        }
        Event::SnapshotCommitted(e) => {
            if let Some(m) = st.snapshots.get_mut(&e.namespace) {
                if let Some(mut s) = m.remove(&e.key) {
                    s.key = e.name.clone();
                    s.kind = Kind::Committed;
                    s.ready = true;
                    m.insert(e.name.clone(), s);
                }
            }
        }
        Event::SnapshotRemoved(e) => {
            if let Some(m) = st.snapshots.get_mut(&e.namespace) {
                m.remove(&e.key);
                if m.is_empty() {
                    st.snapshots.remove(&e.namespace);
                }
            }
        }
        Event::LeaseCreated(e) => {
            st.leases.entry(e.namespace.clone()).or_default().insert(
                e.id.clone(),
                Lease {
                    id: e.id.clone(),
                    ephemeral: e.ephemeral,
                    labels: e.labels.clone(),
                    created_at: e.at,
                    resources: BTreeSet::new(),
                },
            );
        }
        Event::LeaseResourceAdded(e) => {
            if let Some(l) = st
                .leases
                .get_mut(&e.namespace)
                .and_then(|m| m.get_mut(&e.id))
            {
                l.resources.insert(e.resource.clone());
            }
        }
        Event::LeaseDeleted(e) => {
            if let Some(m) = st.leases.get_mut(&e.namespace) {
                m.remove(&e.id);
                if m.is_empty() {
                    st.leases.remove(&e.namespace);
                }
            }
        }
        Event::ImportStarted(e) => {
            st.imports.insert(
                e.id.clone(),
                Import {
                    id: e.id.clone(),
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    started_at: e.at,
                },
            );
        }
        Event::ImportCompleted(e) => {
            st.imports.remove(&e.id);
        }
        Event::ImportFailed(e) => {
            st.imports.remove(&e.id);
        }
        Event::PullStarted(e) => {
            st.pulls.insert(
                e.id.clone(),
                Pull {
                    id: e.id.clone(),
                    namespace: e.namespace.clone(),
                    reference: e.reference.clone(),
                    platform: e.platform.clone(),
                    started_at: e.at,
                },
            );
        }
        Event::PullCompleted(e) => {
            st.pulls.remove(&e.id);
        }
        Event::PullFailed(e) => {
            st.pulls.remove(&e.id);
        }
        Event::PullLayerFetched(_) | Event::GcCompleted(_) => {}
        _ => {}
    }
}
