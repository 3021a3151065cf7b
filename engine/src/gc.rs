//! Garbage collection: what is still referenced.
//!
//! Roots are image names (every namespace), lease resources, and snapshots that other
//! objects use (containers, later). From an image target the walk follows index →
//! manifests present in the store → config and layers; the config's `rootfs.diff_ids`
//! give the chain ids, i.e. the committed snapshots of the image's namespace; every
//! snapshot keeps its parent chain. Everything else is collectable: blobs and
//! snapshots the state knows, blobs and snapshot storage on disk it does not know
//! (left by a crash), and ingests no lease protects.
//!
//! Marking reads manifests, indexes and configs through `read_blob` (small JSON
//! documents); it is pure otherwise. The caller removes what [`plan`] lists.

use std::collections::{BTreeSet, HashSet};

use crate::event::LeaseResource;
use crate::ids::{Digest, NamespaceName};
use crate::image::{self, Parsed};
use crate::snapshot::SnapshotId;
use crate::state::State;

/// What may be removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Blobs the state records that nothing references.
    pub content: Vec<Digest>,
    /// Blob files on disk the state does not record and no lease protects.
    pub orphan_blobs: Vec<Digest>,
    /// Snapshots (namespace, key) nothing references, children before parents.
    pub snapshots: Vec<(NamespaceName, String)>,
    /// Snapshot storage on disk that no snapshot of the state owns.
    pub orphan_storage: Vec<SnapshotId>,
    /// Ingest refs whose expected blob no lease protects.
    pub ingests: Vec<String>,
}

impl Plan {
    /// True when there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.orphan_blobs.is_empty()
            && self.snapshots.is_empty()
            && self.orphan_storage.is_empty()
            && self.ingests.is_empty()
    }
}

/// Everything leases protect.
pub fn leased(state: &State) -> (HashSet<Digest>, HashSet<(NamespaceName, String)>) {
    let mut content = HashSet::new();
    let mut snaps = HashSet::new();
    for (ns, leases) in &state.storage.leases {
        for lease in leases.values() {
            for r in &lease.resources {
                match r {
                    LeaseResource::Content(d) => {
                        content.insert(d.clone());
                    }
                    LeaseResource::Snapshot(k) => {
                        snaps.insert((ns.clone(), k.clone()));
                    }
                }
            }
        }
    }
    (content, snaps)
}

/// The blobs and snapshots reachable from images and leases (and `extra_snapshots`,
/// e.g. containers' root filesystems).
pub fn mark(
    state: &State,
    extra_snapshots: &[(NamespaceName, String)],
    read_blob: &dyn Fn(&Digest) -> Option<Vec<u8>>,
) -> (HashSet<Digest>, HashSet<(NamespaceName, String)>) {
    let (mut live_content, mut live_snaps) = leased(state);
    live_snaps.extend(extra_snapshots.iter().cloned());
    live_snaps.extend(
        state
            .containers
            .values()
            .map(|c| (c.namespace.clone(), c.snapshot_key.clone())),
    );
    for (ns, images) in &state.storage.images {
        for img in images.values() {
            let mut stack = vec![(
                img.target.digest.clone(),
                Some(img.target.media_type.clone()),
            )];
            while let Some((digest, media_type)) = stack.pop() {
                if !live_content.insert(digest.clone()) {
                    continue;
                }
                let Some(bytes) = read_blob(&digest) else {
                    continue;
                };
                match image::parse(media_type.as_deref(), &bytes) {
                    Ok(Parsed::Index(index)) => {
                        for d in index.manifests() {
                            if let Ok(child) = image::descriptor_digest(d) {
                                stack.push((child, Some(d.media_type().to_string())));
                            }
                        }
                    }
                    Ok(Parsed::Manifest(m)) => {
                        live_content.insert(m.config().digest.clone());
                        for l in m.layers() {
                            live_content.insert(l.digest.clone());
                        }
                        if let Some(cfg) = read_blob(&m.config().digest)
                            .and_then(|b| image::Config::parse(&b).ok())
                        {
                            for chain in cfg.chain_ids() {
                                live_snaps.insert((ns.clone(), chain.to_string()));
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }
    // Parents of live snapshots are live.
    let mut stack: Vec<(NamespaceName, String)> = live_snaps.iter().cloned().collect();
    while let Some((ns, key)) = stack.pop() {
        if let Some(parent) = state
            .storage
            .snapshot(&ns, &key)
            .and_then(|s| s.parent.clone())
        {
            if live_snaps.insert((ns.clone(), parent.clone())) {
                stack.push((ns, parent));
            }
        }
    }
    (live_content, live_snaps)
}

/// Plans a collection.
pub fn plan(
    state: &State,
    extra_snapshots: &[(NamespaceName, String)],
    blobs_on_disk: &[Digest],
    storage_on_disk: &[SnapshotId],
    ingests: &[(String, Option<Digest>)],
    read_blob: &dyn Fn(&Digest) -> Option<Vec<u8>>,
) -> Plan {
    let (live_content, live_snaps) = mark(state, extra_snapshots, read_blob);
    let content: Vec<Digest> = state
        .storage
        .content
        .keys()
        .filter(|d| !live_content.contains(*d))
        .cloned()
        .collect();
    let orphan_blobs: Vec<Digest> = blobs_on_disk
        .iter()
        .filter(|d| !state.storage.content.contains_key(*d) && !live_content.contains(*d))
        .cloned()
        .collect();
    // Snapshots: children first (a child's removal must precede its parent's).
    let mut dead: Vec<(NamespaceName, String)> = Vec::new();
    let all: Vec<(NamespaceName, String)> = state
        .storage
        .snapshots
        .iter()
        .flat_map(|(ns, m)| m.keys().map(move |k| (ns.clone(), k.clone())))
        .filter(|k| !live_snaps.contains(k))
        .collect();
    let mut remaining: BTreeSet<(NamespaceName, String)> = all.into_iter().collect();
    while !remaining.is_empty() {
        let leaves: Vec<(NamespaceName, String)> = remaining
            .iter()
            .filter(|(ns, key)| {
                !remaining.iter().any(|(ons, okey)| {
                    ons == ns
                        && state
                            .storage
                            .snapshot(ons, okey)
                            .is_some_and(|s| s.parent.as_deref() == Some(key.as_str()))
                })
            })
            .cloned()
            .collect();
        if leaves.is_empty() {
            break; // a cycle cannot happen; be safe
        }
        for l in leaves {
            remaining.remove(&l);
            dead.push(l);
        }
    }
    let owned: HashSet<SnapshotId> = state
        .storage
        .snapshots
        .values()
        .flat_map(|m| m.values().map(|s| s.id))
        .collect();
    let orphan_storage: Vec<SnapshotId> = storage_on_disk
        .iter()
        .filter(|id| !owned.contains(id))
        .copied()
        .collect();
    let ingests = ingests
        .iter()
        .filter(|(_, expected)| expected.as_ref().is_none_or(|d| !live_content.contains(d)))
        .map(|(r, _)| r.clone())
        .collect();
    Plan {
        content,
        orphan_blobs,
        snapshots: dead,
        orphan_storage,
        ingests,
    }
}
