//! The Router as the Lambda runs it: API Gateway (HTTP API, payload 2.0) events from `events/`, converted by
//! lambda_http exactly as `lambda_http::run` does, answered by the same `app`.

use std::sync::Arc;

use command_api::app;
use http_body_util::BodyExt;
use tower::ServiceExt;
use write_store::embedded::{EmbeddedOptions, EmbeddedStore};

async fn invoke(app: &axum::Router, event_file: &str) -> (u16, serde_json::Value) {
    let path = format!("{}/../events/{event_file}", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request = lambda_http::request::from_str(&event).expect("a valid API Gateway event");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn given_api_gateway_events_when_the_router_answers_them_then_the_results_match_the_local_server() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(Arc::new(EmbeddedStore::open(&dir.path().join("o.db"), EmbeddedOptions::default()).unwrap()));
    let (status, body) = invoke(&app, "command-api-post-order.json").await;
    assert_eq!(
        (status, body["commandResult"].as_str(), body["version"].as_u64()),
        (201, Some("orderCreated"), Some(1))
    );
    let (status, body) = invoke(&app, "command-api-get-order.json").await;
    assert_eq!(
        (status, body["orderId"].as_str(), body["items"].as_array().map(Vec::len)),
        (200, Some("6119"), Some(2))
    );
}
