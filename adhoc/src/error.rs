//! The ad-hoc API's errors and their one mapping to HTTP, in the shape of the other APIs:
//! `{"error":{"code","message","details"}}`. Internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::State;
use crate::guard::Refusal;
use crate::records::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum AdhocError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("the caller is not identified")]
    Unauthenticated,
    #[error("{0}")]
    NotFound(String),
    #[error("the query is {}; results exist only once it has SUCCEEDED", .0.as_str())]
    NotReady(State),
    #[error("ad-hoc SQL is not configured on this API")]
    NotConfigured,
    #[error("the query service is unavailable; retry shortly")]
    Unavailable(String),
}

impl AdhocError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> AdhocError {
        AdhocError::BadRequest { code, message: message.into() }
    }
}

impl From<Refusal> for AdhocError {
    fn from(r: Refusal) -> AdhocError {
        AdhocError::BadRequest { code: r.code, message: r.message }
    }
}

impl From<RecordError> for AdhocError {
    fn from(e: RecordError) -> AdhocError {
        AdhocError::Unavailable(e.to_string())
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: e.g. sql_not_a_query, sql_table_not_allowed, invalid_next_token, not_ready.
    #[schema(example = "sql_not_a_query")]
    pub code: String,
    pub message: String,
    pub details: Vec<String>,
}

impl IntoResponse for AdhocError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdhocError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            AdhocError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AdhocError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdhocError::NotReady(_) => (StatusCode::CONFLICT, "not_ready"),
            AdhocError::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            AdhocError::Unavailable(cause) => {
                tracing::warn!(%cause, "ad-hoc query service unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let body = Json(ErrorBody {
            error: ErrorDetail { code: code.to_owned(), message: self.to_string(), details: vec![] },
        });
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
