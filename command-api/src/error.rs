//! The command API's errors and their one mapping to HTTP: `{"error":{"code","message","details":[...]}}`.
//! Internal causes are logged with their chain, never sent to the client.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{CommandError, InputError, Violation};
use web::envelope::FieldError;

use write_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("the request breaks {} rule(s)", .0.len())]
    Validation(Vec<Violation>),
    #[error("this change needs the version you read: send If-Match: \"<version>\" or a `version` field")]
    PreconditionRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Command(CommandError),
    #[error("the order store is unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Command(c) => ApiError::Command(c),
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            e @ (StoreError::Corrupt(_) | StoreError::Internal(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        match e {
            InputError::Malformed(m) => ApiError::MalformedJson(m),
            InputError::Invalid(v) => ApiError::Validation(v.as_slice().to_vec()),
        }
    }
}

impl ApiError {
    pub fn from_body_rejection(r: BytesRejection, limit: usize) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest { code: "unreadable_body", message: r.body_text() }
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Vec<FieldError>) {
        let detail = |field: &str, reason: String| FieldError { field: field.to_owned(), reason };
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json", vec![]),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", vec![]),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", vec![]),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, vec![]),
            ApiError::Validation(v) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                v.iter().map(|v| detail(&v.field, v.reason.clone())).collect(),
            ),
            ApiError::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "version_required", vec![]),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", vec![]),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", vec![]),
            ApiError::Command(c) => match c {
                CommandError::NotFound(_) => (StatusCode::NOT_FOUND, "order_not_found", vec![]),
                CommandError::AlreadyExists(_) => (StatusCode::CONFLICT, "order_exists", vec![]),
                CommandError::VersionConflict { expected, actual, .. } => (
                    StatusCode::CONFLICT,
                    "version_conflict",
                    vec![detail("version", format!("you sent {expected}; the order is at version {actual}"))],
                ),
                CommandError::Cancelled(_) => (StatusCode::CONFLICT, "order_cancelled", vec![]),
            },
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", vec![]),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", vec![]),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.parts();
        match &self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "order store unavailable"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => tracing::debug!(%status, code, error = %self, "request refused"),
        }
        let message = match &self {
            ApiError::MalformedJson(m) => format!("request body is not valid JSON: {m}"),
            other => other.to_string(),
        };
        web::envelope::error_with(status, code, message, details)
    }
}
