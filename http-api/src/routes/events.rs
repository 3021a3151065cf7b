//! `GET /v1/events`: server-sent events from the journal.
//!
//! Each record is one SSE message: `id: <seq>`, `event: <topic>`, `data: <JSON>`. A
//! client resumes with `Last-Event-ID` (or `?since=SEQ`) and receives every record after
//! it, from disk and then live, exactly once and in order. Without either, the stream
//! starts at the next record. Headers go out at once with a first comment; an idle
//! stream carries a keep-alive comment every few seconds. A subscriber too slow to keep
//! up receives what was buffered for it, then `event: resync`, and the stream closes:
//! it never slows writers down.
//!
//! Notices (byte-level pull progress, `event: pull.progress`) are interleaved as they
//! happen, filtered alike. They carry no `id:`, so they never move a client's resume
//! point, and they are not replayed: what a client did not see is gone.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use berth_engine::ids::NamespaceName;
use berth_journal::{Record, SubEvent, Subscription};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;

use berth_actors::notice::Notice;
use tokio::sync::{broadcast, watch};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use crate::api::error::ApiError;
use crate::routes::{render, AppState};

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Resume after this sequence number (`0`: from the beginning).
    pub since: Option<u64>,
    /// Only events of this namespace.
    pub namespace: Option<String>,
    /// Only events whose topic starts with one of these comma-separated prefixes.
    pub topic: Option<String>,
}

struct Filter {
    namespace: Option<String>,
    topics: Vec<String>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        self.accepts(&r.namespace, &r.topic)
    }

    fn accepts(&self, namespace: &str, topic: &str) -> bool {
        self.namespace.as_ref().is_none_or(|n| n == namespace)
            && (self.topics.is_empty() || self.topics.iter().any(|t| topic.starts_with(t.as_str())))
    }
}

/// The next notice, or never once the bus is gone.
async fn next_notice(rx: &mut Option<broadcast::Receiver<Arc<Notice>>>) -> Arc<Notice> {
    loop {
        let Some(r) = rx.as_mut() else {
            return std::future::pending().await;
        };
        match r.recv().await {
            Ok(n) => return n,
            // Progress is lossy: a subscriber that fell behind skips what it missed.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => *rx = None,
        }
    }
}

fn notice_frame(n: &Notice) -> Bytes {
    let data = serde_json::json!({
        "at": n.at,
        "namespace": n.namespace,
        "stream": {"kind": n.kind, "id": n.id},
        "topic": n.topic,
        "event": n.event,
    });
    Bytes::from(format!("event: {}\ndata: {}\n\n", n.topic, data))
}

struct Stream {
    sub: Subscription,
    notices: Option<broadcast::Receiver<Arc<Notice>>>,
    filter: Filter,
    keepalive: Interval,
    shutdown: watch::Receiver<bool>,
    hello: Option<String>,
    done: bool,
}

fn frame(r: &Record) -> Bytes {
    let data = render(r);
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        r.seq, r.topic, data
    ))
}

impl Stream {
    async fn step(mut self) -> Option<(Result<Bytes, actix_web::Error>, Stream)> {
        if let Some(hello) = self.hello.take() {
            return Some((Ok(Bytes::from(hello)), self));
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    self.done = true;
                    return Some((Ok(Bytes::from_static(b"event: shutdown\ndata: {}\n\n")), self));
                }
                item = self.sub.next() => match item {
                    Some(Ok(SubEvent::Record(r))) => {
                        if self.filter.matches(&r) {
                            self.keepalive.reset();
                            return Some((Ok(frame(&r)), self));
                        }
                    }
                    Some(Ok(SubEvent::Lagged)) => {
                        self.done = true;
                        let msg = format!(
                            "event: resync\ndata: {{\"reason\":\"subscriber too slow\",\"next\":{}}}\n\n",
                            self.sub.next_seq()
                        );
                        return Some((Ok(Bytes::from(msg)), self));
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        let msg = format!(
                            "event: error\ndata: {}\n\n",
                            serde_json::json!({"error": e.to_string(), "next": self.sub.next_seq()})
                        );
                        return Some((Ok(Bytes::from(msg)), self));
                    }
                    None => return None,
                },
                n = next_notice(&mut self.notices) => {
                    if self.filter.accepts(&n.namespace, n.topic) {
                        self.keepalive.reset();
                        return Some((Ok(notice_frame(&n)), self));
                    }
                }
                _ = self.keepalive.tick() => {
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
                }
            }
        }
    }
}

/// `GET /v1/events`.
pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let last_event_id = match req.headers().get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID must be a sequence number"))?,
        ),
    };
    let namespace = match q.namespace {
        Some(n) => Some(NamespaceName::parse(&n)?.to_string()),
        None => None,
    };
    let topics: Vec<String> = q
        .topic
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let journal = &state.handles.journal;
    let from = match last_event_id.or(q.since) {
        Some(after) => after.saturating_add(1),
        None => journal.last_seq() + 1,
    };
    let mut keepalive = interval_at(Instant::now() + state.keepalive, state.keepalive);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let hello = format!("retry: 2000\n: berth event stream from seq {from}\n\n");
    let s = Stream {
        sub: journal.subscribe_from(from),
        notices: Some(state.handles.notices.subscribe()),
        filter: Filter { namespace, topics },
        keepalive,
        shutdown: state.shutdown.clone(),
        hello: Some(hello),
        done: false,
    };
    let body = futures_util::stream::unfold(s, Stream::step);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
