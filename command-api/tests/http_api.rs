//! The command API through its Router (no socket): every endpoint, every status it promises, and the JSON error
//! shape. Backed by a real embedded store in a temp dir, or by a store that fails on purpose.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use command_api::app;
use domain::{Order, OrderCommand, OrderDraft, OrderId};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use write_store::embedded::{EmbeddedOptions, EmbeddedStore};
use write_store::{Created, Executed};
use write_store::{OrderStore, StoreError};

const EARLIER: &str = r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]}"#;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// Asserts the error shape `{"error":{"code","message","details":[...]}}` and returns the code.
    fn error_code(&self) -> &str {
        assert_eq!(self.header(header::CONTENT_TYPE), "application/json", "errors are JSON");
        let e = &self.body["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error has a message: {}", self.body);
        assert!(e["details"].is_array(), "error has details: {}", self.body);
        e["code"].as_str().expect("error has a code")
    }
}

async fn send(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("bodies are JSON") };
    Reply { status, headers, body }
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post(app: &Router, uri: &str, body: &str) -> Reply {
    send(app, Method::POST, uri, &[JSON], body.to_owned()).await
}

fn embedded() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("orders.db"), EmbeddedOptions::default()).unwrap();
    (dir, app(Arc::new(store)))
}

#[tokio::test]
async fn given_the_samples_request_when_posted_then_201_location_and_result_and_a_retry_is_200() {
    let (_dir, app) = embedded();
    for uri in ["/", "/orders"] {
        let r = post(&app, uri, EARLIER).await;
        let expected_status = if uri == "/" { StatusCode::CREATED } else { StatusCode::OK };
        assert_eq!(r.status, expected_status, "{uri}: {}", r.body);
        assert_eq!(r.header(header::LOCATION), "/orders/6119");
        assert_eq!(r.body, json!({"commandResult":"orderCreated","orderId":"6119","version":1}));
        assert_eq!(r.header(header::ETAG), "\"1\"");
    }
    let r = post(&app, "/orders", r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":7}]}"#).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "order_exists"));
}

#[tokio::test]
async fn given_an_order_when_read_then_it_comes_back_as_stored_with_its_etag() {
    let (_dir, app) = embedded();
    post(
        &app,
        "/orders",
        r#"{"orderId":"o-1","orderDate":"2022-10-13","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"}]}"#,
    )
    .await;
    let r = send(&app, Method::GET, "/orders/o-1", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::ETAG), "\"1\"");
    assert_eq!(r.body["orderId"], "o-1");
    assert_eq!(r.body["status"], "created");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["orderDate"], "2022-10-13T00:00:00.000Z");
    assert_eq!(r.body["items"], json!([{"itemid":"z3333","quantity":6,"unitPrice":"2.5"}]));
    assert!(DateTime::parse_from_rfc3339(r.body["createdAt"].as_str().unwrap()).is_ok());

    let r = send(&app, Method::GET, "/orders/nope", &[], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "order_not_found"));
    let r = send(&app, Method::GET, "/orders/bad%20id", &[], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "invalid_order_id"));
}

