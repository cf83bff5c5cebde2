//! The body of every error answer: `{"error":{"code","message","details":[]}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer with no details; 503s say when to retry.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut response =
        (status, Json(json!({ "error": { "code": code, "message": message.into(), "details": [] } }))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    response
}
