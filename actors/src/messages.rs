//! Every actix message, grouped by recipient.

use actix::Message;
use berth_engine::ids::{Labels, NamespaceName};
use berth_engine::state::Namespace;
use berth_engine::EngineError;

/// A namespace and the journal position its view reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceReply {
    /// The namespace.
    pub namespace: Namespace,
    /// The sequence number of the event that produced it.
    pub seq: u64,
}

// ---- to the Supervisor ----

/// Create a namespace.
#[derive(Debug, Message)]
#[rtype(result = "Result<NamespaceReply, EngineError>")]
pub struct CreateNamespace {
    /// Its name.
    pub name: NamespaceName,
    /// Its labels.
    pub labels: Labels,
}

/// Delete a namespace (routed to its actor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, EngineError>")]
pub struct DeleteNamespace {
    /// Its name.
    pub name: NamespaceName,
}

/// How many entity actors the supervisor holds (for stats and tests).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountActors;
