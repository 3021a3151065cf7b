//! The journal's error type.

use std::path::PathBuf;

/// What went wrong in the journal. Variants carry the path or sequence they failed on.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal directory is held by another process (a running `berthd`).
    #[error("journal at {path} is in use by another process (is berthd running on this root?)")]
    Locked {
        /// The journal directory.
        path: PathBuf,
    },
    /// sled could not open the directory: its own files are damaged beyond what it
    /// repairs, or the directory is not a journal.
    #[error("journal at {path} cannot be opened: {reason}")]
    Open {
        /// The journal directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An IO error from sled.
    #[error("journal io error while {op}: {source}")]
    Io {
        /// What the journal was doing.
        op: &'static str,
        /// The underlying error.
        source: sled::Error,
    },
    /// A stored record failed its checksum, did not decode, or sits under the wrong key.
    #[error("journal record {seq} is corrupt: {reason}")]
    Corrupt {
        /// The sequence number (key) of the bad record.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An intact record that the replayer given to [`crate::Journal::open_with`] could
    /// not use (written by a newer berth, say).
    #[error("journal record {seq} cannot be replayed: {reason}")]
    Replay {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// An earlier flush failed; the journal refuses further writes (crash-only: restart
    /// replays what is durable).
    #[error("journal is failed after an earlier write error; restart the daemon")]
    Failed,
    /// The journal was closed (daemon shutting down).
    #[error("journal is closed")]
    Closed,
    /// A request that cannot be satisfied (e.g. a checkpoint beyond the last record).
    #[error("invalid journal request: {0}")]
    Invalid(String),
    /// A record or checkpoint could not be encoded.
    #[error("cannot encode journal record: {0}")]
    Encode(String),
}

impl JournalError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(sled::Error) -> JournalError {
        move |source| JournalError::Io { op, source }
    }
}
