//! The query API through its Router (no socket), on real read models: SQLite, PostgreSQL and MariaDB, each test on
//! each in a fresh database, with the same expectations: the reports' exact numbers, sorting and paging, hostile
//! input, read-your-writes, caching headers and the error shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::testkit::{change, order};
use domain::{ChangeKind, Order};
use http_body_util::BodyExt;
use query_api::{Settings, app};
use read_model::ReadModel;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn error_code(&self) -> &str {
        assert_eq!(self.header("content-type"), "application/json", "errors are JSON");
        assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.body);
        self.body["error"]["code"].as_str().expect("error has a code")
    }
}

async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("bodies are JSON") };
    Reply { status, headers, body }
}

struct Fixture {
    model: Arc<ReadModel>,
    app: Router,
    _dir: tempfile::TempDir,
    orders: Vec<Order>,
    /// The server database to drop afterwards: (admin URL, name).
    server: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

/// Every test runs on each backend with the same expectations; the server ones must be running (a test that
/// cannot reach them fails and says what to start).
const BACKENDS: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MariaDb];

impl Fixture {
    async fn done(self) {
        self.model.close().await;
        if let Some((admin, name)) = self.server {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap();
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).await.unwrap();
        }
    }
}

/// A fresh, empty, migrated read model on `backend`.
async fn fresh(backend: Backend, dir: &tempfile::TempDir) -> (ReadModel, Option<(String, String)>) {
    static N: AtomicU32 = AtomicU32::new(0);
    let env = |var: &str, default: &str| std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or(default.into());
    let (base, admin_db, hint) = match backend {
        Backend::Sqlite => {
            let model = ReadModel::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("rm.db").display()));
            let model = model.unwrap();
            model.migrate().await.unwrap();
            return (model, None);
        }
        Backend::Postgres => (
            env("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
            "postgres",
            "start PostgreSQL on 127.0.0.1:5432 with trust auth, or set TEST_POSTGRES_URL",
        ),
        Backend::MariaDb => (
            env("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
            "test",
            "start MariaDB/MySQL on 127.0.0.1:3306 (root, no password), or set TEST_MYSQL_URL",
        ),
    };
    sqlx::any::install_default_drivers();
    let name = format!("qa_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = format!("{base}/{admin_db}");
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {admin} ({e}): {hint}"));
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let model = ReadModel::connect(&format!("{base}/{name}")).unwrap();
    model.migrate().await.unwrap();
    (model, Some((admin, name)))
}

fn settings() -> Settings {
    Settings {
        consistency_wait: Duration::from_millis(300),
        poll_every: Duration::from_millis(5),
        cache_entries: 8,
        ..Settings::default()
    }
}

/// The sample's example (orders 6119 and 6120), an order across the year boundary, a cancelled and a removed one.
async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (model, server) = fresh(backend, &dir).await;
    let o = |json: &str| order(json, "2026-11-21T09:00:00Z");
    let orders = vec![
        o(
            r#"{"orderId":"6119","orderDate":"2022-10-13T09:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"},{"itemid":"z4444","quantity":3}]}"#,
        ),
        o(
            r#"{"orderId":"6120","orderDate":"2022-11-02T00:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"0.0001"}]}"#,
        ),
        o(r#"{"orderId":"6121","orderDate":"2021-12-31T23:59:59.999Z","items":[{"itemid":"z3333","quantity":2}]}"#),
        o(r#"{"orderId":"6122","orderDate":"2023-01-05T00:00:00Z","items":[{"itemid":"z3333","quantity":50}]}"#),
        o(r#"{"orderId":"6123","orderDate":"2023-02-05T00:00:00Z","items":[{"itemid":"z5555","quantity":7}]}"#),
    ];
    let mut changes: Vec<_> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| change(ChangeKind::Insert, None, Some(o), "embedded", i as u64 + 1))
        .collect();
    let cancelled =
        Order { status: domain::OrderStatus::Cancelled, version: orders[3].version.next(), ..orders[3].clone() };
    changes.push(change(ChangeKind::Modify, Some(&orders[3]), Some(&cancelled), "embedded", 6));
    changes.push(change(ChangeKind::Remove, Some(&orders[4]), None, "embedded", 7));
    model.apply(&changes).await.unwrap();
    let model = Arc::new(model);
    Fixture { app: app(model.clone(), settings()), model, _dir: dir, orders, server }
}

#[tokio::test]
async fn given_the_samples_example_then_the_item_report_has_exactly_its_numbers_with_honest_caching_headers() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let r = get(&f.app, "/itemSalesReport", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.body,
            json!([
                {"itemid":"z3333","totalordered":14,"totalrevenue":"15.0006","pricedordered":12,"ordercount":3,"lastorderdate":"2022-11-02"},
                {"itemid":"z4444","totalordered":3,"totalrevenue":null,"pricedordered":0,"ordercount":1,"lastorderdate":"2022-10-13"}
            ]),
            "the cancelled 6122 and the removed 6123 count for nothing; 6121's unpriced units are not in the revenue, \
             and z4444, never priced, has no revenue rather than 0"
        );
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("cache-control"), "no-cache");
        assert_eq!(r.header("x-projection-position"), "embedded=7");
        assert!(r.header("etag").starts_with("W/\""), "{}", r.header("etag"));
        f.done().await;
    }
}

