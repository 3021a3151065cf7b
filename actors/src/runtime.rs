//! Wiring: recovery, then the writer, genesis, and the supervisor.

use actix::{Actor, Addr};
use berth_engine::decide::genesis;
use berth_engine::registry::{RegistryClient, RegistryConfig};
use berth_engine::EngineError;
use berth_journal::{Journal, JournalError, OpenReport};
use chrono::Utc;

use crate::container::ContainerEnv;
use crate::journal_writer::{SharedState, WriterConfig, WriterHandle};
use crate::messages::{ContainersReconciled, ReconcileContainers};
use crate::recovery::{reconcile_storage, Reconciled, Recovered, RecoveryError, RecoveryReport};
use crate::storage::Stores;
use crate::supervisor::Supervisor;

/// Settings of the actor runtime.
pub struct RuntimeConfig {
    /// Automatic checkpoint every this many events (0: never).
    pub checkpoint_every: u64,
    /// Most events in one group commit.
    pub max_batch: usize,
    /// Called once if the journal fails; the daemon should exit.
    pub on_fatal: Box<dyn Fn(&JournalError) + Send>,
    /// How to reach registries (pull and push).
    pub registry: RegistryConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let w = WriterConfig::default();
        RuntimeConfig {
            checkpoint_every: w.checkpoint_every,
            max_batch: w.max_batch,
            on_fatal: w.on_fatal,
            registry: RegistryConfig::default(),
        }
    }
}

/// Replays a journal that was opened with [`Journal::open`].
pub fn recover_opened(journal: Journal, open: OpenReport) -> Result<Recovered, RecoveryError> {
    let (state, report) = crate::recovery::recover(&journal, open)?;
    Ok(Recovered {
        journal,
        state,
        report,
    })
}

/// Everything the API needs.
#[derive(Clone)]
pub struct Handles {
    /// The journal (reads, subscriptions, stats).
    pub journal: Journal,
    /// The writer (appends, checkpoints, shared state).
    pub writer: WriterHandle,
    /// The supervisor.
    pub supervisor: Addr<Supervisor>,
    /// What recovery did.
    pub recovery: RecoveryReport,
    /// What reconciling storage did.
    pub reconciled: Reconciled,
    /// The content store and snapshotter.
    pub stores: Stores,
    /// Container paths and binaries.
    pub containers: ContainerEnv,
    /// What re-attaching containers did.
    pub containers_reconciled: ContainersReconciled,
    /// The registry client (pulls go through the supervisor; pushes use it directly).
    pub registry: RegistryClient,
    /// Notices for the event stream (pull progress), never journaled.
    pub notices: crate::notice::NoticeBus,
}

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Recovery failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// The genesis events could not be written.
    #[error("cannot write the genesis events: {0}")]
    Genesis(EngineError),
    /// Storage could not be reconciled with the journal.
    #[error("cannot reconcile storage with the journal: {0}")]
    Reconcile(EngineError),
    /// The registry configuration is invalid.
    #[error("invalid registry configuration: {0}")]
    Registry(EngineError),
}

/// Starts from a recovered state (see [`crate::recovery::open_and_recover`], or
/// [`recover_opened`] for a journal already open): the writer, genesis events of a new
/// installation, reconciliation of storage, the supervisor. Must run inside an actix system.
/// Nothing is served before this returns.
pub async fn start(
    recovered: Recovered,
    config: RuntimeConfig,
    stores: Stores,
    containers: ContainerEnv,
) -> Result<Handles, StartError> {
    let Recovered {
        journal,
        state,
        report: recovery,
    } = recovered;
    let registry = RegistryClient::new(config.registry).map_err(StartError::Registry)?;
    tracing::info!(
        seq = recovery.seq,
        checkpoint = ?recovery.checkpoint_seq,
        replayed = recovery.replayed,
        took_ms = recovery.took_ms,
        "journal replayed"
    );
    let writer = WriterHandle::spawn(
        journal.clone(),
        SharedState::new(state),
        WriterConfig {
            checkpoint_every: config.checkpoint_every,
            max_batch: config.max_batch,
            on_fatal: config.on_fatal,
        },
    );
    let first = genesis(&writer.state().read(), Utc::now());
    if !first.is_empty() {
        writer.append(first).await.map_err(StartError::Genesis)?;
    }
    let reconciled = reconcile_storage(&writer, &stores)
        .await
        .map_err(StartError::Reconcile)?;
    if reconciled != Reconciled::default() {
        tracing::warn!(?reconciled, "storage reconciled with the journal");
    }
    crate::network::ensure_default(&writer, &containers).await;
    let notices = crate::notice::bus(4096);
    let supervisor = Supervisor::new(
        writer.clone(),
        stores.clone(),
        containers.clone(),
        registry.clone(),
    )
    .with_notices(notices.clone())
    .start();
    let containers_reconciled = supervisor
        .send(ReconcileContainers)
        .await
        .map_err(|_| StartError::Reconcile(EngineError::Internal("the supervisor stopped".into())))?
        .map_err(StartError::Reconcile)?;
    if containers_reconciled != ContainersReconciled::default() {
        tracing::info!(?containers_reconciled, "containers re-attached");
    }
    Ok(Handles {
        journal,
        writer,
        supervisor,
        recovery,
        reconciled,
        stores,
        containers,
        containers_reconciled,
        registry,
        notices,
    })
}
