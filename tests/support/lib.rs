//! Support for berth's end-to-end tests: real `berthd` processes on temporary
//! directories, driven through the typed client, raw sockets and the `berth` CLI.
//!
//! Map of the crate:
//! - [`daemon`]: [`TestDaemon`] — spawn, wait for health, `kill_9`, `terminate`,
//!   `restart`, `cli`; its drop guard removes its containers (shims, runtime state,
//!   mounts, cgroups), kills its own pid and removes its directory, and prints the
//!   daemon's log when the test fails.
//! - [`bins`]: where the `berthd` and `berth` binaries are (`BERTH_BIN_DIR` or the cargo
//!   target dir) and running them with a timeout.
//! - [`raw`]: HTTP by hand over a blocking unix socket, chunked bodies, SSE blocks.
//! - [`storage`]: test images (`berth-mkimage`), import/export through the client, a
//!   before/after [`storage::StorageView`] of a daemon's storage (API and disk), mounts.
//! - [`registry`]: a real `docker-registry` per test, skopeo pushes, and a fault-injecting
//!   proxy (corrupt, cut or stall one blob; records `Range` headers).
//! - [`containers`]: the busybox image for containers, create requests, polling for a
//!   status or a log line, the shims/mounts/cgroups containers leave and their cleanup.
//! - helpers here: namespace requests, reading events with a timeout.
//!
//! The binaries must be built first: `cargo build --workspace --bins`.

pub mod bins;
pub mod cli;
pub mod containers;
pub mod daemon;
pub mod raw;
pub mod registry;
pub mod storage;

use std::time::Duration;

use berth_http::api::types::{CreateNamespaceRequest, NamespaceResponse};
use berth_http::client::{Client, ClientError, EventStream, SseMessage};

pub use daemon::{Options, TestDaemon, TOKEN};

/// How long a test waits for one expected event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The journal's tip right after a fresh daemon's first start: its genesis records are
/// seq 1 `namespace.created` (the default namespace) and seq 2 `network.created` (the
/// default network `berth0`).
pub const GENESIS_SEQ: u64 = 2;

/// A create request without labels.
pub fn ns_req(name: &str) -> CreateNamespaceRequest {
    CreateNamespaceRequest {
        name: name.to_string(),
        labels: Default::default(),
    }
}

/// Creates a namespace; panics on failure.
pub async fn create_ns(client: &Client, name: &str) -> NamespaceResponse {
    client
        .create_namespace(&ns_req(name))
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"))
}

/// Deletes a namespace and returns the deletion's seq; panics on failure.
pub async fn delete_ns(client: &Client, name: &str) -> u64 {
    client
        .delete_namespace(name)
        .await
        .unwrap_or_else(|e| panic!("deleting namespace {name}: {e}"))
        .seq
}

/// The daemon's last durable seq (from `/v1/healthz`).
pub async fn last_seq(client: &Client) -> u64 {
    client.health().await.expect("healthz").seq
}

/// The next message of `stream`; panics if none arrives within [`EVENT_TIMEOUT`] or the
/// stream ends.
pub async fn next_event(stream: &mut EventStream) -> SseMessage {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("event stream failed: {e}"),
        Ok(None) => panic!("event stream ended early"),
        Err(_) => panic!("no event within {EVENT_TIMEOUT:?}"),
    }
}

/// Asserts that `res` is an API error with this status and kind; returns its message.
#[track_caller]
pub fn expect_api_error<T: std::fmt::Debug>(
    res: Result<T, ClientError>,
    status: u16,
    kind: &str,
) -> String {
    match res {
        Err(ClientError::Api {
            status: s,
            kind: k,
            message,
        }) => {
            assert_eq!(
                (s, k.as_str()),
                (status, kind),
                "wrong error (message: {message})"
            );
            message
        }
        other => panic!("expected {status} {kind}, got {other:?}"),
    }
}
