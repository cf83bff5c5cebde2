//! The `query-api-lambda` binary as Lambda runs it: started against a local Lambda Runtime API
//! (`lambda-harness`) and handed the sample API Gateway event of `events/`, over a read model holding one order.

use std::time::Duration;

use lambda_harness::event;
use projector::ReadModel;
use serde_json::Value;

#[tokio::test]
async fn given_a_projected_order_when_the_binary_answers_the_sample_report_request_then_it_is_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
    let model = ReadModel::connect(&url).unwrap();
    model.migrate().await.unwrap();
    projector::stream::handle(&model, &event("dynamodb-insert.json")).await.unwrap();
    model.close().await;

    let env = [
        ("READ_MODEL_URL", url),
        ("ATHENA_WORKGROUP", "orders".to_owned()),
        ("LAKE_DATABASE", "orders_lake".to_owned()),
        ("QUERIES_TABLE", "orders-queries".to_owned()),
    ];
    let run = lambda_harness::run(
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
