//! `/queries` over HTTP with a recording fake engine and real SQLite records: who may see what, what the guard
//! stops before the engine, and the page token rules. (The real engines have their own tests: DataFusion in
//! adhoc-embedded, Athena against moto.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adhoc::engine::{Column, Download, Engine, EngineError, Execution, Page, State};
use adhoc::http::{Identify, Queries, routes};
use adhoc::records::SqliteRecords;
use adhoc::{Identity, Service, ServiceSettings};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Succeeds every query at once with 25 rows `[n]`, recording what it was asked to run.
#[derive(Default)]
struct Fake {
    started: Mutex<Vec<String>>,
}

#[async_trait]
impl Engine for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn start(&self, sql: &str) -> Result<String, EngineError> {
        let mut started = self.started.lock().unwrap();
        started.push(sql.to_owned());
        Ok(format!("q{}", started.len()))
    }
    async fn status(&self, _: &str) -> Result<Execution, EngineError> {
        Ok(Execution {
            state: State::Succeeded,
            submitted_at: None,
            completed_at: None,
            bytes_scanned: Some(3),
            run_time_ms: Some(1),
            failure: None,
        })
    }
    async fn results(&self, _: &str, token: Option<&str>, max: u32) -> Result<Page, EngineError> {
        let from: u32 = token.map(|t| t.parse().map_err(|_| EngineError::BadToken)).transpose()?.unwrap_or(0);
        let to = (from + max).min(25);
        Ok(Page {
            columns: vec![Column { name: "n".into(), kind: "bigint".into() }],
            rows: (from..to).map(|n| vec![json!(n)]).collect(),
            next: (to < 25).then(|| to.to_string()),
        })
    }
    async fn download(&self, _: &str, _: Duration) -> Result<Download, EngineError> {
        Ok(Download::Redirect("https://results.example/q.csv?signature=x".into()))
    }
    async fn cancel(&self, _: &str) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The caller named by the `x-test-caller` header (a test-only identify function; the real ones are the fixed
/// dev identity and API Gateway's authorizer).
fn by_header() -> Identify {
    Arc::new(|parts| {
        let name = parts.headers.get("x-test-caller")?.to_str().ok()?.to_owned();
        let email = (name != "no-address").then(|| format!("{name}@example.com"));
        Some(Identity { principal: name, email })
    })
}

struct Api {
    router: axum::Router,
    engine: Arc<Fake>,
    _dir: tempfile::TempDir,
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Fake::default());
    let records = SqliteRecords::open(&dir.path().join("q.db")).unwrap();
    let settings = ServiceSettings {
        guard: adhoc::guard::GuardConfig::lake("orders_lake"),
        link_lifetime: Duration::from_secs(3600),
        link_base: None,
    };
    let service = Service::new(engine.clone(), Arc::new(records), None, settings);
    let router = routes(Queries { service: Some(Arc::new(service)), identify: by_header() });
    Api { router, engine, _dir: dir }
}

async fn call(
    api: &Api,
    method: &str,
    uri: &str,
    caller: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = caller {
        req = req.header("x-test-caller", c);
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default()).unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers)
}