#[tokio::test]
async fn given_months_across_a_year_boundary_then_the_monthly_report_is_newest_first_in_utc() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let r = get(&f.app, "/monthlySalesByItem/z3333", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.body,
            json!([
                {"monthyear":"November 2022","month":"2022-11","monthlyordered":6},
                {"monthyear":"October 2022","month":"2022-10","monthlyordered":6},
                {"monthyear":"December 2021","month":"2021-12","monthlyordered":2}
            ])
        );
        for unknown in ["/monthlySalesByItem/z9999", "/monthlySalesByItem/z333", "/monthlySalesByItem/z5555"] {
            let r = get(&f.app, unknown, &[]).await;
            assert_eq!((r.status, r.body), (StatusCode::OK, json!([])), "{unknown}: unknown, a prefix, or removed");
        }
        f.done().await;
    }
}

#[tokio::test]
async fn given_hostile_item_ids_then_the_answer_is_400_never_a_5xx_and_nothing_is_matched_by_prefix() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let long = "z".repeat(10 * 1024);
        for id in ["'%3B%20DROP%20TABLE%20orders%3B%20--", long.as_str(), "z%C3%A9", "z3333%00", "%20z3333", "a%2Fb"] {
            let r = get(&f.app, &format!("/monthlySalesByItem/{id}"), &[]).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{id:.40}: {}", r.body);
            assert_eq!(r.error_code(), "invalid_itemid");
        }
        let r = get(&f.app, "/itemSalesReport", &[]).await;
        assert_eq!(r.body.as_array().map(Vec::len), Some(2), "the tables are intact");
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_limit_then_link_headers_page_through_the_whole_report_in_any_sort() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        for (sort, first) in
            [("itemid&order=asc", "z3333"), ("totalordered&order=desc", "z3333"), ("lastorderdate", "z4444")]
        {
            let whole = get(&f.app, &format!("/itemSalesReport?sort={sort}"), &[]).await.body;
            assert_eq!(whole[0]["itemid"], first, "{sort}");
            let mut next = Some(format!("/itemSalesReport?sort={sort}&limit=1"));
            let mut paged = Vec::new();
            while let Some(uri) = next.take() {
                let r = get(&f.app, &uri, &[]).await;
                assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
                paged.extend(r.body.as_array().unwrap().iter().cloned());
                let link = r.header("link");
                if !link.is_empty() {
                    assert!(link.ends_with(">; rel=\"next\""), "{link}");
                    next = Some(link.trim_start_matches('<').split('>').next().unwrap().to_owned());
                }
            }
            assert_eq!(Value::Array(paged), whole, "{sort}");
        }
        f.done().await;
    }
}

