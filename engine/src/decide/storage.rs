//! Decisions about content, images, snapshots, leases and imports.

use chrono::{DateTime, Utc};

use crate::event::*;
use crate::ids::{validate_key, validate_labels, Digest, ImageName, Labels, NamespaceName};
use crate::snapshot::Kind;
use crate::state::State;
use crate::{EngineError, Result};

fn namespace_exists(state: &State, ns: &NamespaceName) -> Result<()> {
    if state.namespaces.contains_key(ns) {
        Ok(())
    } else {
        Err(EngineError::NotFound {
            kind: "namespace",
            id: ns.to_string(),
        })
    }
}

pub(super) fn commit_content(
    state: &State,
    namespace: NamespaceName,
    digest: Digest,
    size: u64,
    labels: Labels,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    validate_labels(&labels)?;
    if let Some(c) = state.storage.content.get(&digest) {
        if c.size != size {
            return Err(EngineError::FailedPrecondition(format!(
                "blob {digest} is recorded with size {}, not {size}",
                c.size
            )));
        }
        if labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)) {
            return Ok(Vec::new());
        }
    }
    Ok(vec![Event::ContentCommitted(ContentCommitted {
        namespace,
        digest,
        size,
        labels,
        at,
    })])
}

pub(super) fn delete_content(
    state: &State,
    namespace: NamespaceName,
    digest: Digest,
) -> Result<Vec<Event>> {
    if !state.storage.content.contains_key(&digest) {
        return Err(EngineError::NotFound {
            kind: "blob",
            id: digest.to_string(),
        });
    }
    Ok(vec![Event::ContentDeleted(ContentDeleted {
        namespace,
        digest,
    })])
}

pub(super) fn set_content_labels(
    state: &State,
    namespace: NamespaceName,
    digest: Digest,
    labels: Labels,
) -> Result<Vec<Event>> {
    validate_labels(&labels)?;
    if !state.storage.content.contains_key(&digest) {
        return Err(EngineError::NotFound {
            kind: "blob",
            id: digest.to_string(),
        });
    }
    Ok(vec![Event::ContentLabelsSet(ContentLabelsSet {
        namespace,
        digest,
        labels,
    })])
}

pub(super) fn store_image(
    state: &State,
    namespace: NamespaceName,
    name: ImageName,
    target: Target,
    labels: Labels,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    namespace_exists(state, &namespace)?;
    validate_labels(&labels)?;
    match state.storage.content.get(&target.digest) {
        Some(c) if c.size == target.size => {}
        Some(c) => {
            return Err(EngineError::InvalidArgument(format!(
                "image target {} has size {}, not {}",
                target.digest, c.size, target.size
            )))
        }
        None => {
            return Err(EngineError::FailedPrecondition(format!(
                "image target {} is not in the content store",
                target.digest
            )))
        }
    }
    if let Some(existing) = state.storage.image(&namespace, &name) {
        if existing.target == target && existing.labels == labels {
            return Ok(Vec::new());
        }
    }
    Ok(vec![Event::ImageStored(ImageStored {
        namespace,
        name,
        target,
        labels,
        at,
    })])
}

pub(super) fn tag_image(
    state: &State,
    namespace: NamespaceName,
    source: ImageName,
    name: ImageName,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let src = state
        .storage
        .image(&namespace, &source)
        .ok_or_else(|| EngineError::NotFound {
            kind: "image",
            id: source.to_string(),
        })?;
    store_image(
        state,
        namespace,
        name,
        src.target.clone(),
        src.labels.clone(),
        at,
    )
}

pub(super) fn delete_image(
    state: &State,
    namespace: NamespaceName,
    name: ImageName,
) -> Result<Vec<Event>> {
    if state.storage.image(&namespace, &name).is_none() {
        return Err(EngineError::NotFound {
            kind: "image",
            id: name.to_string(),
        });
    }
    Ok(vec![Event::ImageDeleted(ImageDeleted { namespace, name })])
}