async fn submit(api: &Api, caller: &str, sql: &str) -> String {
    let (status, body, headers) = call(api, "POST", "/queries", Some(caller), Some(json!({ "sql": sql }))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["queryId"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/queries/{id}").as_str());
    id
}

#[tokio::test]
async fn given_hostile_sql_when_submitted_then_400_names_the_reason_and_the_engine_never_receives_it() {
    let api = api();
    let hostile = [
        "DROP TABLE order_lines".to_owned(),
        "CREATE TABLE x AS SELECT * FROM order_lines".to_owned(),
        "INSERT INTO order_lines SELECT * FROM order_lines".to_owned(),
        "DELETE FROM order_lines".to_owned(),
        "COPY (SELECT * FROM order_lines) TO '/tmp/x.csv'".to_owned(),
        "SELECT 1; DROP TABLE order_lines".to_owned(),
        "SELECT 1 -- harmless\n; DELETE FROM order_lines".to_owned(),
        "SELECT * FROM read_parquet('/etc/passwd')".to_owned(),
        "SELECT * FROM read_csv('s3://another-bucket/x.csv')".to_owned(),
        "SELECT * FROM hr.salaries".to_owned(),
        "SELECT * FROM information_schema.tables".to_owned(),
        "SELECT * INTO copy_of_lines FROM order_lines".to_owned(),
        format!("SELECT 1 /* {} */", "x".repeat(1 << 20)),
    ];
    for sql in &hostile {
        let (status, body, _) = call(&api, "POST", "/queries", Some("alice"), Some(json!({ "sql": sql }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", &sql[..sql.len().min(60)]);
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(code.starts_with("sql_"), "{code}");
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty());
    }
    assert!(
        api.engine.started.lock().unwrap().is_empty(),
        "the engine received {:?}",
        api.engine.started.lock().unwrap()
    );

    let (status, body, _) = call(
        &api,
        "POST",
        "/queries",
        Some("alice"),
        Some(json!({"QueryString": "SELECT 1", "ResultConfiguration": {"OutputLocation": "s3://attacker/"}})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("field_not_allowed")));
}

#[tokio::test]
async fn given_a_query_when_another_caller_asks_for_it_then_it_does_not_exist_for_them() {
    let api = api();
    let id = submit(&api, "alice", "SELECT itemid FROM order_lines_current").await;
    assert_eq!(api.engine.started.lock().unwrap().as_slice(), ["SELECT itemid FROM order_lines_current"]);

    for (method, path) in [("GET", ""), ("GET", "/results"), ("GET", "/download"), ("DELETE", "")] {
        let (status, _, _) = call(&api, method, &format!("/queries/{id}{path}"), Some("mallory"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        let (status, _, _) = call(&api, method, &format!("/queries/{id}{path}"), None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a caller");
    }
    let (status, body, _) = call(&api, "GET", &format!("/queries/{id}"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["state"].as_str(), body["bytesScanned"].as_u64()), (Some("SUCCEEDED"), Some(3)));
    let (status, _, headers) = call(&api, "GET", &format!("/queries/{id}/download"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["location"].to_str().unwrap().starts_with("https://results.example/"));
    // Asked for JSON (the dashboard with a bearer token, which must not follow the redirect), the link itself.
    let req = Request::get(format!("/queries/{id}/download"))
        .header("x-test-caller", "alice")
        .header("accept", "application/json, text/plain;q=0.5")
        .body(Body::empty())
        .unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!((res.status(), res.headers()["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
    let link: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(link, json!({"url": "https://results.example/q.csv?signature=x"}));
}

#[tokio::test]
async fn given_a_result_of_several_pages_then_tokens_walk_it_and_a_foreign_or_made_up_token_is_400() {
    let api = api();
    let id = submit(&api, "alice", "SELECT 1").await;
    let other = submit(&api, "alice", "SELECT 2").await;

    let mut seen = Vec::new();
    let mut uri = format!("/queries/{id}/results?maxResults=10");
    loop {
        let (status, body, _) = call(&api, "GET", &uri, Some("alice"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(body["rows"].as_array().unwrap().iter().map(|r| r[0].as_u64().unwrap()));
        match body["nextToken"].as_str() {
            Some(token) => {
                // The same token on another of the caller's queries is refused.
                let (status, body, _) =
                    call(&api, "GET", &format!("/queries/{other}/results?nextToken={token}"), Some("alice"), None)
                        .await;
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (StatusCode::BAD_REQUEST, Some("invalid_next_token"))
                );
                uri = format!("/queries/{id}/results?maxResults=10&nextToken={token}");
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    for bad in
        ["nextToken=garbage", "nextToken=cTkKMTA", "maxResults=0", "maxResults=1001", "maxResults=ten", "limit=5"]
    {
        let (status, _, _) = call(&api, "GET", &format!("/queries/{id}/results?{bad}"), Some("alice"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn given_notify_without_a_registered_address_then_400_and_an_address_in_the_request_is_refused() {
    let api = api();
    let (status, body, _) =
        call(&api, "POST", "/queries", Some("no-address"), Some(json!({"sql": "SELECT 1", "notify": true}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("no_registered_address")));
    let (status, body, _) = call(
        &api,
        "POST",
        "/queries",
        Some("alice"),
        Some(json!({"sql": "SELECT 1", "notify": true, "email": "x@evil.example"})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_field")));
}

#[tokio::test]
async fn given_no_engine_configured_then_every_route_answers_503_not_configured() {
    let router = routes(Queries { service: None, identify: by_header() });
    let res = router
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/queries")
                .header("x-test-caller", "a")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
