//! The journal writer: one thread that owns all appends.
//!
//! Requests queue on a channel. The thread takes the first, then everything else that
//! has arrived meanwhile (up to a bound), and appends it all as one durable batch: one
//! fsync for the group. Once durable, the events are applied to the shared [`State`]
//! (before any subscriber sees them), and every requester is answered with its
//! sequence numbers. Every `checkpoint_every` events a copy of the state is handed to a
//! checkpoint thread, so encoding a large state never holds up appends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread;

use berth_engine::{EngineError, Event, State};
use berth_journal::{Draft, Journal, JournalError, StreamRef};
use chrono::Utc;
use tokio::sync::oneshot;

/// The state every reader shares; written only by the writer thread.
#[derive(Clone, Default)]
pub struct SharedState(Arc<RwLock<State>>);

impl SharedState {
    /// Wraps a recovered state.
    pub fn new(state: State) -> Self {
        SharedState(Arc::new(RwLock::new(state)))
    }

    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the writer behaves.
pub struct WriterConfig {
    /// Take a checkpoint after this many events (0: never automatically).
    pub checkpoint_every: u64,
    /// Most events in one group commit.
    pub max_batch: usize,
    /// Called once when the journal fails (a flush error): the daemon exits and
    /// restarts from what is durable (crash-only).
    pub on_fatal: Box<dyn Fn(&JournalError) + Send>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            checkpoint_every: 10_000,
            max_batch: 4096,
            on_fatal: Box::new(|e| tracing::error!(error = %e, "journal failed")),
        }
    }
}

/// What an append returns: the sequence numbers given to the events, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// One per appended event.
    pub seqs: Vec<u64>,
}

impl Committed {
    /// The last sequence number (the state reflects it when the append returns).
    pub fn last_seq(&self) -> u64 {
        self.seqs.last().copied().unwrap_or(0)
    }
}

/// Appends taken together into one durable batch, each with its requester.
type Group = Vec<(Vec<Event>, oneshot::Sender<Result<Committed, EngineError>>)>;

enum Request {
    Append {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Committed, EngineError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<u64, EngineError>>,
    },
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: std_mpsc::Sender<Request>,
    state: SharedState,
    journal: Journal,
}

fn journal_error(e: JournalError) -> EngineError {
    match e {
        JournalError::Closed => EngineError::Unavailable("the daemon is shutting down".into()),
        other => EngineError::Unavailable(format!("journal: {other}")),
    }
}

fn gone() -> EngineError {
    EngineError::Unavailable("the journal writer has stopped".into())
}

impl WriterHandle {
    /// Starts the writer thread over a journal and the recovered state.
    pub fn spawn(journal: Journal, state: SharedState, config: WriterConfig) -> WriterHandle {
        let (tx, rx) = std_mpsc::channel();
        let (cp_tx, cp_rx) = std_mpsc::channel::<CheckpointJob>();
        let cp_journal = journal.clone();
        thread::Builder::new()
            .name("berth-checkpoint".into())
            .spawn(move || checkpoint_loop(cp_journal, cp_rx))
            .expect("spawning the checkpoint thread");
        let w_journal = journal.clone();
        let w_state = state.clone();
        thread::Builder::new()
            .name("berth-journal-writer".into())
            .spawn(move || writer_loop(w_journal, w_state, config, rx, cp_tx))
            .expect("spawning the journal writer thread");
        WriterHandle { tx, state, journal }
    }

    /// The shared state.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Appends events durably; resolves once they are on disk and applied to the state.
    pub async fn append(&self, events: Vec<Event>) -> Result<Committed, EngineError> {
        self.send_append(events)?.await.map_err(|_| gone())?
    }

    /// Blocking form of [`WriterHandle::append`] (for threads outside an async runtime).
    pub fn append_blocking(&self, events: Vec<Event>) -> Result<Committed, EngineError> {
        self.send_append(events)?
            .blocking_recv()
            .map_err(|_| gone())?
    }

    fn send_append(
        &self,
        events: Vec<Event>,
    ) -> Result<oneshot::Receiver<Result<Committed, EngineError>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append { events, reply })
            .map_err(|_| gone())?;
        Ok(rx)
    }

    /// Takes a checkpoint of the current state now; returns its sequence number.
    pub async fn checkpoint(&self) -> Result<u64, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Checkpoint { reply })
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

struct CheckpointJob {
    state: State,
    reply: Option<oneshot::Sender<Result<u64, EngineError>>>,
}

