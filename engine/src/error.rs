//! Errors and their canonical kinds.

use serde::{Deserialize, Serialize};

/// Canonical error kinds, mapped to a transport status in exactly one place (the HTTP
/// layer). Modelled on containerd's errdefs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// An object with that identity exists already.
    AlreadyExists,
    /// The object is not in a state that allows the operation.
    FailedPrecondition,
    /// The request itself is wrong.
    InvalidArgument,
    /// A dependency is not available right now; retrying may help.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
    /// The caller did not prove who it is (a TCP client without the bearer token).
    Unauthenticated,
}

impl ErrorKind {
    /// The kind's name as it appears in API error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::FailedPrecondition => "FailedPrecondition",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::Internal => "Internal",
            ErrorKind::Unauthenticated => "Unauthenticated",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the domain. Variants carry the object they concern.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// Bad input.
    #[error("{0}")]
    InvalidArgument(String),
    /// Missing object.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// Object kind (`namespace`, …).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// Missing object, with a message of its own (e.g. what exists instead).
    #[error("{0}")]
    Missing(String),
    /// Duplicate object.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists {
        /// Object kind.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// Wrong state for the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something needed is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// Unexpected failure.
    #[error("{0}")]
    Internal(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
}

impl EngineError {
    /// The canonical kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            EngineError::NotFound { .. } | EngineError::Missing(_) => ErrorKind::NotFound,
            EngineError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            EngineError::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::Internal(_) => ErrorKind::Internal,
            EngineError::Unauthenticated(_) => ErrorKind::Unauthenticated,
        }
    }
}
