//! The query Router as the Lambda runs it: an API Gateway (HTTP API, payload 2.0) event from `events/`, converted
//! by lambda_http exactly as `lambda_http::run` does, answered by the same `app` over a real (SQLite) read model.

use std::sync::Arc;

use domain::ChangeKind;
use domain::testkit::{change, order};
use http_body_util::BodyExt;
use read_model::ReadModel;
use tower::ServiceExt;

#[tokio::test]
async fn given_an_api_gateway_report_request_then_the_lambda_router_answers_with_its_query_string_applied() {
    // Given a read model holding the sample's example
    let dir = tempfile::tempdir().unwrap();
    let model = ReadModel::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("rm.db").display())).unwrap();
    model.migrate().await.unwrap();
    let o = order(
        r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]}"#,
        "2026-11-21T09:00:00Z",
    );
    model.apply(&[change(ChangeKind::Insert, None, Some(&o), "embedded", 1)]).await.unwrap();
    let app = query_api::app(Arc::new(model), query_api::Settings::default());

    // When API Gateway's event for GET /itemSalesReport?sort=totalordered&order=desc&limit=1&consistentWith=6119:1
    let path = format!("{}/../events/query-api-item-report.json", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (parts, body) = lambda_http::request::from_str(&event).expect("a valid API Gateway event").into_parts();
    let response =
        app.oneshot(axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()))).await.unwrap();

    // Then the first page of the report sorted by quantity, with a link to the next
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("cursor=6%7Ez3333") && link.ends_with("rel=\"next\""), "{link}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body[0]["itemid"], "z3333");
    assert_eq!(body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn given_an_api_gateway_request_for_the_root_then_the_lambda_router_serves_the_dashboard() {
    let model = ReadModel::connect("sqlite::memory:").unwrap();
    model.migrate().await.unwrap();
    let dashboard = query_api::settings::Dashboard {
        command_api: Some("https://cmd123.execute-api.eu-west-1.amazonaws.com".into()),
        auth: query_api::settings::ApiAuth::Jwt,
    };
    let app = query_api::app(Arc::new(model), query_api::Settings { dashboard, ..Default::default() });

    // When API Gateway's event for GET /
    let path = format!("{}/../events/query-api-dashboard.json", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (parts, body) = lambda_http::request::from_str(&event).expect("a valid API Gateway event").into_parts();
    let response =
        app.oneshot(axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()))).await.unwrap();

    // Then the page, with a policy naming the stack's command API
    assert_eq!(
        (response.status(), response.headers()["content-type"].to_str().unwrap()),
        (axum::http::StatusCode::OK, "text/html; charset=utf-8")
    );
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("connect-src 'self' https://cmd123.execute-api.eu-west-1.amazonaws.com;"), "{csp}");
    let html = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(html.contains(r#"<script type="module" src="dashboard/app.js">"#), "relative paths: {html}");
}
