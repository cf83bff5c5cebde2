//! Switching to a rebuilt read model with nothing lost: commands go on while `orders rebuild` reads its snapshot,
//! then the feed continues into the new model from exactly the point the snapshot reflects, and the new model
//! equals a recomputation from the final write model. On every backend from the embedded store; through the real
//! binary from the running system to a PostgreSQL model; from DynamoDB (moto) by a parallel Scan and the stream
//! poller. And an interrupted rebuild is marked unfinished: the runner refuses it, a rerun starts it clean.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::testkit::Rng;
use domain::{OrderCommand, OrderDraft, OrderId};
use read_model::{ReadModel, SnapshotPosition, Target};
use support::load::{self, Ledger};
use support::{command, dynamodb_env, interrupt, start};
use test_support::databases::{ALL, Backend, assert_equals_orders, fresh, long_lines};
use write_store::OrderStore;
use write_store::dynamodb::DynamoDbStore;
use write_store::embedded::{EmbeddedOptions, EmbeddedStore, SOURCE};

/// One random accepted-or-refused command on one of `ids` orders (create, amend, cancel or delete).
async fn random_command(store: &dyn OrderStore, rng: &mut Rng, ids: u64) {
    let id = OrderId::parse(&format!("o{}", rng.below(ids))).unwrap();
    let first_day = Utc.with_ymd_and_hms(2021, 11, 1, 0, 0, 0).unwrap();
    let now = Utc::now();
    let _ = match store.get(&id).await.unwrap() {
        None => {
            let order_date = Some(first_day + chrono::Duration::hours(rng.below(480 * 24) as i64));
            store.create(OrderDraft { order_id: id, lines: long_lines(rng, 8), order_date }, now).await.map(|_| ())
        }
        Some(order) => {
            let command = match rng.below(10) {
                0..=4 => OrderCommand::Amend { lines: long_lines(rng, 8), expected: order.version },
                5..=7 => OrderCommand::Cancel { expected: None },
                _ => OrderCommand::Delete { expected: None },
            };
            store.execute(&id, command, now).await.map(|_| ())
        }
    };
}

/// Applies the embedded change log after `after` to `model` until it has nothing more.
async fn catch_up(model: &ReadModel, store: &EmbeddedStore, mut after: u64) {
    loop {
        let batch = store.changes_after(after, 50).await.unwrap();
        let Some(last) = batch.last() else { return };
        after = last.position().sequence.as_str().parse().unwrap();
        model.apply(&batch).await.unwrap();
    }
}

