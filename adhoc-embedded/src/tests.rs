use std::collections::BTreeMap;

use domain::OrderStatus;
use domain::testkit::{History, Rng};
use serde_json::json;

use super::*;

async fn engine_over(
    changes_in_batches: Vec<Vec<domain::OrderChange>>,
    settings: EmbeddedSettings,
) -> (tempfile::TempDir, EmbeddedEngine) {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake::Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    for batch in changes_in_batches {
        lake.write(&batch).await.unwrap();
    }
    let engine = EmbeddedEngine::new(lake, dir.path().join("results"), settings).unwrap();
    (dir, engine)
}

async fn run(engine: &EmbeddedEngine, sql: &str) -> Execution {
    let id = engine.start(sql).await.unwrap();
    engine.wait(&id).await.unwrap()
}

async fn rows(engine: &EmbeddedEngine, sql: &str) -> Vec<Vec<Value>> {
    let id = engine.start(sql).await.unwrap();
    let end = engine.wait(&id).await.unwrap();
    assert_eq!(end.state, State::Succeeded, "{sql}: {:?}", end.failure);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = engine.results(&id, token.as_deref(), 7).await.unwrap();
        out.extend(page.rows);
        match page.next {
            Some(next) => token = Some(next),
            None => return out,
        }
    }
}

#[tokio::test]
async fn given_any_delivery_of_a_history_then_order_lines_current_is_exactly_the_final_live_orders() {
    for seed in [1, 2, 3] {
        // Given: random creates, amends, cancels and removals (ids reused after removal), delivered at least
        // once in batches with duplicates, partial deliveries and replays.
        let mut rng = Rng::new(seed);
        let history = History::random(&mut rng, 25, 300);
        let (_dir, engine) = engine_over(history.batches(&mut rng), EmbeddedSettings::default()).await;

        // When
        let got = rows(
            &engine,
            "SELECT orderid, itemid, quantity, CAST(unitprice AS VARCHAR), version FROM order_lines_current \
             ORDER BY orderid, itemid",
        )
        .await;

        // Then
        let mut expected = BTreeMap::new();
        for order in history.final_orders().filter(|o| o.status != OrderStatus::Cancelled) {
            for line in order.items.as_slice() {
                let price = line.unit_price.map(|p| {
                    let mut d = p.get();
                    d.rescale(4);
                    d.to_string()
                });
                expected.insert(
                    (order.order_id.as_str().to_owned(), line.itemid.as_str().to_owned()),
                    vec![
                        json!(order.order_id.as_str()),
                        json!(line.itemid.as_str()),
                        json!(line.quantity.get()),
                        json!(price),
                        json!(order.version.get()),
                    ],
                );
            }
        }
        assert!(!expected.is_empty());
        assert_eq!(got, expected.into_values().collect::<Vec<_>>(), "seed {seed}");
    }
}

#[tokio::test]
async fn given_statements_that_are_not_queries_then_datafusion_itself_refuses_them() {
    // The guard stops these first; this is the engine's own line of defence, reached here without the guard.
    let (dir, engine) = engine_over(vec![], EmbeddedSettings::default()).await;
    let outside = dir.path().join("written-by-a-query.csv");
    for sql in [
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'".to_owned(),
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", outside.display()),
        "INSERT INTO order_lines SELECT * FROM order_lines".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "SELECT * FROM '/etc/passwd'".to_owned(),
        "SELECT * FROM information_schema.tables".to_owned(),
    ] {
        let end = run(&engine, &sql).await;
        assert_eq!(end.state, State::Failed, "{sql} ran");
        assert!(end.failure.is_some(), "{sql}: a failure names its reason");
    }
    assert!(!outside.exists(), "COPY wrote a file");
}

#[tokio::test]
async fn given_a_time_limit_when_a_query_runs_longer_then_it_fails_naming_the_limit() {
    let mut rng = Rng::new(9);
    let history = History::random(&mut rng, 50, 400);
    let settings = EmbeddedSettings { timeout: Duration::from_nanos(1), ..Default::default() };
    let (_dir, engine) = engine_over(vec![history.changes.clone()], settings).await;

    // A sum over the rows themselves: COUNT(*) of a cross join can be answered from the files' statistics while
    // planning, and a query that ends in the same poll as its limit passes is not stopped. That query failed this
    // test once in this session's runs, under load.
    let end = run(
        &engine,
        "SELECT SUM(a.quantity * b.quantity * c.quantity) FROM order_lines a CROSS JOIN order_lines b \
         CROSS JOIN order_lines c",
    )
    .await;

    assert_eq!(end.state, State::Failed);
    assert!(end.failure.as_deref().unwrap_or_default().contains("time limit"), "{:?}", end.failure);
}

