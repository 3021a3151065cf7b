//! [`State`]: a pure fold of the events. `apply` is infallible and does no IO; it
//! dispatches each event to its aggregate's module, where one `match` holds every
//! transition of that aggregate.

pub mod container;
mod namespace;
pub mod network;
pub mod storage;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::NamespaceName;

pub use container::{Container, Containers, Status};
pub use namespace::Namespace;
pub use network::{Network, Networks};
pub use storage::{ContentRecord, Image, Import, Lease, Pull, Snapshot, Storage};

/// Version of the checkpoint encoding of [`State`]. A checkpoint of another version is
/// ignored (recovery replays the journal from the start instead).
pub const STATE_SCHEMA: u16 = 4;

/// Everything berth knows, derived from the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The sequence number of the last event applied.
    pub seq: u64,
    /// Namespaces by name.
    pub namespaces: BTreeMap<NamespaceName, Namespace>,
    /// Content, images, snapshots, leases, imports.
    pub storage: Storage,
    /// Containers by id.
    pub containers: Containers,
    /// Networks by name (host-wide).
    pub networks: Networks,
}

#[derive(Serialize, Deserialize)]
struct CheckpointForm {
    schema: u16,
    state: State,
}

impl State {
    /// An empty state (nothing applied yet).
    pub fn new() -> State {
        State::default()
    }

    /// Applies the event stored at `seq`.
    pub fn apply_at(&mut self, seq: u64, event: &Event) {
        apply(self, event);
        self.seq = seq;
    }

    /// Encodes the state for a journal checkpoint.
    pub fn to_checkpoint(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            schema: u16,
            state: &'a State,
        }
        rmp_serde::to_vec_named(&Borrowed {
            schema: STATE_SCHEMA,
            state: self,
        })
        .expect("state always encodes")
    }

    /// Decodes a checkpoint; an error when it is of another schema or damaged.
    pub fn from_checkpoint(bytes: &[u8]) -> Result<State, String> {
        let form: CheckpointForm =
            rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable checkpoint: {e}"))?;
        if form.schema != STATE_SCHEMA {
            return Err(format!(
                "checkpoint schema {} is not this berth's {STATE_SCHEMA}",
                form.schema
            ));
        }
        Ok(form.state)
    }

    /// The container `id`, if it exists in `ns`.
    pub fn container(
        &self,
        ns: &NamespaceName,
        id: &crate::container::ContainerId,
    ) -> Option<&Container> {
        self.containers.get(id).filter(|c| &c.namespace == ns)
    }

    /// Finds a container of `ns` by full id, name, or unique id prefix (as Docker).
    pub fn find_container(&self, ns: &NamespaceName, key: &str) -> crate::Result<&Container> {
        let in_ns = || self.containers.values().filter(move |c| &c.namespace == ns);
        if let Some(c) = in_ns().find(|c| c.id.as_str() == key || c.name == key) {
            return Ok(c);
        }
        let mut matches = in_ns().filter(|c| !key.is_empty() && c.id.as_str().starts_with(key));
        match (matches.next(), matches.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(crate::EngineError::InvalidArgument(format!(
                "container id prefix {key:?} is ambiguous; give more characters"
            ))),
            _ => Err(crate::EngineError::NotFound {
                kind: "container",
                id: key.to_string(),
            }),
        }
    }
}

/// Applies one event. Infallible: an event is a fact that already happened; one that
/// does not fit the state (which `decide` never produces) changes nothing.
pub fn apply(state: &mut State, event: &Event) {
    match event {
        Event::NamespaceCreated(_) | Event::NamespaceDeleted(_) => {
            namespace::apply(&mut state.namespaces, event)
        }
        e if e.container_id().is_some() => container::apply(&mut state.containers, e),
        Event::NetworkCreated(_) | Event::NetworkDeleted(_) => {
            network::apply(&mut state.networks, event)
        }
        _ => storage::apply(state, event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{NamespaceCreated, NamespaceDeleted};
    use crate::ids::Labels;

    fn ns(n: &str) -> NamespaceName {
        NamespaceName::parse(n).unwrap()
    }

    fn events() -> Vec<Event> {
        let at = chrono::Utc::now();
        let c = |n: &str| {
            Event::NamespaceCreated(NamespaceCreated {
                name: ns(n),
                labels: Labels::new(),
                created_at: at,
            })
        };
        let d = |n: &str| Event::NamespaceDeleted(NamespaceDeleted { name: ns(n) });
        vec![c("default"), c("a"), c("b"), d("a"), c("c"), d("b"), c("a")]
    }

    #[test]
    fn fold_and_checkpoint_roundtrip() {
        let mut s = State::new();
        for (i, e) in events().iter().enumerate() {
            s.apply_at(i as u64 + 1, e);
        }
        let names: Vec<_> = s.namespaces.keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["a", "c", "default"]);
        assert_eq!(s.seq, 7);
        let back = State::from_checkpoint(&s.to_checkpoint()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn checkpoint_of_other_schema_is_refused() {
        #[derive(Serialize)]
        struct Other {
            schema: u16,
            state: State,
        }
        let bytes = rmp_serde::to_vec_named(&Other {
            schema: 99,
            state: State::new(),
        })
        .unwrap();
        assert!(State::from_checkpoint(&bytes).is_err());
        assert!(State::from_checkpoint(b"junk").is_err());
    }
}
