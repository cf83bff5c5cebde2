//! The query API's errors and their one mapping to HTTP, in the command API's shape:
//! `{"error":{"code","message","details"}}`. Internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use projector::ProjectionError;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

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

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: e.g. invalid_itemid, invalid_limit, not_yet_consistent, unavailable.
    #[schema(example = "invalid_itemid")]
    pub code: String,
    pub message: String,
    /// Always empty here (the command API lists field violations in it).
    pub details: Vec<String>,
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
        let body = Json(ErrorBody {
            error: ErrorDetail { code: code.to_owned(), message: self.to_string(), details: vec![] },
        });
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
