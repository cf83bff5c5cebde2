//! The embedded engine against real lakes (a directory, and a bucket on moto), each query in a real worker process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adhoc::engine::{Download, Engine, EngineError, Execution, State};
use adhoc_embedded::worker::WorkerCommand;
use adhoc_embedded::{EmbeddedEngine, EmbeddedSettings};
use domain::OrderStatus;
use domain::testkit::{History, Rng};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn worker() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_adhoc-worker"), &[])
}

async fn engine_over(
    changes_in_batches: Vec<Vec<domain::OrderChange>>,
    settings: EmbeddedSettings,
) -> (tempfile::TempDir, EmbeddedEngine) {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake::Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    for batch in changes_in_batches {
        lake.write(&batch).await.unwrap();
    }
    let engine = EmbeddedEngine::new(lake, dir.path().join("results"), settings, worker()).unwrap();
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
    // planning, and a query that ends in the same poll as its limit passes is not stopped (with COUNT(*) this test
    // once failed under load).
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
        EmbeddedEngine::new(engine.lake().clone(), dir.path().join("results"), EmbeddedSettings::default(), worker())
            .unwrap();
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
        let parquet = table_file_sizes(engine.lake()).await;
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

/// moto's address (`./scripts/test` starts one), or a panic saying how to start it.
fn moto() -> String {
    std::env::var("MOTO_ENDPOINT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        panic!(
            "MOTO_ENDPOINT is not set: run ./scripts/test (it starts moto), or start `moto_server -H 127.0.0.1 -p \
             5000` and set MOTO_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

#[tokio::test]
async fn given_a_lake_in_a_bucket_then_the_engine_reads_it_through_the_bucket_and_counts_what_it_read() {
    // Given the same history in a local lake and in a lake in a bucket on moto
    let endpoint = moto();
    let bucket = format!("lake-{}", uuid_like());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await;
    assert!(created.is_ok_and(|r| r.status().is_success()), "moto at {endpoint} did not create bucket {bucket}");
    let mut rng = Rng::new(6);
    let history = History::random(&mut rng, 20, 120);
    let (_dir, local) = engine_over(vec![history.changes.clone()], EmbeddedSettings::default()).await;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("eu-west-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let url = format!("s3://{bucket}/orders/lake");
    let in_bucket = lake::Lake::with_store(Arc::new(store), "orders/lake".into(), url);
    in_bucket.write(&history.changes).await.unwrap();
    let results = tempfile::tempdir().unwrap();
    let worker = worker()
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    let remote =
        EmbeddedEngine::new(in_bucket, results.path().to_path_buf(), EmbeddedSettings::default(), worker).unwrap();

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

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

/// The processes whose parent is this one and whose environment holds `marker` (tests run side by side).
fn children(marker: &str) -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...: the command may hold spaces and parentheses, so split after the last ')'.
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).is_some_and(|p| p == me)
            })
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .collect()
}

const SLOW: &str = "SELECT length(regexp_replace(repeat('ab', 120000000), '(a|b)', 'xyz', 'g'))";

#[tokio::test]
async fn given_a_query_that_computes_inside_one_function_then_its_time_limit_ends_it_within_a_second() {
    // Given a 2 s limit and a query that spends its time inside one scalar function call, where DataFusion
    // never looks at a cancellation
    let settings = EmbeddedSettings { timeout: Duration::from_secs(2), ..Default::default() };
    let (_dir, engine) = engine_over(vec![], settings).await;

    // When it runs
    let started = Instant::now();
    let end = run(&engine, SLOW).await;

    // Then it fails at its limit, not when the function returns
    let took = started.elapsed();
    assert_eq!(end.state, State::Failed, "{end:?}");
    assert_eq!(end.failure.as_deref(), Some("the query reached its time limit of 2 s"));
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[tokio::test]
async fn given_a_running_query_when_it_is_cancelled_then_its_work_stops_not_just_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake::Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    let marker = "ENGINE_TEST=cancel";
    let worker = worker().env("ENGINE_TEST", "cancel");
    let engine = EmbeddedEngine::new(lake, dir.path().join("results"), EmbeddedSettings::default(), worker).unwrap();
    let id = engine.start(SLOW).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.status(&id).await.unwrap().state != State::Running || children(marker).is_empty() {
        assert!(Instant::now() < deadline, "the query's worker never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    engine.cancel(&id).await.unwrap();

    assert_eq!(engine.status(&id).await.unwrap().state, State::Cancelled);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !children(marker).is_empty() {
        assert!(Instant::now() < deadline, "the worker {:?} still runs after the cancel", children(marker));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn given_functions_that_build_huge_values_then_the_query_fails_at_its_memory_limit() {
    // Given a 64 MB limit
    let settings = EmbeddedSettings { memory_limit: 64 << 20, ..Default::default() };
    let (_dir, engine) = engine_over(vec![], settings).await;
    for sql in [
        "SELECT length(repeat('x', 1000000000))",
        "SELECT length(lpad('x', 2147483647))",
        "SELECT length(repeat(repeat('ab', 50000), 10000))",
    ] {
        // When a function builds a value larger than the process may hold
        let started = Instant::now();
        let end = run(&engine, sql).await;

        // Then the query fails naming the limit, quickly, and the engine goes on
        assert_eq!(end.state, State::Failed, "{sql}: {end:?}");
        assert_eq!(
            end.failure.as_deref(),
            Some("the query needed more memory than its limit of 64 MB (QUERY_MEMORY_MB)"),
            "{sql}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{sql} took {:?}", started.elapsed());
    }
    assert_eq!(rows(&engine, "SELECT 1 + 1 AS two").await, vec![vec![json!(2)]]);
}

/// `n` copies of `item` joined by `sep`.
fn chain(item: &str, sep: &str, n: usize) -> String {
    vec![item; n].join(sep)
}

#[tokio::test]
async fn given_the_deepest_statements_the_guard_passes_then_the_engine_runs_them_with_room_to_spare() {
    // Given each chain at four times the guard's limit (the engine is reached here without the guard)
    let (_dir, engine) = engine_over(vec![], EmbeddedSettings::default()).await;
    let limits = adhoc::guard::Limits::DEFAULT;
    let mut ctes = String::from("WITH c1 AS (SELECT 1 AS x)");
    for i in 2..=4 * limits.ctes {
        ctes.push_str(&format!(", c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1));
    }
    ctes.push_str(&format!(" SELECT x FROM c{}", 4 * limits.ctes));
    let cases = [
        (format!("SELECT {} AS n", chain("1", "+", 4 * limits.expression_depth)), json!(4 * limits.expression_depth)),
        (
            format!(
                "SELECT COUNT(*) AS n FROM ({}) AS u",
                chain("SELECT 1 AS x", " UNION ALL ", 4 * limits.set_operands)
            ),
            json!(4 * limits.set_operands),
        ),
        (ctes, json!(4 * limits.ctes)),
    ];
    for (sql, expected) in cases {
        // When it runs, then it answers
        assert_eq!(rows(&engine, &sql).await, vec![vec![expected]], "{}", &sql[..60]);
    }
}

#[tokio::test]
async fn given_a_statement_that_overflows_the_engines_stack_then_only_its_query_fails() {
    // Given a chain far past the guard's limit, sent to the engine directly
    let (_dir, engine) = engine_over(vec![], EmbeddedSettings::default()).await;
    let sql = format!("SELECT {}", chain("1", "+", 30_000));

    // When it runs, then it fails, naming why
    let end = run(&engine, &sql).await;
    assert_eq!(end.state, State::Failed);
    assert_eq!(end.failure.as_deref(), Some("the query is too deep for the engine (it ran out of stack); simplify it"));

    // and the engine answers the next query
    assert_eq!(rows(&engine, "SELECT 2 AS two").await, vec![vec![json!(2)]]);
}