#[tokio::test]
async fn given_bad_parameters_then_400_with_a_code_naming_the_problem() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        for (uri, code) in [
            ("/itemSalesReport?limit=0", "invalid_limit"),
            ("/itemSalesReport?limit=1001", "invalid_limit"),
            ("/itemSalesReport?limit=ten", "invalid_limit"),
            ("/itemSalesReport?sort=price", "invalid_sort"),
            ("/itemSalesReport?sort=itemid;DROP", "invalid_sort"),
            ("/itemSalesReport?order=up", "invalid_order"),
            ("/itemSalesReport?limit=1&cursor=garbage", "invalid_cursor"),
            ("/itemSalesReport?limit=1&sort=totalordered&cursor=~z3333", "invalid_cursor"),
            ("/itemSalesReport?cursor=~z3333", "invalid_cursor"),
            ("/itemSalesReport?limit=1&limit=2", "repeated_parameter"),
            ("/itemSalesReport?page=2", "unknown_parameter"),
            ("/itemSalesReport?consistentWith=6119", "invalid_consistent_with"),
            ("/itemSalesReport?consistentWith=6119:0", "invalid_consistent_with"),
            ("/itemSalesReport?consistentWith=bad%20id:1", "invalid_consistent_with"),
            ("/monthlySalesByItem/z3333?limit=1", "unknown_parameter"),
        ] {
            let r = get(&f.app, uri, &[]).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
            assert_eq!(r.error_code(), code, "{uri}");
        }
        let r = get(&f.app, "/nothing", &[]).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
        let response =
            f.app.clone().oneshot(Request::post("/itemSalesReport").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        f.done().await;
    }
}

#[tokio::test]
async fn given_an_etag_then_the_same_position_answers_304_and_a_new_change_answers_200_with_a_new_tag() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let first = get(&f.app, "/itemSalesReport", &[]).await;
        let tag = first.header("etag").to_owned();
        let again = get(&f.app, "/itemSalesReport", &[("if-none-match", &tag)]).await;
        assert_eq!((again.status, again.body.clone()), (StatusCode::NOT_MODIFIED, Value::Null));
        assert_eq!(again.header("etag"), tag);
        let other = get(&f.app, "/itemSalesReport?sort=totalordered", &[("if-none-match", &tag)]).await;
        assert_eq!(other.status, StatusCode::OK, "a different request is a different resource");

        let amended = Order { version: f.orders[2].version.next(), ..f.orders[2].clone() };
        f.model.apply(&[change(ChangeKind::Modify, Some(&f.orders[2]), Some(&amended), "embedded", 8)]).await.unwrap();
        let moved = get(&f.app, "/itemSalesReport", &[("if-none-match", &tag)]).await;
        assert_eq!(moved.status, StatusCode::OK);
        assert_ne!(moved.header("etag"), tag);
        assert_eq!(moved.header("x-projection-position"), "embedded=8");
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_kept_answer_when_a_change_lands_without_moving_the_position_then_the_next_answer_has_it() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let first = get(&f.app, "/itemSalesReport", &[]).await;
        let again = get(&f.app, "/itemSalesReport?consistentWith=6119:1", &[]).await;
        assert_eq!((again.body.clone(), again.header("etag")), (first.body.clone(), first.header("etag")), "kept");

        // A change applied from a shard whose sequence is below the stream's position (Lambda keeps one per stream)
        let late = order(r#"{"orderId":"7000","items":[{"itemid":"z7777","quantity":1}]}"#, "2026-11-21T09:00:00Z");
        f.model.apply(&[change(ChangeKind::Insert, None, Some(&late), "embedded", 3)]).await.unwrap();

        let after = get(&f.app, "/itemSalesReport", &[("if-none-match", first.header("etag"))]).await;
        assert_eq!(after.status, StatusCode::OK, "not 304: the read model changed");
        assert_eq!(after.header("x-projection-position"), "embedded=7", "the position did not move");
        assert_ne!(after.header("etag"), first.header("etag"));
        assert_eq!(after.body.as_array().unwrap().last().unwrap()["itemid"], "z7777");
        f.done().await;
    }
}

