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
    if let Some(c) = state
        .containers
        .values()
        .find(|c| c.namespace == namespace && c.config.image == name)
    {
        return Err(EngineError::FailedPrecondition(format!(
            "image {name} is used by container {} ({}); delete the container first",
            c.name,
            c.id.short()
        )));
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

#[cfg(test)]
mod tests {
    //! Given / when / then, no IO.
    use super::*;
    use crate::decide::{decide, genesis, Command};
    use crate::ErrorKind;

    fn ns() -> NamespaceName {
        NamespaceName::default_ns()
    }

    fn given(events: &[Event]) -> State {
        let mut s = State::new();
        for e in genesis(&s, Utc::now()) {
            s.apply_at(1, &e);
        }
        for (i, e) in events.iter().enumerate() {
            s.apply_at(i as u64 + 2, e);
        }
        s
    }

    fn then(state: &State, cmd: Command) -> Result<Vec<Event>> {
        decide(state, cmd)
    }

    fn digest(b: &[u8]) -> Digest {
        Digest::of_bytes(b)
    }

    fn committed(b: &[u8]) -> Event {
        Event::ContentCommitted(ContentCommitted {
            namespace: ns(),
            digest: digest(b),
            size: b.len() as u64,
            labels: Labels::new(),
            at: Utc::now(),
        })
    }

    fn prepare(key: &str, parent: Option<&str>) -> Command {
        Command::PrepareSnapshot {
            namespace: ns(),
            key: key.into(),
            parent: parent.map(String::from),
            kind: Kind::Active,
            snapshotter: "overlayfs".into(),
            labels: Labels::new(),
            at: Utc::now(),
        }
    }

    #[test]
    fn content_is_recorded_once() {
        let s = given(&[committed(b"m")]);
        let again = then(
            &s,
            Command::CommitContent {
                namespace: ns(),
                digest: digest(b"m"),
                size: 1,
                labels: Labels::new(),
                at: Utc::now(),
            },
        )
        .unwrap();
        assert!(again.is_empty(), "a known blob adds no event");
        let wrong = then(
            &s,
            Command::CommitContent {
                namespace: ns(),
                digest: digest(b"m"),
                size: 2,
                labels: Labels::new(),
                at: Utc::now(),
            },
        );
        assert_eq!(wrong.unwrap_err().kind(), ErrorKind::FailedPrecondition);
    }

    #[test]
    fn images_need_their_target_in_the_store() {
        let target = Target {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest(b"manifest"),
            size: 8,
        };
        let store = |s: &State| {
            then(
                s,
                Command::StoreImage {
                    namespace: ns(),
                    name: ImageName::parse("app").unwrap(),
                    target: target.clone(),
                    labels: Labels::new(),
                    at: Utc::now(),
                },
            )
        };
        assert_eq!(
            store(&given(&[])).unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
        let s = given(&[committed(b"manifest")]);
        let events = store(&s).unwrap();
        let s = given(&[committed(b"manifest"), events[0].clone()]);
        assert!(
            store(&s).unwrap().is_empty(),
            "storing the same again is a no-op"
        );
        let tagged = then(
            &s,
            Command::TagImage {
                namespace: ns(),
                source: ImageName::parse("app").unwrap(),
                name: ImageName::parse("app:v2").unwrap(),
                at: Utc::now(),
            },
        )
        .unwrap();
        assert_eq!(tagged.len(), 1);
        let missing = then(
            &s,
            Command::DeleteImage {
                namespace: ns(),
                name: ImageName::parse("nope").unwrap(),
            },
        );
        assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn snapshot_lifecycle() {
        let s = given(&[]);
        let e1 = then(&s, prepare("a", None)).unwrap();
        let Event::SnapshotPrepareRequested(req) = &e1[0] else {
            panic!()
        };
        assert_eq!(req.id, 1);
        let s = given(&e1);
        // not ready yet: cannot commit
        let err = then(
            &s,
            Command::CommitSnapshot {
                namespace: ns(),
                key: "a".into(),
                name: "layer1".into(),
            },
        );
        assert_eq!(err.unwrap_err().kind(), ErrorKind::FailedPrecondition);
        let mut events = e1.clone();
        events.push(Event::SnapshotPrepared(SnapshotPrepared {
            namespace: ns(),
            key: "a".into(),
        }));
        let s = given(&events);
        assert_eq!(
            then(&s, prepare("a", None)).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            then(&s, prepare("b", Some("a"))).unwrap_err().kind(),
            ErrorKind::FailedPrecondition,
            "parent must be committed"
        );
        assert_eq!(
            then(&s, prepare("b", Some("zz"))).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        events.extend(
            then(
                &s,
                Command::CommitSnapshot {
                    namespace: ns(),
                    key: "a".into(),
                    name: "layer1".into(),
                },
            )
            .unwrap(),
        );
        let s = given(&events);
        let child = then(&s, prepare("b", Some("layer1"))).unwrap();
        let Event::SnapshotPrepareRequested(req) = &child[0] else {
            panic!()
        };
        assert_eq!(req.id, 2, "ids are never reused");
        events.extend(child);
        let s = given(&events);
        assert_eq!(s.storage.parent_ids(&ns(), Some("layer1")), vec![1]);
        let err = then(
            &s,
            Command::RemoveSnapshot {
                namespace: ns(),
                key: "layer1".into(),
                reason: "x".into(),
            },
        );
        assert_eq!(
            err.unwrap_err().kind(),
            ErrorKind::FailedPrecondition,
            "a parent with children stays"
        );
    }

    #[test]
    fn namespaces_holding_storage_cannot_be_deleted() {
        let mut s = given(&[]);
        let ns_a = NamespaceName::parse("a").unwrap();
        for e in decide(
            &s,
            Command::CreateNamespace {
                name: ns_a.clone(),
                labels: Labels::new(),
                at: Utc::now(),
            },
        )
        .unwrap()
        {
            s.apply_at(10, &e);
        }
        for e in decide(
            &s,
            Command::CreateLease {
                namespace: ns_a.clone(),
                id: "l".into(),
                ephemeral: true,
                labels: Labels::new(),
                at: Utc::now(),
            },
        )
        .unwrap()
        {
            s.apply_at(11, &e);
        }
        let err = decide(&s, Command::DeleteNamespace { name: ns_a.clone() }).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("leases"), "{err}");
        for e in decide(
            &s,
            Command::DeleteLease {
                namespace: ns_a.clone(),
                id: "l".into(),
            },
        )
        .unwrap()
        {
            s.apply_at(12, &e);
        }
        assert!(decide(&s, Command::DeleteNamespace { name: ns_a }).is_ok());
    }
}
