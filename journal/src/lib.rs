//! berth's append-only event journal on sled.
//!
//! The journal knows bytes, sequence numbers and envelopes; it never knows what an
//! event means (that is `berth-engine`'s job). Map of the crate:
//!
//! - [`record`]: the [`Record`] envelope (`seq`, `at`, `namespace`, `stream`, `topic`,
//!   `schema`, opaque `payload`) and the [`Draft`] a writer hands in.
//! - [`codec`]: the on-disk form: frames of records (format 2: the records of one
//!   append, up to 128 per sled value under the key of the last one, each with its own
//!   CRC-32 over its seq and body) and single values (format 1: checkpoints, and
//!   records written by earlier versions, still read); bodies are encoded with
//!   `rmp_serde::to_vec_named`.
//! - [`journal`]: [`Journal`] — `open`, `append_batch` (durable before it returns, or
//!   in two halves: `write` then `commit`, so a writer can prepare the next batch while
//!   one is being made durable and make several durable with one flush),
//!   `read_from`, `iter_from`, `checkpoint` / `latest_checkpoint`, `verify`, `stats`.
//! - [`subscribe`]: [`Subscription`] — `subscribe_from(seq)`: catch-up from disk, then
//!   live, with no gap and no duplicate at the switch; a subscriber that cannot keep up
//!   is told [`SubEvent::Lagged`] and ended, it never slows writers.
//! - [`error`]: the [`JournalError`] type.
//!
//! Corruption: a record whose checksum, key or sequence is wrong is never returned as
//! good data. At [`Journal::open`] the tail that recovery will replay (everything after
//! the newest valid checkpoint) is verified; the first bad record and everything after
//! it are moved to a `quarantine` tree (kept for forensics, never applied) and the
//! journal continues from the last good record (the good records before it in its
//! frame stay). [`Journal::verify`] checks everything.

pub mod codec;
pub mod error;
pub mod journal;
pub mod record;
pub mod subscribe;

pub use error::JournalError;
pub use journal::{
    CheckpointInfo, Cut, Journal, JournalStats, OpenOptions, OpenReport, Problem, Replay,
    VerifyReport, Written,
};
pub use record::{Checkpoint, Draft, Record, RecordRef, StreamRef, StreamRefRef};
pub use subscribe::{SubEvent, Subscription};

/// Result alias of this crate.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;
