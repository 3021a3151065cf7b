//! The pure decision: a [`Command`] against a [`State`] gives the events to append, or
//! the reason it is refused. No IO, no clock (times come in the command).

mod namespace;

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::ids::{Labels, NamespaceName};
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
}

/// Decides a command against the state.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>> {
    match command {
        Command::CreateNamespace { name, labels, at } => namespace::create(state, name, labels, at),
        Command::DeleteNamespace { name } => namespace::delete(state, name),
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
