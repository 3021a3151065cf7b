//! `/v1/images`.

use actix_web::{web, HttpResponse};
use berth_actors::messages::{DeleteImage, RunImport, StartImport};
use berth_engine::ids::{ImageName, NamespaceName};
use berth_engine::image::Platform;
use berth_engine::state::Image;
use berth_engine::{decide, Command, EngineError};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::error::ApiError;
use crate::api::types::*;
use crate::routes::bridge::{ChannelReader, ChannelWriter};
use crate::routes::{mailbox, namespace_of, AppState, NsQuery};

pub(crate) fn view(i: &Image) -> ImageView {
    ImageView {
        name: i.name.to_string(),
        target: TargetView {
            media_type: i.target.media_type.clone(),
            digest: i.target.digest.to_string(),
            size: i.target.size,
        },
        labels: i.labels.clone(),
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

fn find(state: &AppState, ns: &NamespaceName, raw: &str) -> Result<Image, ApiError> {
    let name = ImageName::parse(raw)?;
    state
        .handles
        .writer
        .state()
        .read()
        .storage
        .image(ns, &name)
        .cloned()
        .ok_or_else(|| {
            ApiError(EngineError::NotFound {
                kind: "image",
                id: name.to_string(),
            })
        })
}

/// `GET /v1/images`.
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let s = state.handles.writer.state().read();
    Ok(HttpResponse::Ok().json(ImageList {
        images: s
            .storage
            .images
            .get(&ns)
            .into_iter()
            .flat_map(|m| m.values())
            .map(view)
            .collect(),
        seq: s.seq,
    }))
}

/// `GET /v1/images/{name}`.
pub async fn inspect(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let image = find(&state, &ns, &name)?;
    let stores = state.handles.stores.clone();
    let target = image.target.clone();
    let platform = Platform::host();
    let (manifest_digest, manifest, config) =
        web::block(move || berth_actors::import::resolve(&stores, &target, &platform))
            .await
            .map_err(|e| ApiError(EngineError::Internal(e.to_string())))??;
    let chain: Vec<String> = config.chain_ids().iter().map(ToString::to_string).collect();
    let s = state.handles.writer.state().read();
    let unpacked = chain.iter().all(|c| s.storage.snapshot(&ns, c).is_some());
    let size = image.target.size
        + manifest.config().size
        + manifest.layers().iter().map(|l| l.size).sum::<u64>();
    Ok(HttpResponse::Ok().json(ImageInspect {
        image: view(&image),
        manifest: manifest_digest.to_string(),
        config: manifest.config().digest.to_string(),
        platform: config.platform().to_string(),
        layers: manifest
            .layers()
            .iter()
            .map(|l| l.digest.to_string())
            .collect(),
        diff_ids: config.diff_ids().iter().map(ToString::to_string).collect(),
        chain_ids: chain,
        unpacked,
        size,
        config_json: serde_json::to_value(config.oci()).unwrap_or_default(),
    }))
}

/// `DELETE /v1/images/{name}`: the name goes; what only it referenced is collected.
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let name = ImageName::parse(&name)?;
    let seq = state
        .handles
        .supervisor
        .send(DeleteImage {
            namespace: ns,
            name: name.clone(),
        })
        .await
        .map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(Deleted {
        deleted: name.to_string(),
        seq,
    }))
}

/// `POST /v1/images/{name}/tag`.
pub async fn tag(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<NsQuery>,
    body: web::Json<TagRequest>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let source = ImageName::parse(&name)?;
    let target = ImageName::parse(&body.target)?;
    let writer = &state.handles.writer;
    let events = decide(
        &writer.state().read(),
        Command::TagImage {
            namespace: ns.clone(),
            source,
            name: target.clone(),
            at: chrono::Utc::now(),
        },
    )?;
    writer.append(events).await?;
    let image = find(&state, &ns, target.as_str())?;
    Ok(HttpResponse::Created().json(view(&image)))
}

/// Query of `POST /v1/images/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Name for the image.
    pub name: Option<String>,
    /// Platform to unpack (`os/arch[/variant]`; default: this host's).
    pub platform: Option<String>,
}

/// `POST /v1/images/import`: the request body is the archive, streamed.
pub async fn import(
    state: web::Data<AppState>,
    q: web::Query<ImportQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let name = q.name.as_deref().map(ImageName::parse).transpose()?;
    let platform = match &q.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let actor = state
        .handles
        .supervisor
        .send(StartImport {
            namespace: ns.clone(),
            name,
            platform,
        })
        .await
        .map_err(mailbox)??;
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, String>>(16);
    let run = actor.send(RunImport {
        reader: Box::new(ChannelReader::new(rx)),
    });
    let pump = async move {
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| format!("reading the request body: {e}"));
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    let (reply, ()) = tokio::join!(run, pump);
    let reply = reply.map_err(mailbox)??;
    let s = state.handles.writer.state().read();
    let images = reply
        .images
        .iter()
        .filter_map(|(n, _)| s.storage.image(&ns, n))
        .map(view)
        .collect();
    Ok(HttpResponse::Created().json(ImportResponse {
        id: reply.id,
        images,
        seq: reply.seq,
    }))
}

/// `GET /v1/images/{name}/export`: an OCI image-layout tar, streamed.
pub async fn export(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let image = find(&state, &ns, &name)?;
    let stores = state.handles.stores.clone();
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let images = vec![(image.name.clone(), image.target.clone())];
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        let res = berth_engine::archive::export(&stores.content, &images, &mut w).and_then(|()| {
            use std::io::Write;
            w.flush()
                .map_err(|e| EngineError::Unavailable(format!("sending the export: {e}")))
        });
        if let Err(e) = res {
            tracing::warn!(error = %e, "export failed");
            w.fail(std::io::Error::other(e.to_string()));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let file = image.name.as_str().replace(['/', ':', '@'], "_");
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "application/x-tar"))
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{file}.tar\""),
        ))
        .streaming(body))
}
