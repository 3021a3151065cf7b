//! `/v1/namespaces`.

use actix_web::{web, HttpResponse};
use berth_actors::messages::{CreateNamespace, DeleteNamespace};
use berth_engine::ids::NamespaceName;
use berth_engine::state::Namespace;
use berth_engine::EngineError;

use crate::api::error::ApiError;
use crate::api::types::{
    CreateNamespaceRequest, Deleted, NamespaceList, NamespaceResponse, NamespaceView,
};
use crate::routes::{mailbox, AppState};

fn view(ns: &Namespace) -> NamespaceView {
    NamespaceView {
        name: ns.name.to_string(),
        labels: ns.labels.clone(),
        created_at: ns.created_at,
    }
}

/// `GET /v1/namespaces`.
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let s = state.handles.writer.state().read();
    HttpResponse::Ok().json(NamespaceList {
        namespaces: s.namespaces.values().map(view).collect(),
        seq: s.seq,
    })
}

/// `GET /v1/namespaces/{name}`.
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = NamespaceName::parse(&name)?;
    let s = state.handles.writer.state().read();
    let ns = s
        .namespaces
        .get(&name)
        .ok_or_else(|| EngineError::NotFound {
            kind: "namespace",
            id: name.to_string(),
        })?;
    Ok(HttpResponse::Ok().json(NamespaceResponse {
        namespace: view(ns),
        seq: s.seq,
    }))
}

/// `POST /v1/namespaces`.
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateNamespaceRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = NamespaceName::parse(&body.name)?;
    let reply = state
        .handles
        .supervisor
        .send(CreateNamespace {
            name,
            labels: body.labels,
        })
        .await
        .map_err(mailbox)??;
    Ok(HttpResponse::Created().json(NamespaceResponse {
        namespace: view(&reply.namespace),
        seq: reply.seq,
    }))
}

/// `DELETE /v1/namespaces/{name}`.
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = NamespaceName::parse(&name)?;
    let seq = state
        .handles
        .supervisor
        .send(DeleteNamespace { name: name.clone() })
        .await
        .map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(Deleted {
        deleted: name.to_string(),
        seq,
    }))
}
