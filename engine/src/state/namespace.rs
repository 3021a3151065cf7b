//! The namespace aggregate's state and its transitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::{Labels, NamespaceName};

/// A namespace as berth knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// Its name.
    pub name: NamespaceName,
    /// Its labels.
    pub labels: Labels,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

pub(super) fn apply(namespaces: &mut BTreeMap<NamespaceName, Namespace>, event: &Event) {
    match event {
        Event::NamespaceCreated(e) => {
            namespaces.insert(
                e.name.clone(),
                Namespace {
                    name: e.name.clone(),
                    labels: e.labels.clone(),
                    created_at: e.created_at,
                },
            );
        }
        Event::NamespaceDeleted(e) => {
            namespaces.remove(&e.name);
        }
        _ => {}
    }
}
