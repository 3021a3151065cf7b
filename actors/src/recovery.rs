//! Recovery: the newest checkpoint, then replay of every record after it, before the
//! API serves anything. Reconciliation with reality (shims, mounts, netns) emits
//! ordinary events afterwards, through the writer.

use std::time::Instant;

use berth_engine::event::DecodeError;
use berth_engine::{Event, State};
use berth_journal::{Journal, JournalError, OpenReport};
use serde::Serialize;

/// What recovery found and did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RecoveryReport {
    /// What opening the journal found (cuts, bad checkpoints).
    pub open: OpenReport,
    /// The checkpoint recovery started from, if one was usable.
    pub checkpoint_seq: Option<u64>,
    /// Why the newest checkpoint was not used, if it was not.
    pub checkpoint_rejected: Option<String>,
    /// Records replayed after the checkpoint.
    pub replayed: u64,
    /// The state's sequence number after replay.
    pub seq: u64,
    /// Time taken, in milliseconds.
    pub took_ms: u64,
}

/// Why recovery could not produce a state.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record is intact but this berth cannot understand it (written by a newer
    /// version, or a bug). Refusing to start is the only safe answer: guessing would
    /// build a wrong state, and cutting would destroy good history.
    #[error("journal record {seq} cannot be decoded: {source}; refusing to start")]
    Decode {
        /// The record.
        seq: u64,
        /// Why.
        source: DecodeError,
    },
    /// As `Decode`, found during the single-pass open.
    #[error("journal record {seq} cannot be decoded: {reason}; refusing to start")]
    Replay {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// A journal opened and replayed: what the runtime starts from.
pub struct Recovered {
    /// The journal.
    pub journal: Journal,
    /// The state it replays to.
    pub state: State,
    /// What was done.
    pub report: RecoveryReport,
}

/// Records handed to the apply thread at a time.
const REPLAY_BATCH: usize = 512;

/// A batch of records for the apply thread: what replay needs of each (its seq, time,
/// schema, topic and payload), with the bytes of all of them in one buffer, so the
/// journal's thread copies them out of the frames it reads without an allocation per
/// record.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    items: Vec<BatchItem>,
}

struct BatchItem {
    seq: u64,
    at: chrono::DateTime<chrono::Utc>,
    schema: u16,
    topic: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

impl Batch {
    fn with_capacity(records: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(records * 128),
            items: Vec::with_capacity(records),
        }
    }

    fn push(&mut self, r: &berth_journal::RecordRef<'_>) {
        let t = self.bytes.len();
        self.bytes.extend_from_slice(r.topic.as_bytes());
        let p = self.bytes.len();
        self.bytes.extend_from_slice(r.payload);
        self.items.push(BatchItem {
            seq: r.seq,
            at: r.at,
            schema: r.schema,
            topic: t..p,
            payload: p..self.bytes.len(),
        });
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

type ApplyResult = Result<(State, u64), (u64, String)>;

/// Replays while the journal verifies: the journal's thread reads, checks and decodes
/// envelopes; a second thread decodes events and applies them, so the two halves of
/// the work overlap.
struct Replayer {
    /// The state until the first record; then the apply thread owns it.
    state: Option<State>,
    checkpoint_seq: Option<u64>,
    checkpoint_rejected: Option<String>,
    batch: Batch,
    worker: Option<(
        std::sync::mpsc::SyncSender<Batch>,
        std::thread::JoinHandle<ApplyResult>,
    )>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn apply_loop(
    mut state: State,
    rx: std::sync::mpsc::Receiver<Batch>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> ApplyResult {
    let mut replayed = 0u64;
    while let Ok(batch) = rx.recv() {
        for item in &batch.items {
            // (The topic was a `&str` when it was copied in.)
            let decoded = std::str::from_utf8(&batch.bytes[item.topic.clone()])
                .map_err(|e| e.to_string())
                .and_then(|topic| {
                    Event::decode(
                        topic,
                        item.schema,
                        &batch.bytes[item.payload.clone()],
                        item.at,
                    )
                    .map_err(|e| e.to_string())
                });
            match decoded {
                Ok(event) => {
                    state.apply_at(item.seq, &event);
                    replayed += 1;
                }
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Release);
                    return Err((item.seq, e));
                }
            }
        }
    }
    Ok((state, replayed))
}

impl Replayer {
    fn send_batch(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.worker.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel(8);
            let state = self.state.take().unwrap_or_default();
            let failed = self.failed.clone();
            let handle = std::thread::Builder::new()
                .name("berth-replay".into())
                .spawn(move || apply_loop(state, rx, failed))
                .map_err(|e| format!("cannot start the replay thread: {e}"))?;
            self.worker = Some((tx, handle));
        }
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(REPLAY_BATCH));
        if let Some((tx, _)) = &self.worker {
            // A closed channel means the apply thread stopped on an error; `finish`
            // reports it.
            let _ = tx.send(batch);
        }
        Ok(())
    }

