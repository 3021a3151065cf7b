//! `POST /v1/images/pull` and `POST /v1/images/{name}/push`: registries.

use actix_web::{web, HttpResponse};
use berth_actors::messages::{PullProgress, PullReply, PullRequest, PullTicket, StartPull};
use berth_engine::ids::ImageName;
use berth_engine::image::Platform;
use berth_engine::registry::Credentials;
use berth_engine::EngineError;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::api::error::ApiError;
use crate::api::types::*;
use crate::routes::{mailbox, namespace_of, AppState, NsQuery};

/// Query of `POST /v1/images/pull`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Answer with newline-delimited JSON progress until the pull ends.
    #[serde(default)]
    pub stream: bool,
    /// Answer when the pull has ended, with its result.
    #[serde(default)]
    pub wait: bool,
}

fn credentials(auth: Option<&RegistryAuth>) -> Option<Credentials> {
    auth.map(|a| Credentials::basic(a.username.clone(), a.password.clone()))
}

fn response(r: &PullReply) -> PullImageResponse {
    PullImageResponse {
        image: r.image.to_string(),
        digest: r.digest.to_string(),
        pull_id: r.id.clone(),
        seq: r.seq,
    }
}

fn gone() -> EngineError {
    EngineError::Unavailable("the pull stopped without an outcome".into())
}

fn error_line(e: &EngineError) -> Value {
    json!({"error": {"kind": e.kind().as_str(), "message": e.to_string()}})
}

fn progress_line(id: &str, p: &PullProgress) -> Value {
    match p {
        PullProgress::Resolved { digest, media_type } => {
            json!({"status": "resolved", "pull_id": id, "digest": digest.to_string(), "media_type": media_type})
        }
        PullProgress::Layer {
            digest,
            current,
            total,
        } => json!({"layer": digest.to_string(), "current": current, "total": total}),
        PullProgress::LayerDone { digest, size } => {
            json!({"status": "layer_done", "layer": digest.to_string(), "size": size})
        }
        PullProgress::Unpacking => json!({"status": "unpacking"}),
    }
}

fn final_line(
    done: Result<Result<PullReply, EngineError>, tokio::sync::oneshot::error::RecvError>,
) -> Value {
    match done.map_err(|_| gone()).and_then(|r| r) {
        Ok(r) => {
            let mut v = serde_json::to_value(response(&r)).unwrap_or_default();
            v["status"] = json!("completed");
            v
        }
        Err(e) => error_line(&e),
    }
}

fn ndjson(v: &Value) -> Result<bytes::Bytes, actix_web::Error> {
    let mut line = v.to_string();
    line.push('\n');
    Ok(bytes::Bytes::from(line))
}

/// `POST /v1/images/pull`: waits for the pull, or with `?stream=true` answers
/// newline-delimited JSON progress lines ending with `"status":"completed"` or an
/// `"error"` object. Two requests for the same reference and platform share one pull.
pub async fn pull(
    state: web::Data<AppState>,
    q: web::Query<PullQuery>,
    body: web::Json<PullImageRequest>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let reference = state.handles.registry.parse_reference(&body.reference)?;
    let platform = match &body.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let ticket: PullTicket = state
        .handles
        .supervisor
        .send(StartPull(PullRequest {
            namespace: ns,
            reference,
            platform,
            credentials: credentials(body.auth.as_ref()),
        }))
        .await
        .map_err(mailbox)??;
    if !q.stream && !q.wait {
        // The pull runs in its actor whether anyone waits or not.
        return Ok(
            HttpResponse::Accepted().json(crate::api::types::PullAccepted {
                pull_id: ticket.id,
                reference: body.reference.clone(),
            }),
        );
    }
    if !q.stream {
        let reply = ticket.done.await.map_err(|_| gone())??;
        return Ok(HttpResponse::Ok().json(response(&reply)));
    }
    let first = json!({"status": "started", "pull_id": ticket.id});
    let lines = stream::unfold(Some(ticket), |t| async move {
        let mut t = t?;
        loop {
            tokio::select! {
                biased;
                p = t.progress.recv() => match p {
                    Ok(p) => {
                        let line = progress_line(&t.id, &p);
                        return Some((ndjson(&line), Some(t)));
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => {
                        let done = (&mut t.done).await;
                        return Some((ndjson(&final_line(done)), None));
                    }
                },
                done = &mut t.done => return Some((ndjson(&final_line(done)), None)),
            }
        }
    });
    let body = futures_util::StreamExt::chain(stream::once(async move { ndjson(&first) }), lines);
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "application/x-ndjson"))
        .streaming(body))
}

/// `POST /v1/images/{name}/push`.
pub async fn push(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<NsQuery>,
    body: web::Json<PushImageRequest>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let name = ImageName::parse(&name)?;
    let registry = &state.handles.registry;
    let target = registry.parse_reference(body.target.as_deref().unwrap_or(name.as_str()))?;
    let creds = credentials(body.auth.as_ref());
    let pushed = berth_actors::pull::push::push_image(
        &state.handles.writer,
        &state.handles.stores,
        registry,
        &ns,
        &name,
        &target,
        creds.as_ref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PushImageResponse {
        image: name.to_string(),
        target: pushed.target.to_string(),
        digest: pushed.digest.to_string(),
        uploaded: pushed.uploaded,
        mounted: pushed.mounted,
        existing: pushed.existing,
    }))
}
