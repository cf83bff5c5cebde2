//! The query API through its Router (no socket), on real read models: SQLite, PostgreSQL and MariaDB, each test on
//! each in a fresh database, with the same expectations: the reports' exact numbers, sorting and paging, hostile
//! input, read-your-writes, caching headers and the error shape.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::testkit::{change, order};
use domain::{ChangeKind, Order};
use query_api::{Settings, app};
use read_model::ReadModel;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::*;

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
