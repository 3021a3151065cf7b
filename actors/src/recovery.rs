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
}

/// Rebuilds the state from the journal.
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
