//! The query API's errors and their one mapping to HTTP, in the command API's shape:
//! `{"error":{"code","message","details"}}`. Internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use read_model::ProjectionError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("order {order} is not yet projected at version {version}; retry shortly")]
    NotYetConsistent { order: String, version: u64 },
    #[error("the read model is unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl QueryError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError::BadRequest { code, message: message.into() }
    }
}

impl From<ProjectionError> for QueryError {
    fn from(e: ProjectionError) -> QueryError {
        match e {
            ProjectionError::Database(cause) => QueryError::Unavailable(cause.to_string()),
            other => QueryError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            QueryError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            QueryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            QueryError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            QueryError::NotYetConsistent { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_yet_consistent"),
            QueryError::Unavailable(cause) => {
                tracing::warn!(%cause, "read model unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            QueryError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        web::envelope::error(status, code, self.to_string())
    }
}
