//! Routes, one module per resource. [`configure`] registers them all; [`ROUTES`] lists
//! them for the OpenAPI document's test.

pub mod bridge;
pub mod containers;
pub mod events;
pub mod images;
pub mod journal;
pub mod namespaces;
pub mod networks;
pub mod pull;
pub mod storage;
pub mod system;

/// Helpers of the route modules' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use berth_engine::EngineError;

    /// The message of an `InvalidArgument` error (anything else fails the test).
    pub(crate) fn msg<T: std::fmt::Debug>(r: Result<T, EngineError>) -> String {
        match r {
            Err(EngineError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
}

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use berth_actors::Handles;
use berth_engine::event::StreamView;
use berth_engine::Event;
use berth_journal::Record;
use tokio::sync::watch;

use crate::api::error::ApiError;
use crate::api::types::EventView;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The actor runtime.
    pub handles: Handles,
    /// Flips to true when the daemon shuts down (event streams end).
    pub shutdown: watch::Receiver<bool>,
    /// How often an idle event stream sends a keep-alive comment.
    pub keepalive: Duration,
}

/// Every route: `(method, path)` as in the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/version"),
    ("get", "/v1/healthz"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/namespaces"),
    ("post", "/v1/namespaces"),
    ("get", "/v1/namespaces/{name}"),
    ("delete", "/v1/namespaces/{name}"),
    ("get", "/v1/events"),
    ("get", "/v1/journal"),
    ("get", "/v1/journal/stats"),
    ("get", "/v1/journal/verify"),
    ("post", "/v1/journal/checkpoint"),
    ("get", "/v1/images"),
    ("post", "/v1/images/import"),
    ("post", "/v1/images/pull"),
    ("get", "/v1/images/{name}"),
    ("delete", "/v1/images/{name}"),
    ("post", "/v1/images/{name}/tag"),
    ("get", "/v1/images/{name}/export"),
    ("post", "/v1/images/{name}/push"),
    ("get", "/v1/snapshots"),
    ("get", "/v1/content"),
    ("get", "/v1/content/{digest}"),
    ("put", "/v1/content/{digest}/labels"),
    ("post", "/v1/gc"),
    ("get", "/v1/system/df"),
    ("get", "/v1/containers"),
    ("post", "/v1/containers"),
    ("get", "/v1/containers/{id}"),
    ("delete", "/v1/containers/{id}"),
    ("post", "/v1/containers/{id}/start"),
    ("post", "/v1/containers/{id}/stop"),
    ("post", "/v1/containers/{id}/kill"),
    ("post", "/v1/containers/{id}/pause"),
    ("post", "/v1/containers/{id}/resume"),
    ("post", "/v1/containers/{id}/wait"),
    ("post", "/v1/containers/{id}/exec"),
    ("get", "/v1/containers/{id}/logs"),
    ("get", "/v1/networks"),
    ("post", "/v1/networks"),
    ("get", "/v1/networks/{name}"),
    ("delete", "/v1/networks/{name}"),
];

/// Registers every route and the JSON error handlers for bad bodies, queries and paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(1 << 20)
            .content_type_required(false)
            .error_handler(|err, _req| {
                ApiError::invalid(format!("invalid JSON body: {err}")).into()
            }),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _req| ApiError::invalid(format!("invalid query: {err}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::invalid(format!("invalid path: {err}")).into()),
    )
    .service(
        web::scope("/v1")
            .route("/version", web::get().to(system::version))
            .route("/healthz", web::get().to(system::healthz))
            .route("/openapi.json", web::get().to(system::openapi))
            .route("/namespaces", web::get().to(namespaces::list))
            .route("/namespaces", web::post().to(namespaces::create))
            .route("/namespaces/{name}", web::get().to(namespaces::get))
            .route("/namespaces/{name}", web::delete().to(namespaces::delete))
            .route("/events", web::get().to(events::stream))
            .route("/journal", web::get().to(journal::page))
            .route("/journal/stats", web::get().to(journal::stats))
            .route("/journal/verify", web::get().to(journal::verify))
            .route("/journal/checkpoint", web::post().to(journal::checkpoint))
            .route("/images", web::get().to(images::list))
            .route("/images/import", web::post().to(images::import))
            .route("/images/pull", web::post().to(pull::pull))
            .route("/images/{name:.+}/push", web::post().to(pull::push))
            .route("/images/{name:.+}/export", web::get().to(images::export))
            .route("/images/{name:.+}/tag", web::post().to(images::tag))
            .route("/images/{name:.+}", web::get().to(images::inspect))
            .route("/images/{name:.+}", web::delete().to(images::delete))
            .route("/snapshots", web::get().to(storage::snapshots))
            .route("/content", web::get().to(storage::content))
            .route("/content/{digest}", web::get().to(storage::blob))
            .route(
                "/content/{digest}/labels",
                web::put().to(storage::set_labels),
            )
            .route("/gc", web::post().to(storage::gc))
            .route("/system/df", web::get().to(storage::df))
            .route("/containers", web::get().to(containers::list))
            .route("/containers", web::post().to(containers::create))
            .route("/containers/{id}", web::get().to(containers::inspect))
            .route("/containers/{id}", web::delete().to(containers::delete))
            .route("/containers/{id}/start", web::post().to(containers::start))
            .route("/containers/{id}/stop", web::post().to(containers::stop))
            .route("/containers/{id}/kill", web::post().to(containers::kill))
            .route("/containers/{id}/pause", web::post().to(containers::pause))
            .route(
                "/containers/{id}/resume",
                web::post().to(containers::resume),
            )
            .route("/containers/{id}/wait", web::post().to(containers::wait))
            .route("/containers/{id}/exec", web::post().to(containers::exec))
            .route("/containers/{id}/logs", web::get().to(containers::logs))
            .route("/networks", web::get().to(networks::list))
            .route("/networks", web::post().to(networks::create))
            .route("/networks/{name}", web::get().to(networks::get))
            .route("/networks/{name}", web::delete().to(networks::delete)),
    )
    .default_service(web::to(no_route));
}

/// `?namespace=` of storage routes (default: `default`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsQuery {
    /// Namespace.
    pub namespace: Option<String>,
}