    /// The final state and how many records were applied.
    fn finish(mut self) -> Result<(State, u64, Option<u64>, Option<String>), RecoveryError> {
        self.send_batch()
            .map_err(|reason| RecoveryError::Replay { seq: 0, reason })?;
        let (state, replayed) = match self.worker.take() {
            None => (self.state.take().unwrap_or_default(), 0),
            Some((tx, handle)) => {
                drop(tx);
                handle
                    .join()
                    .map_err(|_| RecoveryError::Replay {
                        seq: 0,
                        reason: "the replay thread panicked".into(),
                    })?
                    .map_err(|(seq, reason)| RecoveryError::Replay { seq, reason })?
            }
        };
        Ok((
            state,
            replayed,
            self.checkpoint_seq,
            self.checkpoint_rejected,
        ))
    }
}

impl berth_journal::Replay for Replayer {
    fn checkpoint(&mut self, cp: Option<&berth_journal::Checkpoint>) -> u64 {
        let Some(cp) = cp else { return 0 };
        match State::from_checkpoint(&cp.data) {
            Ok(s) if s.seq == cp.seq => {
                self.state = Some(s);
                self.checkpoint_seq = Some(cp.seq);
                cp.seq
            }
            Ok(s) => {
                self.checkpoint_rejected =
                    Some(format!("checkpoint at {} holds state at {}", cp.seq, s.seq));
                0
            }
            Err(reason) => {
                self.checkpoint_rejected = Some(reason);
                0
            }
        }
    }

    fn record(&mut self, record: berth_journal::RecordRef<'_>) -> Result<(), String> {
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            return Err("an earlier record could not be replayed".into());
        }
        self.batch.push(&record);
        if self.batch.len() >= REPLAY_BATCH {
            self.send_batch()?;
        }
        Ok(())
    }
}

