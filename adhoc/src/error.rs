//! The ad-hoc API's errors and their one mapping to HTTP, in the shape of the other APIs:
//! `{"error":{"code","message","details"}}`. Internal causes are logged, never sent.

use axum::http::StatusCode;
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
        web::envelope::error(status, code, self.to_string())
    }
}
