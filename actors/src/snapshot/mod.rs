//! The snapshot actor: one per snapshot, owning its storage effects. Metadata changes
//! (which need uniqueness: keys, committed names, parents with children) are decided
//! by the supervisor one at a time; the actor performs the storage side and appends
//! the outcome.

mod actor;
mod handlers;

use berth_engine::ids::NamespaceName;
use berth_engine::snapshot::SnapshotId;

use crate::storage::Stores;
use crate::WriterHandle;

/// One snapshot's actor.
pub struct SnapshotActor {
    pub(crate) namespace: NamespaceName,
    pub(crate) key: String,
    pub(crate) id: SnapshotId,
    pub(crate) stores: Stores,
    pub(crate) writer: WriterHandle,
}

impl SnapshotActor {
    /// An actor for snapshot `key` with storage `id`.
    pub fn new(
        namespace: NamespaceName,
        key: String,
        id: SnapshotId,
        stores: Stores,
        writer: WriterHandle,
    ) -> Self {
        SnapshotActor {
            namespace,
            key,
            id,
            stores,
            writer,
        }
    }
}
