//! The HTTP surface: wire requests become domain commands, outcomes become status codes. Nothing here answers 2xx
//! unless the store reports the write done (or, for a replay, done before).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use domain::{OrderCommand, OrderId, Version, parse_amendment, parse_create};
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;
use crate::openapi::CommandResult as CommandResultDoc;
use utoipa::OpenApi;
use web::envelope::ErrorBody;
use write_store::{Executed, OrderStore};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn OrderStore>,
}

/// The OpenAPI 3.1 document of this API, from the annotations on the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "orders command API", description = "Create, read, amend, cancel and delete orders."),
    paths(create, read, amend, cancel, remove, health),
    components(schemas(
        crate::openapi::CreateOrder,
        crate::openapi::Line,
        crate::openapi::AmendOrder,
        crate::openapi::CommandResult,
        crate::openapi::Order,
        crate::openapi::Health,
        web::envelope::ErrorBody,
        web::envelope::ErrorDetail,
        web::envelope::FieldError
    ))
)]
pub struct ApiDoc;

/// The document served at `/openapi.json`: `ApiDoc`, with `POST /` (the sample's address, routed to the
/// same handler) described by the same operation as `POST /orders`.
pub fn openapi() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    if let Some(orders) = doc.paths.paths.get("/orders").cloned() {
        doc.paths.paths.insert("/".to_owned(), orders);
    }
    web::openapi::served(&doc)
}

/// The command API answering CORS for `origins` (each checked by `web::cors::origin`): the local runner, so the
/// dashboard served by the query API can place orders. On Lambda API Gateway answers CORS (`CorsConfiguration`).
pub fn app_with_origins(store: Arc<dyn OrderStore>, origins: &[String]) -> Router {
    match web::cors::allow(origins) {
        Some(cors) => app(store).layer(cors),
        None => app(store),
    }
}

/// The command API. Locally served by `axum::serve`; on Lambda by `lambda_http::run`.
pub fn app(store: Arc<dyn OrderStore>) -> Router {
    let router = Router::new()
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .merge(web::docs::routes("orders command API"))
        .route("/health", get(health))
        .route("/", post(create))
        .route("/orders", post(create))
        .route("/orders/{order_id}", get(read).put(amend).delete(remove))
        .route("/orders/{order_id}/cancel", post(cancel))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(AppState { store });
    web::edge(router, web::EdgeSettings { max_body_bytes: MAX_BODY_BYTES, ..Default::default() })
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
    Version::parse_text(bare).map(Some).ok_or_else(bad)
}

#[utoipa::path(
    get,
    path = "/health",
    description = "Whether the store answers.",
    responses(
        (status = 200, description = "It does", body = crate::openapi::Health),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "store": state.store.kind() })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/orders",
    description = "Create an order (idempotent for the same body). Also at POST /, the sample's address.",
    request_body(content = crate::openapi::CreateOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CommandResultDoc, headers(("Location" = String), ("ETag" = String))),
        (status = 200, description = "The same create again: same answer, nothing written", body = CommandResultDoc),
        (status = 400, description = "Malformed JSON, or an invalid id or If-Match", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Validation failed: every violation in details", body = ErrorBody),
        (status = 409, description = "order_exists: the id is taken by an order with other content", body = ErrorBody),
        (status = 405, description = "Method not allowed here", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
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

#[utoipa::path(
    get,
    path = "/orders/{orderId}",
    description = "The order as stored (strongly consistent).",
    params(("orderId" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ : -", pattern = "^[A-Za-z0-9._:-]{1,64}$")),
    responses(
        (status = 200, description = "The order", body = crate::openapi::Order, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 405, description = "Method not allowed here", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
async fn read(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let order = state.store.get(&id).await?.ok_or(ApiError::Command(domain::CommandError::NotFound(id)))?;
    let mut response = Json(&order).into_response();
    response.headers_mut().insert(header::ETAG, etag(order.version));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(
    put,
    path = "/orders/{orderId}",
    description = "Replace the order's lines; needs the version read (If-Match or version).",
    params(("orderId" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ : -", pattern = "^[A-Za-z0-9._:-]{1,64}$"), ("If-Match" = Option<String>, Header, description = "The version read, as its ETag: \"3\" (W/\"3\" and 3 too; * for any)", pattern = r#"^(\*|(W/)?"0*[1-9][0-9]{0,17}"|0*[1-9][0-9]{0,17})$"#)),
    request_body(content = crate::openapi::AmendOrder, content_type = "application/json"),
    responses(
        (status = 200, description = "Amended", body = CommandResultDoc),
        (status = 400, description = "Malformed JSON, or an invalid id or If-Match", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Validation failed: every violation in details", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "version_conflict or order_cancelled", body = ErrorBody),
        (status = 428, description = "No version given", body = ErrorBody),
        (status = 405, description = "Method not allowed here", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
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

#[utoipa::path(
    post,
    path = "/orders/{orderId}/cancel",
    description = "Cancel the order (again: same answer, nothing changes).",
    params(("orderId" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ : -", pattern = "^[A-Za-z0-9._:-]{1,64}$"), ("If-Match" = Option<String>, Header, description = "The version read, as its ETag: \"3\" (W/\"3\" and 3 too; * for any)", pattern = r#"^(\*|(W/)?"0*[1-9][0-9]{0,17}"|0*[1-9][0-9]{0,17})$"#)),
    responses(
        (status = 200, description = "Cancelled", body = CommandResultDoc),
        (status = 400, description = "Invalid id or If-Match", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "version_conflict", body = ErrorBody),
        (status = 405, description = "Method not allowed here", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let expected = if_match(&headers)?;
    updated(&state, &id, OrderCommand::Cancel { expected }, "orderCancelled").await
}

#[utoipa::path(
    delete,
    path = "/orders/{orderId}",
    description = "Erase the order (a REMOVE on the change feed).",
    params(("orderId" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ : -", pattern = "^[A-Za-z0-9._:-]{1,64}$"), ("If-Match" = Option<String>, Header, description = "The version read, as its ETag: \"3\" (W/\"3\" and 3 too; * for any)", pattern = r#"^(\*|(W/)?"0*[1-9][0-9]{0,17}"|0*[1-9][0-9]{0,17})$"#)),
    responses(
        (status = 204, description = "Erased"),
        (status = 400, description = "Invalid id or If-Match", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "version_conflict", body = ErrorBody),
        (status = 405, description = "Method not allowed here", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "The store is unavailable, throttled or locked", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
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
