//! The envelope of one journal record.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which aggregate an event belongs to: `(kind, id)`, e.g. `("namespace", "default")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamRef {
    /// The aggregate kind (`namespace`, `container`, `image`, `snapshot`, `pull`…).
    pub kind: String,
    /// The aggregate's id within its kind.
    pub id: String,
}

impl StreamRef {
    /// A stream reference.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        StreamRef {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// A record as a writer hands it in: everything but the sequence number, which the
/// journal assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The namespace the event belongs to.
    pub namespace: String,
    /// The aggregate the event belongs to.
    pub stream: StreamRef,
    /// The event's type name, dotted (`namespace.created`); also the SSE topic.
    pub topic: String,
    /// The schema version of the payload's type.
    pub schema: u16,
    /// The event body, encoded by its owner (opaque to the journal).
    pub payload: Vec<u8>,
}

/// One committed journal record: a [`Draft`] with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number: contiguous from 1, the sled key (big-endian).
    pub seq: u64,
    /// When the event happened (nanosecond precision on disk).
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// Aggregate.
    pub stream: StreamRef,
    /// Type name / topic.
    pub topic: String,
    /// Payload schema version.
    pub schema: u16,
    /// Opaque payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// A derived rendering of this record (the API's JSON form), computed at most once
    /// and shared by every subscriber that receives the same `Arc<Record>`. Not stored.
    #[serde(skip)]
    pub rendered: OnceLock<String>,
}

impl Record {
    pub(crate) fn from_draft(seq: u64, d: Draft) -> Record {
        Record {
            seq,
            at: d.at,
            namespace: d.namespace,
            stream: d.stream,
            topic: d.topic,
            schema: d.schema,
            payload: d.payload,
            rendered: OnceLock::new(),
        }
    }
}

/// A [`StreamRef`] borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StreamRefRef<'a> {
    /// The aggregate kind.
    pub kind: &'a str,
    /// The aggregate's id within its kind.
    pub id: &'a str,
}

/// A [`Record`] borrowed from the bytes it was decoded from: decoding it allocates
/// nothing. What [`crate::Replay`] is handed while the journal is verified at open.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct RecordRef<'a> {
    /// Sequence number.
    pub seq: u64,
    /// When the event happened.
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: &'a str,
    /// Aggregate.
    #[serde(borrow)]
    pub stream: StreamRefRef<'a>,
    /// Type name / topic.
    pub topic: &'a str,
    /// Payload schema version.
    pub schema: u16,
    /// Opaque payload.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// The owned record.
    pub fn to_record(&self) -> Record {
        Record {
            seq: self.seq,
            at: self.at,
            namespace: self.namespace.to_string(),
            stream: StreamRef::new(self.stream.kind, self.stream.id),
            topic: self.topic.to_string(),
            schema: self.schema,
            payload: self.payload.to_vec(),
            rendered: OnceLock::new(),
        }
    }
}

/// A serialized snapshot of derived state at a sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The state reflects every record up to and including this sequence number.
    pub seq: u64,
    /// When it was taken.
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub at: DateTime<Utc>,
    /// The state bytes (opaque to the journal).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}