#[allow(clippy::too_many_arguments)]
pub(super) fn prepare_snapshot(
    state: &State,
    namespace: NamespaceName,
    key: String,
    parent: Option<String>,
    kind: Kind,
    snapshotter: String,
    labels: Labels,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    namespace_exists(state, &namespace)?;
    validate_key("snapshot key", &key)?;
    validate_labels(&labels)?;
    if kind == Kind::Committed {
        return Err(EngineError::InvalidArgument(
            "a snapshot is prepared active or as a view".into(),
        ));
    }
    if state.storage.snapshot(&namespace, &key).is_some() {
        return Err(EngineError::AlreadyExists {
            kind: "snapshot",
            id: key,
        });
    }
    if let Some(p) = &parent {
        match state.storage.snapshot(&namespace, p) {
            Some(s) if s.kind == Kind::Committed => {}
            Some(_) => {
                return Err(EngineError::FailedPrecondition(format!(
                    "parent snapshot {p:?} is not committed"
                )))
            }
            None => {
                return Err(EngineError::NotFound {
                    kind: "parent snapshot",
                    id: p.clone(),
                })
            }
        }
    } else if kind == Kind::View {
        return Err(EngineError::InvalidArgument("a view needs a parent".into()));
    }
    Ok(vec![Event::SnapshotPrepareRequested(
        SnapshotPrepareRequested {
            namespace,
            key,
            id: state.storage.next_snapshot_id.max(1),
            parent,
            kind,
            snapshotter,
            labels,
            at,
        },
    )])
}

pub(super) fn commit_snapshot(
    state: &State,
    namespace: NamespaceName,
    key: String,
    name: String,
) -> Result<Vec<Event>> {
    validate_key("snapshot name", &name)?;
    match state.storage.snapshot(&namespace, &key) {
        Some(s) if s.kind == Kind::Active && s.ready => {}
        Some(s) if s.kind == Kind::Active => {
            return Err(EngineError::FailedPrecondition(format!(
                "snapshot {key:?} is still being prepared"
            )))
        }
        Some(_) => {
            return Err(EngineError::FailedPrecondition(format!(
                "snapshot {key:?} is not active"
            )))
        }
        None => {
            return Err(EngineError::NotFound {
                kind: "snapshot",
                id: key,
            })
        }
    }
    if state.storage.snapshot(&namespace, &name).is_some() {
        return Err(EngineError::AlreadyExists {
            kind: "snapshot",
            id: name,
        });
    }
    Ok(vec![Event::SnapshotCommitted(SnapshotCommitted {
        namespace,
        key,
        name,
    })])
}

pub(super) fn remove_snapshot(
    state: &State,
    namespace: NamespaceName,
    key: String,
    reason: String,
) -> Result<Vec<Event>> {
    if state.storage.snapshot(&namespace, &key).is_none() {
        return Err(EngineError::NotFound {
            kind: "snapshot",
            id: key,
        });
    }
    let children: Vec<&str> = state
        .storage
        .snapshots
        .get(&namespace)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|s| s.parent.as_deref() == Some(key.as_str()))
        .map(|s| s.key.as_str())
        .collect();
    if !children.is_empty() {
        return Err(EngineError::FailedPrecondition(format!(
            "snapshot {key:?} has children: {}",
            children.join(", ")
        )));
    }
    Ok(vec![Event::SnapshotRemoved(SnapshotRemoved {
        namespace,
        key,
        reason,
    })])
}

pub(super) fn create_lease(
    state: &State,
    namespace: NamespaceName,
    id: String,
    ephemeral: bool,
    labels: Labels,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    namespace_exists(state, &namespace)?;
    validate_key("lease id", &id)?;
    validate_labels(&labels)?;
    if state
        .storage
        .leases
        .get(&namespace)
        .is_some_and(|m| m.contains_key(&id))
    {
        return Err(EngineError::AlreadyExists { kind: "lease", id });
    }
    Ok(vec![Event::LeaseCreated(LeaseCreated {
        namespace,
        id,
        ephemeral,
        labels,
        at,
    })])
}

pub(super) fn add_lease_resource(
    state: &State,
    namespace: NamespaceName,
    id: String,
    resource: LeaseResource,
) -> Result<Vec<Event>> {
    let lease = state
        .storage
        .leases
        .get(&namespace)
        .and_then(|m| m.get(&id))
        .ok_or_else(|| EngineError::NotFound {
            kind: "lease",
            id: id.clone(),
        })?;
    if lease.resources.contains(&resource) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::LeaseResourceAdded(LeaseResourceAdded {
        namespace,
        id,
        resource,
    })])
}

pub(super) fn delete_lease(
    state: &State,
    namespace: NamespaceName,
    id: String,
) -> Result<Vec<Event>> {
    if !state
        .storage
        .leases
        .get(&namespace)
        .is_some_and(|m| m.contains_key(&id))
    {
        return Err(EngineError::NotFound { kind: "lease", id });
    }
    Ok(vec![Event::LeaseDeleted(LeaseDeleted { namespace, id })])
}