fn checkpoint_loop(journal: Journal, rx: std_mpsc::Receiver<CheckpointJob>) {
    while let Ok(mut job) = rx.recv() {
        // Only the newest pending automatic checkpoint matters.
        while job.reply.is_none() {
            match rx.try_recv() {
                Ok(newer) => job = newer,
                Err(_) => break,
            }
        }
        let seq = job.state.seq;
        let result = if seq == 0 {
            Err(EngineError::FailedPrecondition(
                "the journal is empty: nothing to checkpoint".into(),
            ))
        } else {
            let started = std::time::Instant::now();
            let bytes = job.state.to_checkpoint();
            let len = bytes.len();
            journal
                .checkpoint(seq, bytes)
                .map(|()| {
                    tracing::info!(
                        seq,
                        bytes = len,
                        took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "checkpoint written"
                    );
                    seq
                })
                .map_err(journal_error)
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, seq, "checkpoint failed");
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(result);
        }
    }
}

fn writer_loop(
    journal: Journal,
    state: SharedState,
    config: WriterConfig,
    rx: std_mpsc::Receiver<Request>,
    checkpoints: std_mpsc::Sender<CheckpointJob>,
) {
    let failed = AtomicBool::new(false);
    let mut last_checkpoint = state.read().seq;
    let mut pending: Option<Request> = None;
    loop {
        let first = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break, // every handle dropped: shut down
            },
        };
        let mut group: Group = Vec::new();
        let mut count = 0usize;
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Append { events, reply } => {
                    count += events.len();
                    group.push((events, reply));
                }
                Request::Checkpoint { reply } => {
                    // A checkpoint reflects everything appended before it was asked:
                    // commit the group so far first.
                    if group.is_empty() {
                        let _ = checkpoints.send(CheckpointJob {
                            state: state.read().clone(),
                            reply: Some(reply),
                        });
                    } else {
                        pending = Some(Request::Checkpoint { reply });
                        break;
                    }
                }
            }
            if count >= config.max_batch {
                break;
            }
            next = rx.try_recv().ok();
        }
        if group.is_empty() {
            continue;
        }
        if failed.load(Ordering::Relaxed) {
            for (_, reply) in group {
                let _ = reply.send(Err(journal_error(JournalError::Failed)));
            }
            continue;
        }
        commit_group(&journal, &state, group, &failed, &config);
        if config.checkpoint_every > 0 {
            let seq = state.read().seq;
            if seq >= last_checkpoint + config.checkpoint_every {
                last_checkpoint = seq;
                let _ = checkpoints.send(CheckpointJob {
                    state: state.read().clone(),
                    reply: None,
                });
            }
        }
    }
    tracing::debug!("journal writer stopped");
}

/// The journal draft of an event, as the writer stores it (`at`: the group's time).
pub fn draft(e: &Event, at: chrono::DateTime<Utc>) -> Draft {
    let (kind, id) = e.stream();
    Draft {
        at,
        namespace: e.namespace().to_string(),
        stream: StreamRef::new(kind.as_str(), id),
        topic: e.topic().to_string(),
        schema: e.schema(),
        payload: e.encode_payload(),
    }
}

fn commit_group(
    journal: &Journal,
    state: &SharedState,
    group: Group,
    failed: &AtomicBool,
    config: &WriterConfig,
) {
    let at = Utc::now();
    // One unit per request: each request's events stay atomic on disk, and the units
    // share frames (sled values) up to the frame limits.
    let units: Vec<Vec<Draft>> = group
        .iter()
        .map(|(events, _)| events.iter().map(|e| draft(e, at)).collect())
        .collect();
    let result = journal.write_units(units).and_then(|written| {
        let mut written = [written];
        journal.commit(&mut written, |batches| {
            let mut s = state.write();
            let events = group.iter().flat_map(|(events, _)| events.iter());
            for (record, event) in batches[0].records().iter().zip(events) {
                s.apply_at(record.seq, event);
            }
        })?;
        let [written] = written;
        Ok(written.into_records())
    });
    match result {
        Ok(records) => {
            let mut seqs = records.iter().map(|r| r.seq);
            for (events, reply) in group {
                let mine: Vec<u64> = seqs.by_ref().take(events.len()).collect();
                let _ = reply.send(Ok(Committed { seqs: mine }));
            }
        }
        Err(e) => {
            let fatal = !matches!(e, JournalError::Closed | JournalError::Encode(_));
            if fatal && !failed.swap(true, Ordering::Relaxed) {
                (config.on_fatal)(&e);
            }
            let err = journal_error(e);
            for (_, reply) in group {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
