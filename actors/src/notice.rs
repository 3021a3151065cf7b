//! Notices: facts too fine-grained to journal (byte-level pull progress), broadcast to
//! event-stream subscribers as they happen and lost for anyone not listening. They
//! carry no sequence number, so they never disturb a subscriber's resume position.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::messages::PullProgress;

/// One notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// Namespace.
    pub namespace: String,
    /// Topic (e.g. `pull.progress`), filtered like journal topics.
    pub topic: &'static str,
    /// Aggregate kind (`pull`).
    pub kind: &'static str,
    /// Aggregate id (the pull id).
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The body.
    pub event: serde_json::Value,
}

/// Where notices are published; subscribers call `subscribe`.
pub type NoticeBus = broadcast::Sender<Arc<Notice>>;

/// A bus keeping the last `capacity` notices for slow subscribers (older ones are
/// skipped for them: progress is lossy by nature).
pub fn bus(capacity: usize) -> NoticeBus {
    broadcast::channel(capacity.max(1)).0
}

/// The notice of a pull's progress.
pub fn pull_progress(namespace: &str, pull: &str, reference: &str, p: &PullProgress) -> Notice {
    let event = match p {
        PullProgress::Resolved { digest, media_type } => serde_json::json!({
            "reference": reference, "status": "resolved", "digest": digest, "media_type": media_type,
        }),
        PullProgress::Layer {
            digest,
            current,
            total,
        } => serde_json::json!({
            "reference": reference, "status": "downloading", "layer": digest,
            "current": current, "total": total,
        }),
        PullProgress::LayerDone { digest, size } => serde_json::json!({
            "reference": reference, "status": "layer_done", "layer": digest, "size": size,
        }),
        PullProgress::Unpacking => serde_json::json!({
            "reference": reference, "status": "unpacking",
        }),
    };
    Notice {
        namespace: namespace.to_string(),
        topic: "pull.progress",
        kind: "pull",
        id: pull.to_string(),
        at: Utc::now(),
        event,
    }
}