async fn commands_during_a_rebuild(backend: Backend) {
    for seed in 0..4 {
        // Given a store with a history, and a fresh read model
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("orders.db"), EmbeddedOptions::default()).unwrap());
        let mut rng = Rng::new(500 + seed);
        for _ in 0..300 {
            random_command(store.as_ref(), &mut rng, 80).await;
        }
        let db = fresh(backend).await;

        // When commands go on while the rebuild reads its snapshot and loads it, a few orders at a time
        let stop = Arc::new(AtomicBool::new(false));
        let during = Arc::new(AtomicU64::new(0));
        let writer = {
            let (store, stop, during) = (store.clone(), stop.clone(), during.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(900 + seed);
                while !stop.load(Ordering::Relaxed) {
                    random_command(store.as_ref(), &mut rng, 100).await;
                    during.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let mut snapshot = store.snapshot_stream(3).await.unwrap();
        let head = snapshot.head;
        let mut rebuild = db.model.start_rebuild(SOURCE).await.unwrap();
        while let Some(chunk) = snapshot.next().await {
            rebuild.load(chunk.unwrap()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let position = SnapshotPosition {
            source: SOURCE.into(),
            sequence: domain::change::Sequence::from(head.position),
            changed_at: head.changed_at.unwrap(),
        };
        rebuild.finish(&[position]).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        assert!(during.load(Ordering::Relaxed) > 10, "{backend:?}: too few commands ran during the rebuild");

        // Then the model, caught up from the snapshot's position, equals a recomputation from the final write model
        catch_up(&db.model, &store, head.position).await;
        let (orders, _) = store.snapshot().await.unwrap();
        assert_equals_orders(&db.model, orders.iter(), &format!("{backend:?} seed {seed}")).await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_commands_during_a_rebuild_on_every_backend_then_the_model_caught_up_from_its_snapshot_equals_the_write_model()
 {
    for backend in ALL {
        commands_during_a_rebuild(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_running_system_taking_writes_when_rebuilt_into_postgres_then_the_runner_there_continues_with_nothing_lost()
 {
    // Given the system running on embedded parts, with four clients writing
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| tokio::spawn(load::client(running.url.clone(), format!("c{c}"), c, stop.clone(), Ledger::new())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // When `orders rebuild` fills a fresh PostgreSQL database meanwhile, and the writes go on after it
    let target = fresh(Backend::Postgres).await;
    let out = command(cwd.path(), &[("READ_MODEL_URL", &target.url)]).arg("rebuild").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("rebuilt the read model from "), "{summary}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ledger = Ledger::new();
    for c in clients {
        ledger.extend(c.await.unwrap());
    }
    let rebuilt_at = target.model.position(SOURCE).await.unwrap().expect("the snapshot's position").0;
    interrupt(running);

    // Then the runner pointed at the new database continues from the rebuilt position: every acknowledged write,
    // those made during and after the rebuild too, is there once, and the reports equal a recomputation
    let running = start(cwd.path(), &[("READ_MODEL_URL", &target.url)]);
    load::await_caught_up(&running.query_url, Duration::from_secs(30)).await;
    let checked = load::assert_nothing_acknowledged_was_lost(&running.url, &ledger).await;
    assert!(checked > 50, "only {checked} acknowledged orders");
    interrupt(running);
    let orders = load::write_model(&cwd.path().join("data")).await;
    let head: u64 = target.model.position(SOURCE).await.unwrap().unwrap().0.as_str().parse().unwrap();
    assert!(head > rebuilt_at.as_str().parse::<u64>().unwrap(), "writes after the snapshot were projected");
    assert_equals_orders(&target.model, orders.iter(), "rebuilt, then caught up").await;
    target.drop_database().await;
}

#[tokio::test]
async fn given_an_unfinished_rebuild_then_the_runner_refuses_it_and_a_rerun_says_so_and_starts_clean() {
    // Given a store with orders, and a read model a rebuild began and never finished
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = EmbeddedStore::open(&data.join("orders.db"), EmbeddedOptions::default()).unwrap();
    let mut rng = Rng::new(3);
    for _ in 0..50 {
        random_command(&store, &mut rng, 30).await;
    }
    let (orders, _) = store.snapshot().await.unwrap();
    drop(store);
    let target = fresh(Backend::MariaDb).await;
    {
        let mut rebuild = target.model.start_rebuild(SOURCE).await.unwrap();
        rebuild.load(orders[..orders.len() / 2].to_vec()).await.unwrap();
    }
    assert!(matches!(target.model.rebuild_target().await.unwrap(), Target::Unfinished { .. }));

    // When the runner is pointed at it, then it refuses to start, saying why and what to do
    let out = command(cwd.path(), &[("READ_MODEL_URL", &target.url)]).output().unwrap();
    assert!(!out.status.success(), "the runner served an unfinished rebuild");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("did not finish") && said.contains("orders rebuild"), "{said}");

    // When the rebuild is run again, then it says it starts clean, and the model holds the write model
    let out = command(cwd.path(), &[("READ_MODEL_URL", &target.url)]).arg("rebuild").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unfinished rebuild"), "the rerun says so");
    assert_equals_orders(&target.model, orders.iter(), "rerun").await;
    target.drop_database().await;
}

/// Orders enough that a rebuild into PostgreSQL takes seconds.
const ORDERS: usize = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_rebuild_interrupted_with_ctrl_c_then_it_stops_at_once_and_leaves_the_target_marked_unfinished() {
    // Given a store of many orders
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Arc::new(EmbeddedStore::open(&data.join("orders.db"), EmbeddedOptions::default()).unwrap());
    let mut rng = Rng::new(4);
    for thousand in 0..ORDERS / 1_000 {
        let mut creates = tokio::task::JoinSet::new();
        for n in 0..1_000 {
            let id = OrderId::parse(&format!("o{}", thousand * 1_000 + n)).unwrap();
            let draft = OrderDraft { order_id: id, lines: long_lines(&mut rng, 50), order_date: None };
            let store = store.clone();
            creates.spawn(async move { store.create(draft, Utc::now()).await.map(|_| ()) });
        }
        for created in creates.join_all().await {
            created.unwrap();
        }
    }
    drop(store);
    let target = fresh(Backend::Postgres).await;

    // When a rebuild into PostgreSQL gets SIGINT as soon as it has begun
    let child = command(cwd.path(), &[("READ_MODEL_URL", &target.url)])
        .arg("rebuild")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // (once it has marked the target, that is once it has started writing)
    let marked = std::time::Instant::now();
    while !matches!(target.model.rebuild_target().await.unwrap(), Target::Unfinished { .. }) {
        assert!(marked.elapsed() < Duration::from_secs(30), "the rebuild never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();

    // Then it stops within seconds, fails, says the target is marked unfinished, and the target says so too
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?} to stop", started.elapsed());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the rebuild finished before the interrupt; stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(said.contains("marked unfinished"), "{said}");
    assert!(matches!(target.model.rebuild_target().await.unwrap(), Target::Unfinished { .. }));
    target.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_dynamodb_when_writes_land_during_a_parallel_scan_rebuild_then_the_stream_poller_brings_each_in_once() {
    // Given an orders table with a stream, on moto, holding a history
    let endpoint = test_support::moto::endpoint();
    let config = test_support::moto::sdk_config().await;
    let client = write_store::dynamodb::client(&config);
    let table = test_support::moto::unique_name("rebuild");
    DynamoDbStore::create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoDbStore::new(client, table.clone()));
    let mut rng = Rng::new(6);
    for _ in 0..300 {
        random_command(store.as_ref(), &mut rng, 150).await;
    }

    // When writes go on while `orders rebuild` reads the table by a parallel Scan into a fresh MariaDB model
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, during) = (store.clone(), stop.clone(), during.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(60);
            while !stop.load(Ordering::Relaxed) {
                random_command(store.as_ref(), &mut rng, 200).await;
                during.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let target = fresh(Backend::MariaDb).await;
    let cwd = tempfile::tempdir().unwrap();
    let mut env = dynamodb_env(&table, &endpoint);
    env.push(("READ_MODEL_URL", &target.url));
    let mut rebuild = command(cwd.path(), &env);
    rebuild.args(["rebuild", "--scan-segments", "8"]);
    let out = tokio::task::spawn_blocking(move || rebuild.output()).await.unwrap().unwrap();
    let written_during = during.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(written_during > 0, "no command ran during the rebuild");

    // Then the stream poller, from the oldest record the stream holds (before the scan began), brings in what the
    // scan did not see, and the version guard keeps what it did from counting twice: the model equals the table
    let out = command(cwd.path(), &env).args(["project", "--source", "dynamodb", "--once"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut orders = Vec::new();
    let mut start = None;
    loop {
        let (page, next) = store.scan_page(start, None).await.unwrap();
        orders.extend(page);
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    assert_equals_orders(&target.model, orders.iter(), "scanned, then caught up from the stream").await;
    target.drop_database().await;
}
