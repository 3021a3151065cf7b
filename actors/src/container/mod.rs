//! The container actor: one per container, carrying out its lifecycle through its shim
//! and recording every transition as an intent event followed by its outcome. The
//! actor keeps nothing that the journal does not: after a restart it is rebuilt from
//! the state and re-attached to the shim ([`crate::messages::RecoverContainer`]).
//!
//! - `handlers.rs`: one handler per verb, the same shape each: decide the intent,
//!   append it, do the effect (shim, runtime, files), append the outcome.
//! - `shim.rs`: the asynchronous client of the shim's control socket.
//! - `fs.rs`: bundle, rootfs mount, logs (blocking).
//! - [`ContainerEnv`]: paths and binaries.

mod env;
pub(crate) mod fs;
mod handlers;
pub(crate) mod net;
mod recover;
pub(crate) mod shim;

use std::time::Duration;

pub use env::{ContainerEnv, NetworkEnv};

use actix::{Actor, Addr, Context};
use berth_engine::container::{ContainerId, ExitStatus};
use berth_engine::ids::NamespaceName;
use berth_engine::state::Container;
use berth_engine::EngineError;
use tokio::sync::oneshot;

use crate::messages::{ContainerReply, CreateContainer, Provision};
use crate::storage::Stores;
use crate::supervisor::Supervisor;
use crate::WriterHandle;

/// One container's actor.
pub struct ContainerActor {
    pub(crate) namespace: NamespaceName,
    pub(crate) id: ContainerId,
    pub(crate) env: ContainerEnv,
    pub(crate) writer: WriterHandle,
    pub(crate) stores: Stores,
    pub(crate) supervisor: Addr<Supervisor>,
    /// Callers of wait, answered at the next recorded exit.
    pub(crate) waiters: Vec<oneshot::Sender<Option<ExitStatus>>>,
}

impl ContainerActor {
    /// The actor of container `id`.
    pub fn new(
        namespace: NamespaceName,
        id: ContainerId,
        env: ContainerEnv,
        writer: WriterHandle,
        stores: Stores,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        ContainerActor {
            namespace,
            id,
            env,
            writer,
            stores,
            supervisor,
            waiters: Vec::new(),
        }
    }

    /// The container as the state has it now.
    pub(crate) fn current(&self) -> Result<Container, EngineError> {
        self.writer
            .state()
            .read()
            .container(&self.namespace, &self.id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                kind: "container",
                id: self.id.to_string(),
            })
    }

    pub(crate) fn reply(&self, seq: u64) -> Result<ContainerReply, EngineError> {
        Ok(ContainerReply {
            container: self.current()?,
            seq,
        })
    }
}

impl Actor for ContainerActor {
    type Context = Context<Self>;
}

/// The back-off before restart number `attempt` (1-based): 100 ms doubling, at most 30 s.
pub fn restart_delay(attempt: u32) -> Duration {
    let shift = attempt.saturating_sub(1).min(16);
    Duration::from_millis(100u64.saturating_mul(1u64 << shift)).min(Duration::from_secs(30))
}

/// Creates a container: the intent through the supervisor (which decides uniqueness
/// and resolves the image), then the snapshot and bundle through the new container's
/// actor.
pub async fn create(
    supervisor: &Addr<Supervisor>,
    msg: CreateContainer,
) -> Result<ContainerReply, EngineError> {
    let mailbox = |_| EngineError::Unavailable("the supervisor stopped".into());
    let (addr, provision) = supervisor.send(msg).await.map_err(mailbox)??;
    addr.send(provision)
        .await
        .map_err(|_| EngineError::Unavailable("the container actor stopped".into()))?
}

/// What the supervisor hands back from a creation: the actor and its first message.
pub type Created = (Addr<ContainerActor>, Provision);
