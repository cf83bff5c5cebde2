//! The write-store contract, one suite run against the embedded store and against DynamoDB (on moto). After every
//! command the suite reads the store's change feed (the embedded change log, or the table's stream) and checks
//! exactly what the command put there.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::Utc;
use domain::{
    ChangeKind, CommandError, OrderChange, OrderCommand, OrderDraft, OrderId, OrderStatus, Version, parse_create,
};
use write_store::OrderStore;
use write_store::dynamodb::DynamoDbStore;
use write_store::embedded::{EmbeddedOptions, EmbeddedStore};
use write_store::{Created, Executed, StoreError};
/// Reads every change the store has published so far.
type Feed = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<OrderChange>> + Send>> + Send + Sync>;

fn draft(json: &str) -> OrderDraft {
    parse_create(json.as_bytes(), Utc::now()).expect("test drafts are valid")
}

fn id(s: &str) -> OrderId {
    OrderId::parse(s).unwrap()
}

fn v(n: u64) -> Version {
    Version::new(n).unwrap()
}

async fn new_changes(feed: &Feed, seen: &mut usize) -> Vec<OrderChange> {
    let all = feed().await;
    let fresh = all[*seen..].to_vec();
    *seen = all.len();
    fresh
}

async fn contract(store: Arc<dyn OrderStore>, feed: Feed) {
    let mut seen = 0;
    let order = r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6,"unitPrice":"19.99"},{"itemid":"z4444","quantity":3,"unitPrice":0.0001}]}"#;

    // Given nothing, when an order is created, then it is version 1 and the feed says INSERT with its image.
    let Created { order: created, replayed } = store.create(draft(order), Utc::now()).await.unwrap();
    assert!(!replayed);
    assert_eq!(created.version, Version::FIRST);
    let changes = new_changes(&feed, &mut seen).await;
    assert_eq!(changes.len(), 1, "one INSERT");
    assert_eq!(changes[0].kind(), ChangeKind::Insert);
    assert_eq!(changes[0].after(), Some(&created));

    // Then a strongly consistent read returns exactly what was written, prices exact.
    let read = store.get(&id("6119")).await.unwrap().unwrap();
    assert_eq!(read, created);
    let prices: Vec<String> = read.items.as_slice().iter().map(|l| l.unit_price.unwrap().get().to_string()).collect();
    assert_eq!(prices, ["19.99", "0.0001"]);

    // When the same create is retried, then it replays: same order, nothing new on the feed.
    let again = store.create(draft(order), Utc::now()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.order, created);
    // When a different order arrives under the same id, then it is refused and nothing is written.
    let other =
        store.create(draft(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":7}]}"#), Utc::now()).await;
    assert!(matches!(other, Err(StoreError::Command(CommandError::AlreadyExists(_)))), "{other:?}");
    assert!(new_changes(&feed, &mut seen).await.is_empty(), "replays and refusals publish nothing");

    // When amended at version 1, then version 2 and a MODIFY with both images.
    let lines = draft(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":1}]}"#).lines;
    let amend = |expected| OrderCommand::Amend { lines: lines.clone(), expected };
    let Executed::Replaced(amended) = store.execute(&id("6119"), amend(v(1)), Utc::now()).await.unwrap() else {
        panic!("amend writes")
    };
    assert_eq!(amended.version, v(2));
    assert_eq!(amended.items, lines);
    let changes = new_changes(&feed, &mut seen).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].kind(), changes[0].before(), changes[0].after()),
        (ChangeKind::Modify, Some(&created), Some(&amended))
    );

    // When amended again with the stale version 1, then a conflict naming both versions.
    let stale = store.execute(&id("6119"), amend(v(1)), Utc::now()).await;
    assert!(
        matches!(stale, Err(StoreError::Command(CommandError::VersionConflict { expected, actual, .. })) if expected == v(1) && actual == v(2)),
        "{stale:?}"
    );

    // When cancelled, then version 3, status cancelled, a MODIFY; cancelling again writes nothing.
    let Executed::Replaced(cancelled) =
        store.execute(&id("6119"), OrderCommand::Cancel { expected: None }, Utc::now()).await.unwrap()
    else {
        panic!("cancel writes")
    };
    assert_eq!((cancelled.version, cancelled.status), (v(3), OrderStatus::Cancelled));
    let again = store.execute(&id("6119"), OrderCommand::Cancel { expected: None }, Utc::now()).await.unwrap();
    assert_eq!(again, Executed::Unchanged(cancelled.clone()));
    let amend_cancelled = store.execute(&id("6119"), amend(v(3)), Utc::now()).await;
    assert!(matches!(amend_cancelled, Err(StoreError::Command(CommandError::Cancelled(_)))), "{amend_cancelled:?}");
    let changes = new_changes(&feed, &mut seen).await;
    assert_eq!(changes.len(), 1, "only the first cancel is a change");
    assert_eq!(changes[0].after(), Some(&cancelled));

    // When deleted with a stale version, then a conflict; with the current one, a REMOVE carrying the last state.
    let stale = store.execute(&id("6119"), OrderCommand::Delete { expected: Some(v(2)) }, Utc::now()).await;
    assert!(matches!(stale, Err(StoreError::Command(CommandError::VersionConflict { .. }))), "{stale:?}");
    let removed = store.execute(&id("6119"), OrderCommand::Delete { expected: Some(v(3)) }, Utc::now()).await.unwrap();
    assert_eq!(removed, Executed::Removed(cancelled.clone()));
    let changes = new_changes(&feed, &mut seen).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].kind(), changes[0].before(), changes[0].after()),
        (ChangeKind::Remove, Some(&cancelled), None)
    );
    assert_eq!(changes[0].version(), v(3));

    // Then the order is gone, and every command on it is NotFound.
    assert_eq!(store.get(&id("6119")).await.unwrap(), None);
    for cmd in [amend(v(3)), OrderCommand::Cancel { expected: None }, OrderCommand::Delete { expected: None }] {
        let r = store.execute(&id("6119"), cmd, Utc::now()).await;
        assert!(matches!(r, Err(StoreError::Command(CommandError::NotFound(_)))), "{r:?}");
    }
    assert!(new_changes(&feed, &mut seen).await.is_empty());

    // Given one order, when ten clients amend it concurrently from the same version, then exactly one wins.
    store.create(draft(r#"{"orderId":"race","items":[{"itemid":"a","quantity":1}]}"#), Utc::now()).await.unwrap();
    let mut tasks = Vec::new();
    for q in 2..12 {
        let store = store.clone();
        let lines = draft(&format!(r#"{{"orderId":"race","items":[{{"itemid":"a","quantity":{q}}}]}}"#)).lines;
        tasks.push(tokio::spawn(async move {
            store.execute(&id("race"), OrderCommand::Amend { lines, expected: Version::FIRST }, Utc::now()).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Executed::Replaced(o)) => {
                wins += 1;
                assert_eq!(o.version, v(2));
            }
            Err(StoreError::Command(CommandError::VersionConflict { .. })) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(wins, 1, "conditional writes let exactly one concurrent amend through");
    assert_eq!(new_changes(&feed, &mut seen).await.len(), 2, "the INSERT and one MODIFY");

    // Given a deleted order, when its id is used again, then it is a new order at version 1.
    store.execute(&id("race"), OrderCommand::Delete { expected: None }, Utc::now()).await.unwrap();
    let reborn =
        store.create(draft(r#"{"orderId":"race","items":[{"itemid":"b","quantity":1}]}"#), Utc::now()).await.unwrap();
    assert_eq!((reborn.replayed, reborn.order.version), (false, Version::FIRST));
    let kinds: Vec<ChangeKind> = new_changes(&feed, &mut seen).await.iter().map(OrderChange::kind).collect();
    assert_eq!(kinds, [ChangeKind::Remove, ChangeKind::Insert]);

    // Positions within the feed only go up.
    let all = feed().await;
    for pair in all.windows(2) {
        if pair[0].position().source == pair[1].position().source {
            assert!(
                pair[0].position().sequence < pair[1].position().sequence,
                "{} then {}",
                pair[0].position(),
                pair[1].position()
            );
        }
    }
    store.ping().await.unwrap();
}

#[tokio::test]
async fn embedded_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("orders.db"), EmbeddedOptions::default()).unwrap());
    let feed_store = store.clone();
    let feed: Feed = Box::new(move || {
        let s = feed_store.clone();
        Box::pin(async move { s.changes_after(0, 10_000).await.unwrap() })
    });
    contract(store, feed).await;
}

#[tokio::test]
async fn dynamodb_store_meets_the_contract() {
    let config = test_support::moto::sdk_config().await;
    let table = test_support::moto::unique_name("contract");
    let client = write_store::dynamodb::client(&config);
    DynamoDbStore::create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoDbStore::new(client, table.clone()));
    let feed: Feed = Box::new(move || {
        let (config, table) = (config.clone(), table.clone());
        Box::pin(async move { common::stream_changes(&config, &table).await })
    });
    contract(store, feed).await;
}

#[tokio::test]
async fn dynamodb_store_reports_an_unreachable_endpoint_as_unavailable() {
    // Given an endpoint where nothing listens, when a command runs, then Unavailable (a 503), never success.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = test_support::moto::sdk_config_at(&format!("http://127.0.0.1:{port}")).await;
    let store = DynamoDbStore::new(write_store::dynamodb::client(&config), "orders".into());
    let r = store.create(draft(r#"{"orderId":"x","items":[{"itemid":"a","quantity":1}]}"#), Utc::now()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn dynamodb_store_reports_a_missing_table_as_unavailable() {
    let config = test_support::moto::sdk_config().await;
    let store = DynamoDbStore::new(write_store::dynamodb::client(&config), test_support::moto::unique_name("absent"));
    let r = store.get(&id("x")).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn embedded_store_keeps_orders_and_its_change_log_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let created = {
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
        let c = store
            .create(draft(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#), Utc::now())
            .await
            .unwrap();
        store.execute(&id("6119"), OrderCommand::Cancel { expected: None }, Utc::now()).await.unwrap();
        c.order
    }; // dropped: the writer drains and closes
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    let read = store.get(&id("6119")).await.unwrap().unwrap();
    assert_eq!((read.version, read.status, read.created_at), (v(2), OrderStatus::Cancelled, created.created_at));
    let changes = store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.iter().map(OrderChange::kind).collect::<Vec<_>>(), [ChangeKind::Insert, ChangeKind::Modify]);
    // Positions continue after a restart instead of starting over.
    store.execute(&id("6119"), OrderCommand::Delete { expected: None }, Utc::now()).await.unwrap();
    let after = store.changes_after(2, 100).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].position().sequence, domain::change::Sequence::from(3));
}

#[tokio::test]
async fn embedded_store_commits_many_concurrent_commands_and_logs_each_once_in_order() {
    // Given 400 concurrent creates (batched by the writer), when they finish, then all are stored and the change
    // log holds exactly 400 INSERTs at positions 1..=400.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("orders.db"), EmbeddedOptions::default()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create(draft(&format!(r#"{{"orderId":"o{i}","items":[{{"itemid":"a","quantity":1}}]}}"#)), Utc::now())
                .await
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().replayed);
    }
    let changes = store.changes_after(0, 1000).await.unwrap();
    assert_eq!(changes.len(), 400);
    let positions: Vec<String> = changes.iter().map(|c| c.position().sequence.as_str().to_owned()).collect();
    assert_eq!(positions, (1..=400).map(|n: u32| n.to_string()).collect::<Vec<_>>());
    let paged = store.changes_after(390, 5).await.unwrap();
    assert_eq!(
        paged.iter().map(|c| c.position().sequence.as_str().to_owned()).collect::<Vec<_>>(),
        ["391", "392", "393", "394", "395"]
    );
}

/// An endpoint that answers every DynamoDB call with `status` and DynamoDB's JSON error `code`, counting calls.
async fn failing_endpoint(status: u16, code: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::StatusCode;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"simulated"}}"#);
            (StatusCode::from_u16(status).unwrap(), [("content-type", "application/x-amz-json-1.0")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[tokio::test]
async fn dynamodb_store_reports_throttling_and_server_errors_as_unavailable_after_retrying() {
    for (status, code) in [
        (400, "ProvisionedThroughputExceededException"),
        (400, "ThrottlingException"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
    ] {
        let (url, calls) = failing_endpoint(status, code).await;
        let config = test_support::moto::sdk_config_at(&url).await;
        let store = DynamoDbStore::new(write_store::dynamodb::client(&config), "orders".into());
        let r = store.create(draft(r#"{"orderId":"x","items":[{"itemid":"a","quantity":1}]}"#), Utc::now()).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{code}: {r:?}");
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 1, "{code}: the SDK retried before giving up");
    }
    // A client error that is not about load is not dressed up as "retry later".
    let (url, _) = failing_endpoint(400, "ValidationException").await;
    let config = test_support::moto::sdk_config_at(&url).await;
    let store = DynamoDbStore::new(write_store::dynamodb::client(&config), "orders".into());
    let r = store.get(&id("x")).await;
    assert!(matches!(r, Err(StoreError::Internal(_))), "{r:?}");
}