#[tokio::test]
async fn given_consistent_with_then_the_call_waits_for_that_version_and_gives_up_with_503_after_the_bound() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        // Already projected (a removed order counts at the version it was removed at)
        let r = get(&f.app, "/itemSalesReport?consistentWith=6119:1&consistentWith=6123:1", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        // Not yet: bounded wait, then 503 with Retry-After
        let started = Instant::now();
        let r = get(&f.app, "/monthlySalesByItem/z3333?consistentWith=6119:2", &[]).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "not_yet_consistent"));
        assert_eq!(r.header("retry-after"), "1");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5), "bounded: {waited:?}");

        // Projected while the request waits (with the default 5 s bound, so that a slow machine still makes it):
        // answered with the new numbers in the same call
        let patient = app(f.model.clone(), Settings { consistency_wait: Duration::from_secs(5), ..settings() });
        let amended =
            Order { version: f.orders[0].version.next(), items: f.orders[1].items.clone(), ..f.orders[0].clone() };
        let model = f.model.clone();
        let before = f.orders[0].clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            model.apply(&[change(ChangeKind::Modify, Some(&before), Some(&amended), "embedded", 8)]).await.unwrap();
        });
        let r = get(&patient, "/itemSalesReport?consistentWith=6119:2", &[]).await;
        writer.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.body[0],
            json!({"itemid":"z3333","totalordered":14,"totalrevenue":"0.0012","pricedordered":12,"ordercount":3,"lastorderdate":"2022-11-02"})
        );
        assert_eq!(r.body.as_array().unwrap().len(), 1, "z4444 left with the amendment");
        f.done().await;
    }
}

