//! The `command-api-lambda` binary as Lambda runs it: started against a local Lambda Runtime API
//! (`test_support::lambda`) and handed the sample API Gateway events of `events/`, with the orders table on moto
//! (`MOTO_ENDPOINT`).

use std::time::Duration;

use serde_json::Value;
use test_support::lambda::event;
use write_store::dynamodb::DynamoDbStore;

#[tokio::test]
async fn given_the_sample_requests_when_the_binary_answers_them_then_the_order_is_created_and_read_back() {
    let config = test_support::moto::sdk_config().await;
    let table = test_support::moto::unique_name("lambda-binary");
    DynamoDbStore::create_table(&write_store::dynamodb::client(&config), &table).await.unwrap();

    let env = [
        ("ORDERS_STORE", "dynamodb".to_owned()),
        ("ORDERS_TABLE", table),
        ("AWS_ENDPOINT_URL", test_support::moto::endpoint()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    let events = vec![event("command-api-post-order.json"), event("command-api-get-order.json")];
    let run =
        test_support::lambda::run(env!("CARGO_BIN_EXE_command-api-lambda"), &env, events, Duration::from_secs(60))
            .await;
    assert_eq!(run.outcomes.len(), 2, "{:?}\n{}", run.init_error, run.logs);

    let created = run.outcomes[0].response();
    assert_eq!(created["statusCode"], 201, "{created}");
    let read = run.outcomes[1].response();
    assert_eq!(read["statusCode"], 200, "{read}");
    let order: Value = serde_json::from_str(read["body"].as_str().unwrap()).unwrap();
    assert_eq!(order["orderId"], "6119", "{order}");
    assert_eq!(order["items"].as_array().map(Vec::len), Some(2), "{order}");
}

#[tokio::test]
async fn given_the_embedded_store_when_the_binary_starts_then_it_refuses_saying_why() {
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_command-api-lambda"),
        &[("ORDERS_STORE", "embedded".to_owned())],
        vec![event("command-api-get-order.json")],
        Duration::from_secs(30),
    )
    .await;
    assert!(run.outcomes.is_empty(), "{:?}", run.outcomes);
    assert!(run.logs.contains("ORDERS_STORE must be `dynamodb`"), "{}", run.logs);
}
