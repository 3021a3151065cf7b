//! [`run`]: serve the API on the given listeners until `shutdown` resolves.

use std::future::Future;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use actix_web::{web, App, HttpServer};
use berth_actors::Handles;
use berth_engine::EngineError;
use tokio::sync::watch;

use crate::api::error::ApiError;
use crate::routes::{configure, AppState};

/// Where to listen.
pub struct Listeners {
    /// The unix socket (already bound, with its mode set).
    pub unix: Option<UnixListener>,
    /// A TCP listener; every request on it must carry the bearer token.
    pub tcp: Option<std::net::TcpListener>,
}

/// Settings of the API server.
#[derive(Clone)]
pub struct ApiConfig {
    /// The bearer token required on TCP connections.
    pub token: Option<String>,
    /// Keep-alive comment interval of event streams.
    pub keepalive: Duration,
    /// Worker threads.
    pub workers: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            keepalive: Duration::from_secs(5),
            workers: 2,
        }
    }
}

/// Marks a request that arrived over TCP.
#[derive(Clone, Copy)]
struct OverTcp;

#[derive(Clone)]
struct Token(Option<String>);

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.conn_data::<OverTcp>().is_some() {
        let expected = req.app_data::<web::Data<Token>>().and_then(|t| t.0.clone());
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = match (expected, given) {
            (Some(e), Some(g)) => constant_time_eq(e.as_bytes(), g.trim().as_bytes()),
            _ => false,
        };
        if !ok {
            return Err(ApiError(EngineError::Unauthenticated(
                "a valid bearer token is required on TCP".into(),
            ))
            .into());
        }
    }
    let method = req.method().clone();
    let path = req.path().to_string();
    let started = Instant::now();
    let res = next.call(req).await?;
    tracing::debug!(%method, %path, status = res.status().as_u16(), took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), "request");
    Ok(res)
}

/// Serves the API until `shutdown` resolves, then ends event streams, stops accepting,
/// and waits (briefly) for requests in flight.
pub async fn run(
    listeners: Listeners,
    handles: Handles,
    config: ApiConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState {
        handles,
        shutdown: stop_rx,
        keepalive: config.keepalive,
    };
    let token = Token(config.token.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(token.clone()))
            .wrap(actix_web::middleware::from_fn(authenticate))
            .configure(configure)
    })
    .workers(config.workers.max(1))
    .disable_signals()
    .shutdown_timeout(5)
    // A client that goes away must be noticed even while a streamed body (logs -f,
    // events) has nothing to send, so its reader thread ends.
    .h1_allow_half_closed(false)
    .on_connect(|conn, ext| {
        if conn.downcast_ref::<TcpStream>().is_some() {
            ext.insert(OverTcp);
        }
    });
    if let Some(l) = listeners.unix {
        server = server.listen_uds(l)?;
    }
    if let Some(l) = listeners.tcp {
        if config.token.is_none() {
            return Err(std::io::Error::other("a TCP listener needs a bearer token"));
        }
        server = server.listen(l)?;
    }
    let server = server.run();
    let handle = server.handle();
    let serving = actix_web::rt::spawn(server);
    shutdown.await;
    tracing::info!("shutting down: closing event streams, refusing new connections");
    let _ = stop_tx.send(true);
    handle.stop(true).await;
    let _ = serving.await;
    Ok(())
}