/// Opens the journal and rebuilds the state in one pass: the newest usable checkpoint,
/// then every record after it, verified as it is read (a bad tail is cut before
/// anything after it is applied).
pub fn open_and_recover(
    path: &std::path::Path,
    opts: berth_journal::OpenOptions,
) -> Result<Recovered, RecoveryError> {
    let started = Instant::now();
    let mut replayer = Replayer {
        state: Some(State::new()),
        checkpoint_seq: None,
        checkpoint_rejected: None,
        batch: Batch::with_capacity(REPLAY_BATCH),
        worker: None,
        failed: Default::default(),
    };
    let opened = Journal::open_with(path, opts, &mut replayer);
    // Join the apply thread first: its error names the record that could not be
    // decoded, which is better than the journal's "an earlier record" message.
    let finished = replayer.finish();
    let (journal, open) = match opened {
        Ok(j) => j,
        Err(JournalError::Replay { .. }) => {
            finished?;
            return Err(RecoveryError::Replay {
                seq: 0,
                reason: "replay failed".into(),
            });
        }
        Err(other) => return Err(RecoveryError::Journal(other)),
    };
    let (state, replayed, checkpoint_seq, checkpoint_rejected) = finished?;
    if let Some(reason) = &checkpoint_rejected {
        tracing::warn!(%reason, "not using the newest checkpoint; replayed from the start");
    }
    let report = RecoveryReport {
        open,
        checkpoint_seq,
        checkpoint_rejected,
        replayed,
        seq: state.seq,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(Recovered {
        journal,
        state,
        report,
    })
}

/// Rebuilds the state from a journal already opened (a second read of it; the daemon
/// uses [`open_and_recover`]).
pub fn recover(
    journal: &Journal,
    open: OpenReport,
) -> Result<(State, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let mut checkpoint_rejected = None;
    let mut checkpoint_seq = None;
    let mut state = State::new();
    if let Some(cp) = journal.latest_checkpoint()? {
        match State::from_checkpoint(&cp.data) {
            Ok(s) if s.seq == cp.seq => {
                checkpoint_seq = Some(cp.seq);
                state = s;
            }
            Ok(s) => {
                checkpoint_rejected =
                    Some(format!("checkpoint at {} holds state at {}", cp.seq, s.seq))
            }
            Err(reason) => checkpoint_rejected = Some(reason),
        }
    }
    if let Some(reason) = &checkpoint_rejected {
        tracing::warn!(%reason, "not using the newest checkpoint; replaying from the start");
    }
    let mut replayed = 0u64;
    for record in journal.iter_from(state.seq + 1) {
        let record = record?;
        let event = Event::decode(&record.topic, record.schema, &record.payload, record.at)
            .map_err(|source| RecoveryError::Decode {
                seq: record.seq,
                source,
            })?;
        state.apply_at(record.seq, &event);
        replayed += 1;
    }
    let report = RecoveryReport {
        open,
        checkpoint_seq,
        checkpoint_rejected,
        replayed,
        seq: state.seq,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok((state, report))
}

/// What reconciling storage with the journal did at start-up.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Reconciled {
    /// Snapshots whose preparation a crash interrupted, rolled back.
    pub snapshots_rolled_back: u64,
    /// Leases of the previous daemon process, released.
    pub leases_released: u64,
    /// Imports the restart interrupted, marked failed.
    pub imports_failed: u64,
    /// Pulls the restart interrupted, marked failed (a later pull of the same layers
    /// resumes their ingests while they last; the next collection removes them).
    #[serde(default)]
    pub pulls_failed: u64,
    /// Blob records whose file is missing, dropped.
    pub blobs_missing: u64,
}

/// Brings the state in line with the disk after a restart, by appending ordinary
/// events: unfinished snapshot preparations are rolled back, the previous process's
/// ephemeral leases released (what they protected becomes collectable), interrupted
/// imports and pulls recorded as failed, and records of vanished blobs dropped.
pub async fn reconcile_storage(
    writer: &crate::WriterHandle,
    stores: &crate::storage::Stores,
) -> Result<Reconciled, berth_engine::EngineError> {
    use berth_engine::content::Provider;
    use berth_engine::event::*;
    let state = writer.state().read().clone();
    let mut report = Reconciled::default();
    let mut events = Vec::new();
    let now = chrono::Utc::now();
    for (ns, snaps) in &state.storage.snapshots {
        for s in snaps.values().filter(|s| !s.ready) {
            let snapshotter = stores.snapshotter.clone();
            let id = s.id;
            crate::storage::blocking(move || snapshotter.remove(id)).await?;
            events.push(Event::SnapshotRemoved(SnapshotRemoved {
                namespace: ns.clone(),
                key: s.key.clone(),
                reason: "rolled back: its preparation was interrupted by a restart".into(),
            }));
            report.snapshots_rolled_back += 1;
        }
    }
    for import in state.storage.imports.values() {
        events.push(Event::ImportFailed(ImportFailed {
            namespace: import.namespace.clone(),
            id: import.id.clone(),
            reason: "interrupted: the daemon stopped during the import".into(),
            at: now,
        }));
        report.imports_failed += 1;
    }
    for pull in state.storage.pulls.values() {
        events.push(Event::PullFailed(PullFailed {
            namespace: pull.namespace.clone(),
            id: pull.id.clone(),
            reason: "interrupted by a daemon restart".into(),
            at: now,
        }));
        report.pulls_failed += 1;
    }
    for (ns, leases) in &state.storage.leases {
        for l in leases.values().filter(|l| l.ephemeral) {
            events.push(Event::LeaseDeleted(LeaseDeleted {
                namespace: ns.clone(),
                id: l.id.clone(),
            }));
            report.leases_released += 1;
        }
    }
    for digest in state.storage.content.keys() {
        if let Err(e) = stores.content.info(digest) {
            if e.kind() == berth_engine::ErrorKind::NotFound {
                tracing::warn!(%digest, "blob recorded in the journal is missing from the content store");
                events.push(Event::ContentDeleted(ContentDeleted {
                    namespace: berth_engine::ids::NamespaceName::default_ns(),
                    digest: digest.clone(),
                }));
                report.blobs_missing += 1;
            }
        }
    }
    if !events.is_empty() {
        writer.append(events).await?;
    }
    Ok(report)
}
