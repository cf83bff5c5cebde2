//! The projector's Lambda handler on the sample events in `events/`: what it applies, what it reports in
//! `batchItemFailures`, and that a database failure part-way applies nothing and the retry converges.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use domain::ItemId;
use read_model::{ReadModel, Snapshot};
use serde_json::{Value, json};
use sqlx::Executor;
use test_support::lambda::event;

async fn sqlite() -> (tempfile::TempDir, ReadModel) {
    let dir = tempfile::tempdir().unwrap();
    let model = ReadModel::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display())).unwrap();
    model.migrate().await.unwrap();
    (dir, model)
}

/// The Lambda handler with `model` as its sink.
async fn handle(model: &ReadModel, event: &Value) -> Result<DynamoDbEventResponse, String> {
    let sink = projector::ReadModelSink(Arc::new(model.clone()));
    change_feed::lambda::handle(&sink, event).await
}

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap_or_default()).collect()
}

fn item(s: &str) -> ItemId {
    ItemId::parse(s).unwrap()
}

#[tokio::test]
async fn given_insert_modify_and_remove_events_then_the_read_model_follows_and_reports_no_failures() {
    let (_dir, model) = sqlite().await;
    let r = handle(&model, &event("dynamodb-insert.json")).await.unwrap();
    assert!(failures(&r).is_empty());
    let snap = model.snapshot().await.unwrap();
    assert_eq!((snap.items[&item("z3333")].quantity, snap.items[&item("z4444")].quantity), (6, 3));

    handle(&model, &event("dynamodb-modify.json")).await.unwrap();
    let snap = model.snapshot().await.unwrap();
    assert_eq!(snap.items[&item("z3333")].quantity, 2);
    assert_eq!(snap.items[&item("z3333")].revenue.to_string(), "5");
    assert!(!snap.items.contains_key(&item("z4444")), "the amend dropped z4444");

    let r = handle(&model, &event("dynamodb-remove.json")).await.unwrap();
    assert!(failures(&r).is_empty());
    let snap = model.snapshot().await.unwrap();
    assert!(snap.orders.is_empty() && snap.items.is_empty());
    assert_eq!(snap.tombstones.len(), 1);
}

#[tokio::test]
async fn given_a_mixed_batch_delivered_twice_then_the_second_delivery_changes_nothing() {
    let (_dir, model) = sqlite().await;
    handle(&model, &event("dynamodb-batch.json")).await.unwrap();
    let once = model.snapshot().await.unwrap();
    assert_eq!(once.orders.len(), 2);
    assert_eq!(once.orders.values().filter(|o| o.status == domain::OrderStatus::Cancelled).count(), 1);
    let z = &once.items[&item("z3333")];
    assert_eq!((z.quantity, z.revenue.to_string(), z.orders), (4, "5".to_owned(), 1), "only 6120 counts");
    let source = once.positions.keys().next().unwrap().clone();
    assert!(source.starts_with("arn:aws:dynamodb:"), "the stream is the position's source: {source}");
    handle(&model, &event("dynamodb-batch.json")).await.unwrap();
    assert_eq!(model.snapshot().await.unwrap(), once);
}

#[tokio::test]
async fn given_a_malformed_record_mid_batch_then_it_is_set_aside_with_its_reason_and_the_rest_is_applied() {
    let (_dir, model) = sqlite().await;
    let r = handle(&model, &event("dynamodb-malformed.json")).await.unwrap();
    assert!(failures(&r).is_empty(), "a record that cannot decode is not retried: it would stall the shard");
    let snap = model.snapshot().await.unwrap();
    assert_eq!(
        snap.orders.keys().map(|o| o.to_string()).collect::<Vec<_>>(),
        ["6119", "6120"],
        "the records before and after it are applied"
    );
    assert_eq!(snap.positions.values().next().unwrap().0.as_str(), "110000000000000000003");
    let letters = model.dead_letters(10).await.unwrap();
    assert_eq!(letters.count, 1);
    let letter = &letters.newest[0];
    assert_eq!(letter.sequence.as_str(), "110000000000000000002");
    assert!(letter.reason.starts_with("undecodable record:"), "{}", letter.reason);
    let raw: Value = serde_json::from_str(&letter.record).unwrap();
    assert_eq!(raw["eventID"], event("dynamodb-malformed.json")["Records"][1]["eventID"], "the record as delivered");

    // Delivered again (Lambda retries whole batches after a timeout): nothing changes, the letter is kept once.
    let r = handle(&model, &event("dynamodb-malformed.json")).await.unwrap();
    assert!(failures(&r).is_empty());
    assert_eq!(model.snapshot().await.unwrap(), snap);
    assert_eq!(model.dead_letters(10).await.unwrap().count, 1);
}

