//! The single mapping from [`ErrorKind`] to HTTP status and JSON error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use berth_engine::{EngineError, ErrorKind};

use crate::api::types::{ErrorBody, ErrorDetail};

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub EngineError);

impl ApiError {
    /// A 400 with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError(EngineError::InvalidArgument(message.into()))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError(e)
    }
}

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.0.kind())
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                kind: self.0.kind().as_str().to_string(),
                message: self.0.to_string(),
            },
        })
    }
}
