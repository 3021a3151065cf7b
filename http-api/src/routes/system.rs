//! `/v1/version`, `/v1/healthz`, `/v1/openapi.json`.

use actix_web::{web, HttpResponse};

use crate::api::types::{Health, VersionInfo};
use crate::routes::AppState;

/// `GET /v1/version`.
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: crate::API_VERSION.to_string(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
    })
}

/// `GET /v1/healthz`: the daemon serves only after recovery, so answering is healthy.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        seq: state.handles.journal.last_seq(),
    })
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::api::openapi::document())
}