#[tokio::test]
async fn records_that_are_not_stream_records_are_set_aside_not_skipped() {
    let (_dir, model) = sqlite().await;
    let mut e = event("dynamodb-batch.json");
    e["Records"][0]["eventName"] = json!("TRUNCATE");
    e["Records"][1]["dynamodb"]["NewImage"] = json!("not a map");
    let r = handle(&model, &e).await.unwrap();
    assert!(failures(&r).is_empty());
    let letters = model.dead_letters(10).await.unwrap();
    let mut set_aside: Vec<&str> = letters.newest.iter().map(|l| l.sequence.as_str()).collect();
    set_aside.sort();
    assert_eq!(set_aside, ["110000000000000000001", "110000000000000000002"]);
    // Without a sequence number there is nothing to name or set aside: the whole batch fails (and is retried).
    let mut e = event("dynamodb-batch.json");
    e["Records"][0]["eventName"] = json!("TRUNCATE");
    e["Records"][0]["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
    assert!(handle(&model, &e).await.is_err());
    assert!(handle(&model, &json!({"detail": {}})).await.is_err());
}

/// A TCP proxy that forwards to `upstream` until `budget` client bytes have passed in all, then cuts every
/// connection: a database that goes away part-way through a batch. Raising the budget brings it back.
async fn cutting_proxy(upstream: std::net::SocketAddr, budget: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let sent = sent.clone();
            let budget = budget.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || sent.fetch_add(n, Ordering::SeqCst) + n > budget.load(Ordering::SeqCst) {
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::select! { () = up => {}, () = down => {} }
            });
        }
    });
    addr
}

async fn postgres_db(name: &str) -> String {
    let base = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into());
    sqlx::any::install_default_drivers();
    let mut admin =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{base}/postgres")).await.unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {base} ({e}): start it on 127.0.0.1:5432 or set TEST_POSTGRES_URL")
        });
    admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    format!("{base}/{name}")
}

/// A batch of `n` inserts of distinct orders, as Lambda would deliver them.
fn big_batch(n: usize) -> Value {
    let template = event("dynamodb-insert.json")["Records"][0].clone();
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = template.clone();
            let id = format!("o{i}");
            r["eventID"] = json!(format!("big{i}"));
            r["dynamodb"]["Keys"]["orderId"]["S"] = json!(id);
            r["dynamodb"]["NewImage"]["orderId"]["S"] = json!(id);
            r["dynamodb"]["SequenceNumber"] = json!(format!("{}", 200000000000000000000u128 + i as u128));
            r
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn given_the_database_fails_part_way_then_the_first_record_is_reported_nothing_is_applied_and_the_retry_converges()
 {
    let url = postgres_db(&format!("proxy_{}", std::process::id())).await;
    let direct = ReadModel::connect(&url).unwrap();
    direct.migrate().await.unwrap();
    let pg_addr: std::net::SocketAddr = {
        let rest = url.split('@').nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    };
    // For 300 orders the loads and the line DELETE send ~24 KB and the orders upsert ~60 KB more: a 40 KB budget
    // cuts the connection inside the transaction, after its first writes. (With no budget the batch succeeds.)
    let budget = Arc::new(AtomicUsize::new(40_000));
    let proxy = cutting_proxy(pg_addr, budget.clone()).await;
    let via_proxy = ReadModel::connect(&url.replace(&pg_addr.to_string(), &proxy.to_string())).unwrap();

    let batch = big_batch(300);
    let r = handle(&via_proxy, &batch).await.unwrap();
    assert_eq!(failures(&r), ["200000000000000000000"], "the first record is reported: nothing was applied");
    assert_eq!(direct.snapshot().await.unwrap(), Snapshot::default(), "no partial batch is visible");

    // Lambda retries from the reported record, the database is back, and the same pool (one per Lambda
    // container) replaces its broken connection: the result is as if nothing had failed.
    budget.store(usize::MAX, Ordering::SeqCst);
    let r = handle(&via_proxy, &batch).await.unwrap();
    assert!(failures(&r).is_empty());
    let snap = direct.snapshot().await.unwrap();
    assert_eq!(snap.orders.len(), 300);
    assert_eq!((snap.items[&item("z3333")].quantity, snap.items[&item("z3333")].orders), (1800, 300));
    direct.close().await;
    via_proxy.close().await;
}