#[tokio::test]
async fn given_a_finished_query_then_its_results_are_typed_paged_and_downloadable_after_a_restart() {
    let mut rng = Rng::new(4);
    let history = History::random(&mut rng, 30, 200);
    let (dir, engine) = engine_over(vec![history.changes.clone()], EmbeddedSettings::default()).await;
    let id = engine
        .start(
            "SELECT itemid, SUM(quantity) AS total, SUM(quantity * unitprice) AS revenue, COUNT(*) > 0 AS any \
                           FROM order_lines GROUP BY itemid ORDER BY itemid",
        )
        .await
        .unwrap();
    assert_eq!(engine.wait(&id).await.unwrap().state, State::Succeeded);

    // A new engine over the same directories: as after a restart of the local process.
    let again =
        EmbeddedEngine::new(engine.lake.clone(), dir.path().join("results"), EmbeddedSettings::default()).unwrap();
    let page = again.results(&id, None, 2).await.unwrap();
    let kinds: Vec<&str> = page.columns.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["varchar", "bigint", "decimal(38,4)", "boolean"]);
    assert_eq!(page.rows.len(), 2);
    assert!(
        page.rows[0][1].is_u64() && page.rows[0][2].is_string() && page.rows[0][3].is_boolean(),
        "{:?}",
        page.rows[0]
    );
    assert_eq!(page.next.as_deref(), Some("2"));
    assert!(matches!(again.results(&id, Some("x"), 2).await, Err(EngineError::BadToken)));
    assert!(matches!(again.results(&id, Some("999"), 2).await, Err(EngineError::BadToken)));
    assert!(matches!(again.status("not-a-uuid").await, Err(EngineError::NotFound)));
    let Download::Csv(body) = again.download(&id, Duration::from_secs(60)).await.unwrap() else { panic!("a stream") };
    let csv = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let text = String::from_utf8(csv.to_vec()).unwrap();
    assert!(text.starts_with("itemid,total,revenue,any\n"), "{text}");
    let all = again.results(&id, None, 1_000).await.unwrap().rows;
    assert_eq!(text.lines().count(), 1 + all.len(), "a header and one line per row: {text}");
    let first_cells: Vec<String> = text.lines().skip(1).map(|l| l.split(',').next().unwrap().to_owned()).collect();
    let paged: Vec<String> = all.iter().map(|r| r[0].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(first_cells, paged);
}

#[tokio::test]
async fn given_a_finished_query_when_it_is_forgotten_then_its_result_and_state_are_gone_and_it_is_unknown() {
    let (_dir, engine) = engine_over(vec![], EmbeddedSettings::default()).await;
    let id = engine.start("SELECT 1 AS one").await.unwrap();
    assert_eq!(engine.wait(&id).await.unwrap().state, State::Succeeded);
    assert!(engine.results(&id, None, 10).await.is_ok());

    engine.forget(&id).unwrap();
    engine.forget(&id).expect("forgetting twice is harmless");
    assert!(matches!(engine.status(&id).await, Err(EngineError::NotFound)), "{:?}", engine.status(&id).await);
    assert!(matches!(engine.forget("../../etc/passwd"), Err(EngineError::NotFound)), "only query ids name files");
}

/// The sizes of the lake's table files, as its store lists them.
async fn table_file_sizes(lake: &lake::Lake) -> Vec<u64> {
    lake.store().list(Some(&lake.table_path())).map(|meta| meta.unwrap().size).collect().await
}

#[tokio::test]
async fn given_a_query_over_the_lake_then_its_bytes_scanned_count_what_it_read_from_the_files_footers_included() {
    for (orders, changes) in [(1, 1), (30, 200)] {
        // Given a lake of one order (one small file) and one of many files
        let mut rng = Rng::new(5);
        let history = History::random(&mut rng, orders, changes);
        let (_dir, engine) = engine_over(history.batches(&mut rng), EmbeddedSettings::default()).await;
        let parquet = table_file_sizes(&engine.lake).await;
        let lake_bytes: u64 = parquet.iter().sum();

        // When a question reads the lines, and one reads them through the view (which reads the lake twice)
        let table = run(&engine, "SELECT itemid, SUM(quantity) FROM order_lines GROUP BY itemid").await;
        let view = run(&engine, "SELECT itemid, SUM(quantity) FROM order_lines_current GROUP BY itemid").await;

        // Then what each read is counted: files this small are read whole with their footer, and a pass reads a
        // file's data pages at most once more. The view's second pass skips what the first leaves it (footers
        // already cached, files the join's dynamic filter rules out), as much as it gets to before opening each
        // file: the view reads at least one pass and at most two, and the same query can count differently.
        assert_eq!((table.state, view.state), (State::Succeeded, State::Succeeded), "{:?}", view.failure);
        let (once, twice) = (table.bytes_scanned.unwrap_or(0), view.bytes_scanned.unwrap_or(0));
        let files = parquet.len();
        assert!(once >= lake_bytes && once <= 2 * lake_bytes, "{once} of {lake_bytes} bytes in {files} files");
        assert!(twice >= lake_bytes && twice <= 4 * lake_bytes, "{twice} of {lake_bytes} through the view");
        assert!(view.run_time_ms.is_some());
    }
}

#[tokio::test]
async fn given_a_lake_in_a_bucket_then_the_engine_reads_it_through_the_bucket_and_counts_what_it_read() {
    // Given the same history in a local lake and in an "s3://" lake (an in-memory store in the bucket's place)
    let mut rng = Rng::new(6);
    let history = History::random(&mut rng, 20, 120);
    let (_dir, local) = engine_over(vec![history.changes.clone()], EmbeddedSettings::default()).await;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let bucket = lake::Lake::with_store(store, "orders/lake".into(), "s3://test-bucket/orders/lake".into());
    bucket.write(&history.changes).await.unwrap();
    let results = tempfile::tempdir().unwrap();
    let remote = EmbeddedEngine::new(bucket, results.path().to_path_buf(), EmbeddedSettings::default()).unwrap();

    // When the same question is asked of both
    let sql = "SELECT itemid, SUM(quantity), COUNT(*) FROM order_lines_current GROUP BY itemid ORDER BY itemid";
    let id = remote.start(sql).await.unwrap();
    let end = remote.wait(&id).await.unwrap();

    // Then the bucket's answer is the local one, and what it read is counted
    assert_eq!(end.state, State::Succeeded, "{:?}", end.failure);
    assert!(end.bytes_scanned.is_some_and(|n| n > 0), "{end:?}");
    let got = remote.results(&id, None, 1_000).await.unwrap().rows;
    assert!(!got.is_empty());
    assert_eq!(got, rows(&local, sql).await);
}
