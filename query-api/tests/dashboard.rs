//! The dashboard's page and assets through the query API's Router: served from the binary, under a policy that
//! allows nothing from another host, and told where the command API is.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use query_api::settings::{ApiAuth, Dashboard};
use query_api::{Settings, app};
use read_model::ReadModel;
use tower::ServiceExt;

async fn router(dashboard: Dashboard) -> axum::Router {
    let model = ReadModel::connect("sqlite::memory:").unwrap();
    model.migrate().await.unwrap();
    app(Arc::new(model), Settings { dashboard, ..Settings::default() })
}

async fn fetch(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn given_a_command_api_then_the_page_is_served_with_a_policy_naming_only_the_two_apis() {
    let command = "https://cmd.example.com";
    let app = router(Dashboard { command_api: Some(command.into()), auth: ApiAuth::Jwt }).await;
    let (status, headers, body) = fetch(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';") && csp.contains("connect-src 'self' https://cmd.example.com;"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains('*'), "{csp}");
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing from another host");

    let (status, headers, body) = fetch(&app, "/dashboard/config.json").await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config, serde_json::json!({"commandApi": command, "auth": "JWT"}));
}

#[tokio::test]
async fn given_the_page_then_every_asset_it_loads_is_served_and_nothing_else() {
    let app = router(Dashboard::default()).await;
    for (asset, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("views.mjs", "text/javascript; charset=utf-8"),
        ("logic.mjs", "text/javascript; charset=utf-8"),
        ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("uPlot.min.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = fetch(&app, &format!("/dashboard/{asset}")).await;
        assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, kind), "{asset}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(!body.is_empty(), "{asset}");
    }
    let (status, _, body) = fetch(&app, "/dashboard/..%2Fsrc%2Flib.rs").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&body));
    // Without a command API the page is still served and says it cannot place orders.
    let (_, _, body) = fetch(&app, "/dashboard/config.json").await;
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"commandApi":null,"auth":"none"}"#);
    // The JSON routes are where they were.
    assert_eq!(fetch(&app, "/itemSalesReport").await.0, StatusCode::OK);
    assert_eq!(fetch(&app, "/docs").await.0, StatusCode::OK);
}
