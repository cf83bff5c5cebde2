//! The HTTP surface: wire requests become domain commands, outcomes become status codes. Nothing here answers 2xx
//! unless the store reports the write done (or, for a replay, done before).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use domain::{OrderCommand, OrderId, Version, parse_amendment, parse_create};
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;
use crate::store::{Executed, OrderStore};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn OrderStore>,
}

/// The command API. Locally served by `axum::serve`; on Lambda by `lambda_http::run`.
pub fn app(store: Arc<dyn OrderStore>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/", post(create))
        .route("/orders", post(create))
        .route("/orders/{order_id}", get(read).put(amend).delete(remove))
        .route("/orders/{order_id}/cancel", post(cancel))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState { store })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommandResult<'a> {
    command_result: &'a str,
    order_id: &'a OrderId,
    version: Version,
}

fn etag(v: Version) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{v}\"")).expect("a number in quotes is a valid header value")
}

fn result(status: StatusCode, what: &str, id: &OrderId, version: Version) -> Response {
    let mut r = (status, Json(CommandResult { command_result: what, order_id: id, version })).into_response();
    r.headers_mut().insert(header::ETAG, etag(version));
    r
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::BadRequest { code: "invalid_order_id", message: format!("order id {e}") })
}

fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    body.map_err(|r| ApiError::from_body_rejection(r, MAX_BODY_BYTES))
}

/// The version from `If-Match` (`"3"`, `W/"3"` or `3`); `*` means any version, i.e. none given.
fn if_match(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::BadRequest {
        code: "invalid_if_match",
        message: "If-Match must be the order's ETag, e.g. \"3\"".into(),
    };
    let text = raw.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.strip_prefix("W/").unwrap_or(text);
    let bare = bare.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(bare);
    bare.parse::<u64>().ok().and_then(Version::new).map(Some).ok_or_else(bad)
}

async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "store": state.store.kind() })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, body)?;
    let now = Utc::now();
    let draft = parse_create(&body, now)?;
    let created = state.store.create(draft, now).await?;
    let order = &created.order;
    let status = if created.replayed { StatusCode::OK } else { StatusCode::CREATED };
    // A replay answers exactly as the original create did.
    let mut response = result(status, "orderCreated", &order.order_id, Version::FIRST);
    let location = HeaderValue::from_str(&format!("/orders/{}", order.order_id))
        .map_err(|e| ApiError::Internal(format!("location header: {e}")))?;
    response.headers_mut().insert(header::LOCATION, location);
    if created.replayed {
        tracing::info!(order_id = %order.order_id, "create replayed; nothing written");
    }
    Ok(response)
}

async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let order = state.store.get(&id).await?.ok_or(ApiError::Command(domain::CommandError::NotFound(id)))?;
    let mut response = Json(&order).into_response();
    response.headers_mut().insert(header::ETAG, etag(order.version));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn amend(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let body = json_body(&headers, body)?;
    let amendment = parse_amendment(&body, &id)?;
    let expected = match (if_match(&headers)?, amendment.version) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::Validation(vec![domain::Violation {
                field: "version".into(),
                reason: format!("is {b} but If-Match says {h}"),
            }]));
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(ApiError::PreconditionRequired),
    };
    updated(&state, &id, OrderCommand::Amend { lines: amendment.lines, expected }, "orderAmended").await
}

/// Runs a command that keeps the order (amend, cancel) and answers with its resulting version.
async fn updated(state: &AppState, id: &OrderId, command: OrderCommand, what: &str) -> Result<Response, ApiError> {
    match state.store.execute(id, command, Utc::now()).await? {
        Executed::Replaced(order) | Executed::Unchanged(order) => Ok(result(StatusCode::OK, what, id, order.version)),
        Executed::Removed(_) => Err(ApiError::Internal(format!("{what}: the store removed the order"))),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let expected = if_match(&headers)?;
    updated(&state, &id, OrderCommand::Cancel { expected }, "orderCancelled").await
}

async fn remove(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let expected = if_match(&headers)?;
    match state.store.execute(&id, OrderCommand::Delete { expected }, Utc::now()).await? {
        Executed::Removed(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(ApiError::Internal(format!("a delete did not remove the order: {other:?}"))),
    }
}
