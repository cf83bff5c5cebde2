//! The DynamoDB Streams poller against moto: orders written through the real DynamoDB store reach the read model,
//! and a pass (or a restarted poller) resumes after the stored positions instead of re-reading the stream.

use std::sync::Arc;

use change_feed::poller::Poller;
use chrono::Utc;
use domain::projection::Totals;
use domain::{OrderCommand, OrderId, Version, parse_create};
use projector::ReadModelSink;
use read_model::ReadModel;
use write_store::OrderStore;
use write_store::dynamodb::DynamoDbStore;

fn id(s: &str) -> OrderId {
    OrderId::parse(s).unwrap()
}

async fn create(store: &DynamoDbStore, json: &str) {
    store.create(parse_create(json.as_bytes(), Utc::now()).unwrap(), Utc::now()).await.unwrap();
}

#[tokio::test]
async fn given_orders_written_to_dynamodb_when_the_poller_passes_then_the_read_model_equals_a_recomputation() {
    let config = test_support::moto::sdk_config().await;
    let table = test_support::moto::unique_name("poll");
    let client = write_store::dynamodb::client(&config);
    DynamoDbStore::create_table(&client, &table).await.unwrap();
    let store = DynamoDbStore::new(client, table.clone());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
    let model = Arc::new(ReadModel::connect(&url).unwrap());
    model.migrate().await.unwrap();

    create(&store, r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6},{"itemid":"z4444","quantity":3}]}"#)
        .await;
    create(&store, r#"{"orderId":"6120","items":[{"itemid":"z3333","quantity":4,"unitPrice":"1.25"}]}"#).await;
    create(&store, r#"{"orderId":"6121","items":[{"itemid":"z5555","quantity":1}]}"#).await;
    let lines =
        parse_create(br#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":2}]}"#, Utc::now()).unwrap().lines;
    store.execute(&id("6119"), OrderCommand::Amend { lines, expected: Version::FIRST }, Utc::now()).await.unwrap();
    store.execute(&id("6120"), OrderCommand::Cancel { expected: None }, Utc::now()).await.unwrap();
    store.execute(&id("6121"), OrderCommand::Delete { expected: None }, Utc::now()).await.unwrap();

    let poller = Poller::new(&config, table.clone(), Arc::new(ReadModelSink(model.clone())));
    let pass = poller.catch_up().await.unwrap();
    assert_eq!((pass.records, pass.applied), (6, 6));

    let mut live = Vec::new();
    for o in ["6119", "6120", "6121"] {
        live.extend(store.get(&id(o)).await.unwrap());
    }
    let expected = Totals::recompute(&live);
    let snap = model.snapshot().await.unwrap();
    assert_eq!(snap.items.keys().collect::<Vec<_>>(), expected.items.keys().collect::<Vec<_>>());
    assert_eq!(snap.items.values().map(|t| (t.quantity, t.orders)).collect::<Vec<_>>(), vec![(2, 1)]);
    assert_eq!(snap.months, expected.months);
    assert_eq!(snap.orders.len(), 2, "6119 live, 6120 cancelled");
    assert_eq!(snap.tombstones.len(), 1, "6121 removed");

    // Nothing new: a second pass, or a restarted poller, reads nothing again.
    assert_eq!(poller.catch_up().await.unwrap().records, 0);
    let restarted = Poller::new(&config, table.clone(), Arc::new(ReadModelSink(model.clone())));
    assert_eq!(restarted.catch_up().await.unwrap().records, 0);

    create(&store, r#"{"orderId":"6122","items":[{"itemid":"z3333","quantity":5}]}"#).await;
    let pass = restarted.catch_up().await.unwrap();
    assert_eq!((pass.records, pass.applied), (1, 1));
    assert_eq!(model.snapshot().await.unwrap().items.values().map(|t| t.quantity).sum::<i64>(), 7);
}
