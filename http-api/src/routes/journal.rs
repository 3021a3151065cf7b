//! `/v1/journal` — for operators.

use actix_web::{web, HttpResponse};
use berth_engine::EngineError;
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::api::types::{CheckpointTaken, JournalPage, JournalStatsResponse};
use crate::routes::{view_of, AppState};

/// Most records in one page.
pub const MAX_PAGE: usize = 10_000;

/// Query of `GET /v1/journal`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// First sequence number (default 1).
    pub from: Option<u64>,
    /// Most records (default 100, at most 10000).
    pub limit: Option<usize>,
}

fn journal_err(e: berth_journal::JournalError) -> ApiError {
    match e {
        berth_journal::JournalError::Corrupt { .. } => {
            ApiError(EngineError::Internal(e.to_string()))
        }
        other => ApiError(EngineError::Unavailable(other.to_string())),
    }
}

/// `GET /v1/journal?from=&limit=`.
pub async fn page(
    state: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let from = q.from.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, not {limit}"
        )));
    }
    let journal = state.handles.journal.clone();
    let records = web::block(move || journal.read_from(from, limit))
        .await
        .map_err(|e| ApiError(EngineError::Internal(e.to_string())))?
        .map_err(journal_err)?;
    let next = records.last().map_or(from, |r| r.seq + 1);
    Ok(HttpResponse::Ok().json(JournalPage {
        records: records.iter().map(|r| view_of(r)).collect(),
        next,
        last_seq: state.handles.journal.last_seq(),
    }))
}

/// `GET /v1/journal/stats`.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let journal = state.handles.journal.clone();
    let stats = web::block(move || journal.stats())
        .await
        .map_err(|e| ApiError(EngineError::Internal(e.to_string())))?
        .map_err(journal_err)?;
    Ok(HttpResponse::Ok().json(JournalStatsResponse {
        stats,
        recovery: state.handles.recovery.clone(),
    }))
}

/// `GET /v1/journal/verify`: checks every record and checkpoint (reads the whole
/// journal; appends continue meanwhile).
pub async fn verify(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let journal = state.handles.journal.clone();
    let report = web::block(move || journal.verify())
        .await
        .map_err(|e| ApiError(EngineError::Internal(e.to_string())))?
        .map_err(journal_err)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `POST /v1/journal/checkpoint`.
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let seq = state.handles.writer.checkpoint().await?;
    Ok(HttpResponse::Ok().json(CheckpointTaken { seq }))
}