#[tokio::test]
async fn given_the_projection_then_status_reports_each_source_with_its_lag() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!((r.body["status"].as_str(), r.body["deadLetters"]["count"].as_u64()), (Some("ok"), Some(0)));
        let sources = r.body["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!((sources[0]["source"].as_str(), sources[0]["sequence"].as_str()), (Some("embedded"), Some("7")));
        assert_eq!((sources[0]["lagSeconds"].as_f64(), sources[0]["behind"].as_u64()), (Some(0.0), Some(0)));
        assert!(sources[0]["secondsSinceLastChange"].as_f64().unwrap() > 0.0);
        let health = get(&f.app, "/health", &[]).await;
        assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("ok")));
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_stalled_stream_or_a_change_set_aside_then_status_and_health_say_degraded_and_why() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let now = chrono::Utc::now();
        let seq = |n: u64| domain::change::Sequence::from(n);

        // Given a consumer that recorded a backlog its position has already passed: nothing waits
        let passed = read_model::Backlog {
            source: "embedded".into(),
            head_sequence: seq(7),
            head_changed_at: now,
            pending_since: now - chrono::Duration::seconds(600),
            pending: 3,
            recorded_at: now,
        };
        f.model.record_backlog(&passed).await.unwrap();
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!((r.body["status"].as_str(), r.body["sources"][0]["lagSeconds"].as_f64()), (Some("ok"), Some(0.0)));

        // When a stream consumer records a batch that did not go through, its oldest record two minutes old
        let stalled = read_model::Backlog {
            source: "arn:aws:dynamodb:eu-west-1:1:table/orders/stream/x#shard-1".into(),
            head_sequence: seq(120),
            head_changed_at: now - chrono::Duration::seconds(10),
            pending_since: now - chrono::Duration::seconds(120),
            pending: 40,
            recorded_at: now,
        };
        f.model.record_backlog(&stalled).await.unwrap();

        // Then status shows it behind, lagging past the threshold, and health is degraded saying so
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let sources = r.body["sources"].as_array().unwrap();
        let shard = sources.iter().find(|s| s["source"] == stalled.source.as_str()).unwrap();
        assert_eq!((shard["behind"].as_u64(), shard["behindAtLeast"].as_bool()), (Some(40), Some(true)));
        assert_eq!((shard["headSequence"].as_str(), shard["sequence"].as_str()), (Some("120"), None));
        assert!(shard["lagSeconds"].as_f64().unwrap() >= 120.0, "{shard}");
        assert_eq!(r.body["status"], "degraded");
        assert_eq!(r.body["reasons"][0]["code"], "projection_lagging");
        let health = get(&f.app, "/health", &[]).await;
        assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("degraded")));

        // And a change set aside is a reason of its own, listed with its reason
        let letter = read_model::DeadLetter {
            source: "embedded".into(),
            sequence: seq(8),
            order_id: Some("6119".into()),
            reason: "read model database error: refused".into(),
            record: "{}".into(),
            changed_at: now,
            failed_at: now,
        };
        f.model.set_aside(&letter).await.unwrap();
        let r = get(&f.app, "/projection/status", &[]).await;
        let codes: Vec<&str> =
            r.body["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["projection_lagging", "changes_set_aside"]);
        assert_eq!(r.body["deadLetters"]["count"], 1);
        assert_eq!(r.body["deadLetters"]["newest"][0]["orderId"], "6119");
        let embedded =
            r.body["sources"].as_array().unwrap().iter().find(|s| s["source"] == "embedded").unwrap().clone();
        assert_eq!(embedded["sequence"], "8", "setting a change aside moves its source past it");
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_read_model_whose_rebuild_did_not_finish_then_health_says_degraded_and_why() {
    for backend in BACKENDS {
        // Given a read model a rebuild began and never finished
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        f.model.clear().await.unwrap();
        drop(f.model.start_rebuild("embedded").await.unwrap());

        // When asked for its health, then it answers degraded, naming the unfinished rebuild
        let r = get(&f.app, "/health", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["status"], "degraded");
        let codes: Vec<&str> =
            r.body["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["rebuild_unfinished"]);
        f.done().await;
    }
}

#[tokio::test]
async fn given_the_database_unreachable_then_reports_answer_503_within_the_pool_timeout_not_a_hang() {
    let model = Arc::new(ReadModel::connect("postgres://nobody@127.0.0.1:1/none").unwrap());
    let app = app(model, settings());
    let started = Instant::now();
    let r = get(&app, "/itemSalesReport", &[]).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    assert_eq!(r.header("retry-after"), "1");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the pool's 10 s: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_api_publishes_its_openapi_3_1_document_with_every_status_and_an_interactive_page() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let r = get(&f.app, "/openapi.json", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"), "{}", r.body["openapi"]);
        let statuses = |path: &str| -> Vec<String> {
            let mut s: Vec<String> =
                r.body["paths"][path]["get"]["responses"].as_object().unwrap().keys().cloned().collect();
            s.sort();
            s
        };
        let report = ["200", "304", "400", "405", "500", "503"];
        assert_eq!(statuses("/itemSalesReport"), report);
        assert_eq!(statuses("/monthlySalesByItem/{itemid}"), report);
        assert_eq!(statuses("/projection/status"), ["200", "500", "503"]);
        assert_eq!(statuses("/health"), ["200", "500", "503"]);
        let params: Vec<&str> = r.body["paths"]["/itemSalesReport"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["sort", "order", "limit", "cursor", "consistentWith"]);
        assert!(r.body["components"]["schemas"]["ItemSales"]["properties"]["totalrevenue"].is_object());

        let response = f.app.clone().oneshot(Request::get("/docs").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        f.done().await;
    }
}