/// The namespace a request names (validated), `default` when it names none.
pub fn namespace_of(q: &NsQuery) -> Result<berth_engine::ids::NamespaceName, ApiError> {
    match &q.namespace {
        Some(n) => Ok(berth_engine::ids::NamespaceName::parse(n)?),
        None => Ok(berth_engine::ids::NamespaceName::default_ns()),
    }
}

/// The supervisor did not answer.
pub fn mailbox(_: actix::MailboxError) -> ApiError {
    ApiError(berth_engine::EngineError::Unavailable(
        "the supervisor is not running".into(),
    ))
}

/// Any request that matches no route: 404 with a JSON body.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError(berth_engine::EngineError::NotFound {
        kind: "route",
        id: format!("{} {}", req.method(), req.path()),
    })
    .error_response()
}

/// Renders a record as the API's JSON (decoding its event), cached on the record so that
/// many subscribers share one rendering.
pub fn render(record: &Record) -> &str {
    record.rendered.get_or_init(|| {
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            seq: u64,
            at: chrono::DateTime<chrono::Utc>,
            namespace: &'a str,
            stream: &'a berth_journal::StreamRef,
            topic: &'a str,
            schema: u16,
            event: &'a Event,
        }
        match Event::decode(&record.topic, record.schema, &record.payload, record.at) {
            Ok(event) => serde_json::to_string(&Borrowed {
                seq: record.seq,
                at: record.at,
                namespace: &record.namespace,
                stream: &record.stream,
                topic: &record.topic,
                schema: event.schema(),
                event: &event,
            }),
            Err(_) => serde_json::to_string(&view_of(record)),
        }
        .unwrap_or_else(|e| {
            format!(
                "{{\"seq\":{},\"error\":\"cannot render: {e}\"}}",
                record.seq
            )
        })
    })
}

/// The API view of a record.
pub fn view_of(record: &Record) -> EventView {
    let (schema, event) =
        match Event::decode(&record.topic, record.schema, &record.payload, record.at) {
            Ok(e) => (
                e.schema(),
                serde_json::to_value(&e).unwrap_or(serde_json::Value::Null),
            ),
            Err(err) => (
                record.schema,
                serde_json::json!({ "undecodable": err.to_string() }),
            ),
        };
    EventView {
        seq: record.seq,
        at: record.at,
        namespace: record.namespace.clone(),
        stream: StreamView {
            kind: record.stream.kind.clone(),
            id: record.stream.id.clone(),
        },
        topic: record.topic.clone(),
        schema,
        event,
    }
}