#[tokio::test]
async fn amend_takes_the_version_from_if_match_or_the_body_and_refuses_stale_missing_or_cancelled() {
    let (_dir, app) = embedded();
    post(&app, "/orders", EARLIER).await;
    let items = r#""items":[{"itemid":"z3333","quantity":1}]"#;
    let put = |headers: Vec<(&'static str, &'static str)>, body: String| {
        let app = app.clone();
        async move { send(&app, Method::PUT, "/orders/6119", &headers, body).await }
    };

    let r = put(vec![JSON, ("if-match", "\"1\"")], format!("{{{items}}}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"commandResult":"orderAmended","orderId":"6119","version":2}));
    assert_eq!(r.header(header::ETAG), "\"2\"");

    let r = put(vec![JSON], format!(r#"{{{items},"version":2}}"#)).await;
    assert_eq!(r.body["version"], 3);

    let r = put(vec![JSON, ("if-match", "\"1\"")], format!("{{{items}}}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "version_conflict"));
    assert_eq!(r.body["error"]["details"][0]["field"], "version");

    let r = put(vec![JSON], format!("{{{items}}}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::PRECONDITION_REQUIRED, "version_required"));

    let r = put(vec![JSON, ("if-match", "\"3\"")], format!(r#"{{{items},"version":2}}"#)).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));

    let r = put(vec![JSON, ("if-match", "three")], format!("{{{items}}}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "invalid_if_match"));

    let r = send(&app, Method::PUT, "/orders/unknown", &[JSON, ("if-match", "1")], format!("{{{items}}}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "order_not_found"));

    let r = send(&app, Method::POST, "/orders/6119/cancel", &[], Body::empty()).await;
    assert_eq!(r.body, json!({"commandResult":"orderCancelled","orderId":"6119","version":4}));
    let r = put(vec![JSON, ("if-match", "W/\"4\"")], format!("{{{items}}}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "order_cancelled"));
}

#[tokio::test]
async fn cancel_is_a_new_version_and_retrying_it_changes_nothing() {
    let (_dir, app) = embedded();
    post(&app, "/orders", EARLIER).await;
    for _ in 0..2 {
        let r = send(&app, Method::POST, "/orders/6119/cancel", &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!({"commandResult":"orderCancelled","orderId":"6119","version":2}));
    }
    let r = send(&app, Method::GET, "/orders/6119", &[], Body::empty()).await;
    assert_eq!((r.body["status"].as_str(), r.body["version"].as_u64()), (Some("cancelled"), Some(2)));
    let r = send(&app, Method::POST, "/orders/nope/cancel", &[], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "order_not_found"));
}

#[tokio::test]
async fn delete_erases_the_order_and_honours_if_match() {
    let (_dir, app) = embedded();
    post(&app, "/orders", EARLIER).await;
    let r = send(&app, Method::DELETE, "/orders/6119", &[("if-match", "\"7\"")], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "version_conflict"));
    let r = send(&app, Method::DELETE, "/orders/6119", &[("if-match", "\"1\"")], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    let r = send(&app, Method::GET, "/orders/6119", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&app, Method::DELETE, "/orders/6119", &[], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "order_not_found"));
}

#[tokio::test]
async fn bodies_must_be_json_of_at_most_64_kib_and_valid() {
    let (_dir, app) = embedded();
    let r = post(&app, "/orders", r#"{"orderId":"6119","items":[{"itemid""#).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));

    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = send(&app, Method::POST, "/orders", &headers, EARLIER).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{ct:?}"
        );
    }
    let r = send(&app, Method::POST, "/orders", &[("content-type", "application/json; charset=utf-8")], EARLIER).await;
    assert_eq!(r.status, StatusCode::CREATED);

    let padded = format!(r#"{{"orderId":"big",{}"items":[{{"itemid":"a","quantity":1}}]}}"#, " ".repeat(64 * 1024));
    let r = post(&app, "/orders", &padded).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let r = send(&app, Method::GET, "/orders/big", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was written");

    let r =
        post(&app, "/orders", r#"{"orderId":"","items":[{"itemid":"a","quantity":0},{"itemid":"a","quantity":"2"}]}"#)
            .await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let fields: Vec<&str> =
        r.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["orderId", "items[0].quantity", "items[1].quantity", "items[1].itemid"]);
}

#[tokio::test]
async fn health_unknown_routes_and_wrong_methods_answer_in_json() {
    let (_dir, app) = embedded();
    let r = send(&app, Method::GET, "/health", &[], Body::empty()).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::OK, json!({"status":"ok","store":"embedded"})));
    let r = send(&app, Method::GET, "/nowhere", &[], Body::empty()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = send(&app, Method::PATCH, "/orders/6119", &[JSON], "{}").await;
    assert_eq!((r.status, r.error_code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}

/// A store that fails every call the way it is told to.
struct Failing(fn() -> StoreError);

#[async_trait]
impl OrderStore for Failing {
    fn kind(&self) -> &'static str {
        "failing"
    }
    async fn create(&self, _: OrderDraft, _: DateTime<Utc>) -> Result<Created, StoreError> {
        Err((self.0)())
    }
    async fn get(&self, _: &OrderId) -> Result<Option<Order>, StoreError> {
        Err((self.0)())
    }
    async fn execute(&self, _: &OrderId, _: OrderCommand, _: DateTime<Utc>) -> Result<Executed, StoreError> {
        Err((self.0)())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err((self.0)())
    }
}

async fn every_endpoint(app: &Router) -> Vec<Reply> {
    vec![
        post(app, "/", EARLIER).await,
        post(app, "/orders", EARLIER).await,
        send(app, Method::GET, "/orders/6119", &[], Body::empty()).await,
        send(
            app,
            Method::PUT,
            "/orders/6119",
            &[JSON, ("if-match", "1")],
            r#"{"items":[{"itemid":"a","quantity":1}]}"#,
        )
        .await,
        send(app, Method::POST, "/orders/6119/cancel", &[], Body::empty()).await,
        send(app, Method::DELETE, "/orders/6119", &[], Body::empty()).await,
        send(app, Method::GET, "/health", &[], Body::empty()).await,
    ]
}

#[tokio::test]
async fn given_the_store_is_unavailable_then_every_endpoint_is_503_with_retry_after() {
    let app = app(Arc::new(Failing(|| StoreError::Unavailable("throttled".into()))));
    for r in every_endpoint(&app).await {
        assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"));
        assert_eq!(r.header(header::RETRY_AFTER), "1");
        assert!(!r.body.to_string().contains("throttled"), "internal causes stay in the logs");
    }
}

#[tokio::test]
async fn given_the_store_fails_otherwise_then_500_without_the_cause() {
    let app = app(Arc::new(Failing(|| StoreError::Internal("secret table detail".into()))));
    for r in every_endpoint(&app).await {
        assert_eq!((r.status, r.error_code()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
        assert!(!r.body.to_string().contains("secret"));
    }
}

#[tokio::test]
async fn given_the_embedded_database_is_locked_by_another_process_then_writes_are_503_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let store = EmbeddedStore::open(&path, EmbeddedOptions { busy_timeout: Duration::from_millis(100) }).unwrap();
    let app = app(Arc::new(store));
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let r = post(&app, "/orders", EARLIER).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"));
    assert_eq!(r.header(header::RETRY_AFTER), "1");

    blocker.execute_batch("ROLLBACK").unwrap();
    let r = send(&app, Method::GET, "/orders/6119", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the refused write did not happen");
    let r = post(&app, "/orders", EARLIER).await;
    assert_eq!(r.status, StatusCode::CREATED, "and the store recovers once the lock is gone");
}

#[tokio::test]
async fn the_api_publishes_its_openapi_3_1_document_with_every_status_and_an_interactive_page() {
    let (_dir, app) = embedded();
    let r = send(&app, Method::GET, "/openapi.json", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"), "{}", r.body["openapi"]);
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let responses = r.body["paths"][path][method]["responses"].as_object();
        let mut s: Vec<String> = responses.unwrap_or_else(|| panic!("{method} {path}")).keys().cloned().collect();
        s.sort();
        s
    };
    let create = ["200", "201", "400", "405", "409", "413", "415", "422", "500", "503"];
    assert_eq!(statuses("/orders", "post"), create);
    assert_eq!(statuses("/", "post"), create);
    assert_eq!(statuses("/orders/{orderId}", "get"), ["200", "400", "404", "405", "500", "503"]);
    assert_eq!(
        statuses("/orders/{orderId}", "put"),
        ["200", "400", "404", "405", "409", "413", "415", "422", "428", "500", "503"]
    );
    assert_eq!(statuses("/orders/{orderId}/cancel", "post"), ["200", "400", "404", "405", "409", "500", "503"]);
    assert_eq!(statuses("/orders/{orderId}", "delete"), ["204", "400", "404", "405", "409", "500", "503"]);
    assert_eq!(statuses("/health", "get"), ["200", "503"]);
    let line = &r.body["components"]["schemas"]["Line"]["properties"];
    assert!(line["itemid"].is_object() && line["quantity"].is_object() && line["unitPrice"].is_object(), "{line}");

    let docs = app.clone().oneshot(Request::get("/docs").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
}

/// The question a browser asks before a cross-origin POST with JSON and a token.
async fn preflight(app: &Router, origin: &str) -> Reply {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type,authorization"),
    ];
    send(app, Method::OPTIONS, "/orders", &headers, Body::empty()).await
}

#[tokio::test]
async fn given_an_allowed_origin_then_preflights_and_answers_carry_cors_for_it_and_for_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("orders.db"), EmbeddedOptions::default()).unwrap();
    let dashboard = "http://127.0.0.1:3001";
    let app = command_api::app_with_origins(Arc::new(store), &[dashboard.to_owned()]);
    // Given the dashboard's origin, when the browser asks first, then POST with JSON and a token is allowed.
    let allowed = preflight(&app, dashboard).await;
    assert_eq!(allowed.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), dashboard);
    assert!(allowed.header(header::ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    assert!(allowed.header(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("authorization"));
    assert_eq!(allowed.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "", "no credentials");
    // And the answer itself (an error too) names the origin and exposes the version's ETag.
    let created = send(&app, Method::POST, "/orders", &[JSON, ("origin", dashboard)], EARLIER).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), dashboard);
    assert!(created.header(header::ACCESS_CONTROL_EXPOSE_HEADERS).contains("etag"));
    let invalid = send(&app, Method::POST, "/orders", &[JSON, ("origin", dashboard)], r#"{"orderId":""}"#).await;
    assert_eq!(
        (invalid.status, invalid.header(header::ACCESS_CONTROL_ALLOW_ORIGIN)),
        (StatusCode::UNPROCESSABLE_ENTITY, dashboard)
    );
    // Given any other origin, then nothing allows it.
    let other = preflight(&app, "https://evil.example").await;
    assert_eq!(other.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "");
    // Given no list (the Lambda: API Gateway answers CORS), then no CORS header at all.
    let (_dir, plain) = embedded();
    let r = send(&plain, Method::POST, "/orders", &[JSON, ("origin", dashboard)], EARLIER).await;
    assert_eq!((r.status, r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN)), (StatusCode::CREATED, ""));
}
