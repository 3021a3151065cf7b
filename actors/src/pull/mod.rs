//! The pull actor: one per pull of a reference for a platform in a namespace (two
//! requests for the same pull share it). Under an ephemeral lease it resolves the
//! reference, stores the index, the platform's manifest and the config, downloads the
//! layers concurrently (bounded by the registry client's download slots) through
//! digest-verifying, resumable ingests and, pipelined, unpacks them bottom-up (each
//! layer as soon as it and the layer below are in, with the importer's per-layer
//! step) while later layers still download; only when all are snapshots does it
//! name the image. `pull.started` / `pull.layer_fetched` / `pull.completed` or
//! `pull.failed` go into the journal; byte-level progress is only broadcast.
//!
//! [`push`] sends an image of the content store to a registry.

mod actor;
mod fetch;
mod handlers;
pub mod push;

use actix::Addr;
use berth_engine::registry::RegistryClient;
use tokio::sync::{broadcast, oneshot};

use crate::messages::{PullProgress, PullReply, PullRequest};
use crate::storage::Stores;
use crate::supervisor::Supervisor;
use crate::WriterHandle;

pub use fetch::ingest_ref;

/// One pull's actor.
pub struct PullActor {
    pub(crate) id: String,
    pub(crate) request: PullRequest,
    pub(crate) writer: WriterHandle,
    pub(crate) stores: Stores,
    pub(crate) supervisor: Addr<Supervisor>,
    pub(crate) registry: RegistryClient,
    pub(crate) progress: broadcast::Sender<PullProgress>,
    pub(crate) waiters: Vec<oneshot::Sender<Result<PullReply, berth_engine::EngineError>>>,
    pub(crate) outcome: Option<Result<PullReply, berth_engine::EngineError>>,
}

impl PullActor {
    /// A pull of `request`; it starts when the actor does.
    pub fn new(
        request: PullRequest,
        writer: WriterHandle,
        stores: Stores,
        supervisor: Addr<Supervisor>,
        registry: RegistryClient,
    ) -> Self {
        let id = format!(
            "{}-{:08x}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            rand_u32()
        );
        PullActor {
            id,
            request,
            writer,
            stores,
            supervisor,
            registry,
            progress: broadcast::channel(256).0,
            waiters: Vec::new(),
            outcome: None,
        }
    }
}

/// A little randomness for ids without a dependency: the clock's nanoseconds mixed
/// with a process-wide counter.
fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = chrono::Utc::now().timestamp_subsec_nanos();
    n.rotate_left(7) ^ COUNTER.fetch_add(0x7f4a_7c15, Ordering::Relaxed) ^ std::process::id()
}
