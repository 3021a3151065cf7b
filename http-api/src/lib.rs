//! berth's REST API on actix-web: routes, JSON errors, the server-sent event stream, the
//! OpenAPI document, and the typed client the CLI and the tests use.
//!
//! Map of the crate:
//! - [`api::types`]: request and response bodies (shared with the client).
//! - [`api::error`]: [`api::error::ApiError`] — the one place an `ErrorKind` becomes an
//!   HTTP status and a `{"error":{"kind":..,"message":..}}` body.
//! - [`api::openapi`]: the OpenAPI 3 document served at `/v1/openapi.json`.
//! - [`routes`]: one module per resource (`system`, `namespaces`, `events`, `journal`,
//!   `storage`, `images`, `pull`, `containers`, `networks`).
//! - [`server`]: [`run`] — serve on the given listeners until `shutdown` resolves.
//! - [`client`]: [`client::Client`], a typed client over a unix socket or TCP.

#![recursion_limit = "512"]

pub mod api;
pub mod client;
pub mod routes;
pub mod server;

pub use server::{run, ApiConfig, Listeners};

/// The version of the REST API (the `/v1` in every path).
pub const API_VERSION: &str = "v1";
