//! The `query-api-lambda` binary as Lambda runs it: started against a local Lambda Runtime API
//! (`test_support::lambda`) and handed the sample API Gateway event of `events/`, over a read model holding one order.

use std::time::Duration;

use read_model::ReadModel;
use serde_json::Value;
use test_support::lambda::event;

#[tokio::test]
async fn given_a_projected_order_when_the_binary_answers_the_sample_report_request_then_it_is_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
    let model = ReadModel::connect(&url).unwrap();
    model.migrate().await.unwrap();
    let order = domain::testkit::order(
        r#"{"orderId":"6119","orderDate":"2022-10-13T09:00:00Z","items":[{"itemid":"z3333","quantity":6}]}"#,
        "2026-11-21T10:00:00Z",
    );
    model.apply(&[domain::testkit::change(domain::ChangeKind::Insert, None, Some(&order), "test", 1)]).await.unwrap();
    model.close().await;

    let env = [
        ("READ_MODEL_URL", url),
        ("ATHENA_WORKGROUP", "orders".to_owned()),
        ("LAKE_DATABASE", "orders_lake".to_owned()),
        ("QUERIES_TABLE", "orders-queries".to_owned()),
    ];
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_query-api-lambda"),
        &env,
        vec![event("query-api-item-report.json")],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(run.outcomes.len(), 1, "{:?}\n{}", run.init_error, run.logs);
    let response = run.outcomes[0].response();
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body[0]["itemid"], "z3333", "{body}");
    assert_eq!(body[0]["totalordered"], 6, "{body}");
}
