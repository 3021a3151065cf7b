//! The namespace actor: one per namespace, owning the commands addressed to it so they
//! never interleave.

mod actor;
mod handlers;

use berth_engine::ids::NamespaceName;

use crate::WriterHandle;

/// One namespace's actor.
pub struct NamespaceActor {
    pub(crate) name: NamespaceName,
    pub(crate) writer: WriterHandle,
}

impl NamespaceActor {
    /// An actor for `name`.
    pub fn new(name: NamespaceName, writer: WriterHandle) -> Self {
        NamespaceActor { name, writer }
    }
}
