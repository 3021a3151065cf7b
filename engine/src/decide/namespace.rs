//! Decisions about namespaces.

use chrono::{DateTime, Utc};

use crate::event::{Event, NamespaceCreated, NamespaceDeleted};
use crate::ids::{validate_labels, Labels, NamespaceName, DEFAULT_NAMESPACE};
use crate::state::State;
use crate::{EngineError, Result};

pub(super) fn create(
    state: &State,
    name: NamespaceName,
    labels: Labels,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    validate_labels(&labels)?;
    if state.namespaces.contains_key(&name) {
        return Err(EngineError::AlreadyExists {
            kind: "namespace",
            id: name.to_string(),
        });
    }
    Ok(vec![Event::NamespaceCreated(NamespaceCreated {
        name,
        labels,
        created_at: at,
    })])
}

pub(super) fn delete(state: &State, name: NamespaceName) -> Result<Vec<Event>> {
    if name.as_str() == DEFAULT_NAMESPACE {
        return Err(EngineError::FailedPrecondition(
            "the default namespace cannot be deleted".into(),
        ));
    }
    if !state.namespaces.contains_key(&name) {
        return Err(EngineError::NotFound {
            kind: "namespace",
            id: name.to_string(),
        });
    }
    let st = &state.storage;
    let mut held = Vec::new();
    if st.images.get(&name).is_some_and(|m| !m.is_empty()) {
        held.push("images");
    }
    if st.snapshots.get(&name).is_some_and(|m| !m.is_empty()) {
        held.push("snapshots");
    }
    if st.leases.get(&name).is_some_and(|m| !m.is_empty()) {
        held.push("leases");
    }
    if st.imports.values().any(|i| i.namespace == name) {
        held.push("imports in progress");
    }
    if state.containers.values().any(|c| c.namespace == name) {
        held.push("containers");
    }
    if !held.is_empty() {
        return Err(EngineError::FailedPrecondition(format!(
            "namespace {name:?} is not empty: it holds {}",
            held.join(", ")
        )));
    }
    Ok(vec![Event::NamespaceDeleted(NamespaceDeleted { name })])
}

#[cfg(test)]
mod tests {
    //! Given / when / then, no IO.
    use crate::decide::{decide, genesis, Command};
    use crate::event::Event;
    use crate::ids::{Labels, NamespaceName};
    use crate::state::State;
    use crate::ErrorKind;

    fn ns(n: &str) -> NamespaceName {
        NamespaceName::parse(n).unwrap()
    }

    fn given(events: &[Event]) -> State {
        let mut s = State::new();
        for (i, e) in events.iter().enumerate() {
            s.apply_at(i as u64 + 1, e);
        }
        s
    }

    fn create(n: &str) -> Command {
        Command::CreateNamespace {
            name: ns(n),
            labels: Labels::new(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn genesis_creates_default_once() {
        let first = genesis(&State::new(), chrono::Utc::now());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].topic(), "namespace.created");
        assert!(genesis(&given(&first), chrono::Utc::now()).is_empty());
    }

    #[test]
    fn create_then_duplicate_is_refused() {
        let events = decide(&State::new(), create("blue")).unwrap();
        let s = given(&events);
        assert!(s.namespaces.contains_key(&ns("blue")));
        let err = decide(&s, create("blue")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn delete_rules() {
        let mut events = genesis(&State::new(), chrono::Utc::now());
        events.extend(decide(&given(&events), create("blue")).unwrap());
        let s = given(&events);
        let err = decide(
            &s,
            Command::DeleteNamespace {
                name: ns("default"),
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let err = decide(&s, Command::DeleteNamespace { name: ns("green") }).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let out = decide(&s, Command::DeleteNamespace { name: ns("blue") }).unwrap();
        events.extend(out);
        assert!(!given(&events).namespaces.contains_key(&ns("blue")));
    }

    #[test]
    fn bad_labels_are_refused() {
        let mut labels = Labels::new();
        labels.insert(String::new(), "v".into());
        let err = decide(
            &State::new(),
            Command::CreateNamespace {
                name: ns("x"),
                labels,
                at: chrono::Utc::now(),
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
