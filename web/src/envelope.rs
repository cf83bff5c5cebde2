//! The body of every error answer of both APIs, `{"error":{"code","message","details":[...]}}`, its OpenAPI schema,
//! and the one way it is written: a 503 says when to retry, and no error is cached.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, machine-readable: e.g. validation_failed, version_conflict, invalid_itemid, sql_not_a_query,
    /// unavailable.
    #[schema(example = "validation_failed")]
    pub code: String,
    pub message: String,
    /// One per violated rule where a request breaks several (validation), else empty.
    pub details: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    /// JSON path of the value, e.g. `items[2].quantity`.
    pub field: String,
    pub reason: String,
}

/// An error answer with `details`.
pub fn error_with(status: StatusCode, code: &str, message: impl Into<String>, details: Vec<FieldError>) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.into(), details } };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// An error answer with no details.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    error_with(status, code, message, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn an_error_is_the_envelope_uncached_and_a_503_says_when_to_retry() {
        let details = vec![FieldError { field: "items[0].quantity".into(), reason: "must be 1 or more".into() }];
        let r =
            error_with(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "the request breaks 1 rule(s)", details);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers().get("retry-after").is_none());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error": {"code": "validation_failed", "message": "the request breaks 1 rule(s)",
                "details": [{"field": "items[0].quantity", "reason": "must be 1 or more"}]}})
        );
        let r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "retry shortly");
        assert_eq!(r.headers()["retry-after"], "1");
    }
}
