//! `/v1/snapshots`, `/v1/content`, `/v1/gc`, `/v1/system/df`.

use std::collections::HashSet;

use actix_web::{web, HttpResponse};
use berth_actors::messages::CollectGarbage;
use berth_engine::content::Provider;
use berth_engine::ids::Digest;
use berth_engine::snapshot::Kind;
use berth_engine::EngineError;

use crate::api::error::ApiError;
use crate::api::types::*;
use crate::routes::{mailbox, namespace_of, AppState, NsQuery};

fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::Active => "active",
        Kind::View => "view",
        Kind::Committed => "committed",
    }
}

/// `GET /v1/snapshots`.
pub async fn snapshots(
    state: web::Data<AppState>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let (snaps, seq) = {
        let s = state.handles.writer.state().read();
        let snaps: Vec<_> = s
            .storage
            .snapshots
            .get(&ns)
            .into_iter()
            .flat_map(|m| m.values().cloned())
            .collect();
        (snaps, s.seq)
    };
    let snapshotter = state.handles.stores.snapshotter.clone();
    let views = web::block(move || {
        snaps
            .into_iter()
            .map(|s| {
                let usage = snapshotter.usage(s.id).unwrap_or_default();
                SnapshotView {
                    key: s.key,
                    parent: s.parent,
                    kind: kind_str(s.kind).to_string(),
                    id: s.id,
                    snapshotter: s.snapshotter,
                    labels: s.labels,
                    created_at: s.created_at,
                    size: usage.size,
                    inodes: usage.inodes,
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError(EngineError::Internal(e.to_string())))?;
    Ok(HttpResponse::Ok().json(SnapshotList {
        snapshots: views,
        seq,
    }))
}

/// `GET /v1/content`.
pub async fn content(state: web::Data<AppState>) -> HttpResponse {
    let s = state.handles.writer.state().read();
    HttpResponse::Ok().json(ContentList {
        content: s
            .storage
            .content
            .values()
            .map(|c| ContentView {
                digest: c.digest.to_string(),
                size: c.size,
                labels: c.labels.clone(),
                committed_at: c.committed_at,
            })
            .collect(),
        seq: s.seq,
    })
}

/// `GET /v1/content/{digest}`: the blob's bytes.
pub async fn blob(
    state: web::Data<AppState>,
    digest: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let digest = Digest::parse(&digest)?;
    if !state
        .handles
        .writer
        .state()
        .read()
        .storage
        .content
        .contains_key(&digest)
    {
        return Err(ApiError(EngineError::NotFound {
            kind: "blob",
            id: digest.to_string(),
        }));
    }
    let store = state.handles.stores.content.clone();
    let d = digest.clone();
    let blob = web::block(move || store.open(&d))
        .await
        .map_err(|e| ApiError(EngineError::Internal(e.to_string())))??;
    let size = blob.size();
    let file = tokio::fs::File::from_std(blob.into_file());
    let body = tokio_util_stream(file);
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "application/octet-stream"))
        .insert_header(("docker-content-digest", digest.to_string()))
        .no_chunking(size)
        .streaming(body))
}

fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

/// `PUT /v1/content/{digest}/labels`: replaces the blob's labels.
pub async fn set_labels(
    state: web::Data<AppState>,
    digest: web::Path<String>,
    q: web::Query<NsQuery>,
    body: web::Json<LabelsRequest>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let digest = Digest::parse(&digest)?;
    let writer = &state.handles.writer;
    let events = berth_engine::decide(
        &writer.state().read(),
        berth_engine::Command::SetContentLabels {
            namespace: ns,
            digest: digest.clone(),
            labels: body.into_inner().labels,
        },
    )?;
    writer.append(events).await?;
    let s = writer.state().read();
    let c = s.storage.content.get(&digest).ok_or_else(|| {
        ApiError(EngineError::NotFound {
            kind: "blob",
            id: digest.to_string(),
        })
    })?;
    Ok(HttpResponse::Ok().json(ContentView {
        digest: c.digest.to_string(),
        size: c.size,
        labels: c.labels.clone(),
        committed_at: c.committed_at,
    }))
}

/// `POST /v1/gc`.
pub async fn gc(
    state: web::Data<AppState>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let done = state
        .handles
        .supervisor
        .send(CollectGarbage { namespace: ns })
        .await
        .map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(GcReport {
        content_removed: done.content_removed,
        snapshots_removed: done.snapshots_removed,
        bytes_freed: done.bytes_freed,
        took_ms: done.took_ms,
    }))
}

/// `GET /v1/system/df`.
pub async fn df(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.handles.writer.state().read().clone();
    let stores = state.handles.stores.clone();
    let df = web::block(move || {
        let read = |d: &Digest| stores.read_document(d).ok();
        let (live_content, live_snaps) = berth_engine::gc::mark(&st, &[], &read);
        let mut out = Df {
            images: DfLine::default(),
            content: DfLine::default(),
            snapshots: DfLine::default(),
        };
        let mut image_blobs: HashSet<Digest> = HashSet::new();
        for images in st.storage.images.values() {
            out.images.count += images.len() as u64;
            for i in images.values() {
                image_blobs.insert(i.target.digest.clone());
            }
        }
        for c in st.storage.content.values() {
            out.content.count += 1;
            out.content.size += c.size;
            if !live_content.contains(&c.digest) {
                out.content.reclaimable += c.size;
            }
        }
        out.images.size = live_content
            .iter()
            .filter_map(|d| st.storage.content.get(d))
            .map(|c| c.size)
            .sum();
        for (ns, snaps) in &st.storage.snapshots {
            for s in snaps.values() {
                let u = stores.snapshotter.usage(s.id).unwrap_or_default();
                out.snapshots.count += 1;
                out.snapshots.size += u.size;
                if !live_snaps.contains(&(ns.clone(), s.key.clone())) {
                    out.snapshots.reclaimable += u.size;
                }
            }
        }
        out
    })
    .await
    .map_err(|e| ApiError(EngineError::Internal(e.to_string())))?;
    Ok(HttpResponse::Ok().json(df))
}
