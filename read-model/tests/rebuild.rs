//! The bulk rebuild on PostgreSQL, MariaDB and SQLite: from random histories' final write models it builds, row for
//! row, what the incremental projector builds from their changes; it leaves the schema the migrations made; and an
//! interrupted rebuild is marked unfinished and starts clean when run again. `REBUILD_CASES` sets how many
//! histories per backend (default 40). PostgreSQL and MariaDB must be running (see read_model.rs).

use domain::testkit::{History, Rng};
use domain::{Order, OrderChange};
use read_model::{ReadModel, SnapshotPosition, Target};
use sqlx::Row;
use test_support::databases::*;

fn cases() -> u64 {
    std::env::var("REBUILD_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(40)
}

fn position_of(last: &OrderChange) -> SnapshotPosition {
    SnapshotPosition {
        source: last.position().source.clone(),
        sequence: last.position().sequence.clone(),
        changed_at: last.changed_at(),
    }
}

/// Rebuilds `model` from `orders`, loaded in chunks of random sizes.
async fn rebuild(model: &ReadModel, orders: &[Order], position: Option<SnapshotPosition>, rng: &mut Rng) {
    let mut rebuild = model.start_rebuild("test").await.unwrap();
    let mut rest = orders;
    while !rest.is_empty() {
        let n = (1 + rng.below(rest.len() as u64) as usize).min(rest.len());
        rebuild.load(rest[..n].to_vec()).await.unwrap();
        rest = &rest[n..];
    }
    let rebuilt = rebuild.finish(&position.into_iter().collect::<Vec<_>>()).await.unwrap();
    assert_eq!(rebuilt.orders, orders.len() as u64);
    assert_eq!(rebuilt.lines, orders.iter().map(|o| o.items.as_slice().len() as u64).sum::<u64>());
}

async fn agrees_with_incremental(backend: Backend) {
    // Given two fresh read models of one backend
    let (incremental, bulk) = (fresh(backend).await, fresh(backend).await);
    for seed in 0..cases() {
        // and a random history (create / amend / cancel / delete, priced and unpriced lines, many months)
        let mut rng = Rng::new(1_000 + seed);
        let (orders, steps) = (2 + rng.below(40) as usize, 10 + rng.below(300) as usize);
        let history = History::random(&mut rng, orders, steps);
        // When one model applies its changes as the projector does, and the other is rebuilt from its final state
        incremental.model.clear().await.unwrap();
        for batch in history.batches(&mut rng) {
            incremental.model.apply(&batch).await.unwrap();
        }
        bulk.model.clear().await.unwrap();
        let orders: Vec<Order> = history.final_orders().cloned().collect();
        rebuild(&bulk.model, &orders, history.changes.last().map(position_of), &mut rng).await;

        // Then every row of every table is the same, but the tombstones: a snapshot holds no deleted orders
        let what = format!("{backend:?} seed {seed}");
        let mut expected = incremental.model.snapshot().await.unwrap();
        let got = bulk.model.snapshot().await.unwrap();
        assert!(got.tombstones.is_empty(), "{what}: a rebuild writes no tombstones");
        expected.tombstones.clear();
        assert_eq!(got, expected, "{what}");
        assert_equals_recomputation(&bulk.model, &history, &what).await;
        assert_eq!(bulk.model.rebuild_target().await.unwrap(), Target::Projected, "{what}");
    }
    incremental.drop_database().await;
    bulk.drop_database().await;
}

#[tokio::test]
async fn given_random_histories_on_postgres_then_a_bulk_rebuild_equals_the_incremental_model_row_for_row() {
    agrees_with_incremental(Backend::Postgres).await;
}

#[tokio::test]
async fn given_random_histories_on_mariadb_then_a_bulk_rebuild_equals_the_incremental_model_row_for_row() {
    agrees_with_incremental(Backend::MariaDb).await;
}

#[tokio::test]
async fn given_random_histories_on_sqlite_then_a_bulk_rebuild_equals_the_incremental_model_row_for_row() {
    agrees_with_incremental(Backend::Sqlite).await;
}

/// The keys, indexes and constraints of the projection's tables, as the database describes them.
async fn schema(db: &Fresh) -> Vec<String> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let sql = match db.model.dialect() {
        read_model::Dialect::Postgres => {
            "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
             UNION ALL SELECT conrelid::regclass::text || '.' || conname || ': ' || pg_get_constraintdef(oid) \
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1"
        }
        read_model::Dialect::MySql => {
            "SELECT CONCAT(table_name, '.', index_name, ': ', non_unique, ' ', seq_in_index, ' ', column_name) \
             FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY 1"
        }
        read_model::Dialect::Sqlite => {
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master ORDER BY 1"
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect()
}

async fn interrupted_then_again(backend: Backend) {
    // Given a read model as the migrations make it
    let db = fresh(backend).await;
    let migrated = schema(&db).await;
    assert!(migrated.iter().any(|s| s.contains("orderitems_itemid")), "{backend:?}: {migrated:?}");
    let mut rng = Rng::new(77);
    let history = History::random(&mut rng, 30, 200);
    let orders: Vec<Order> = history.final_orders().cloned().collect();

    // When a rebuild loads part of the orders and is dropped before it finishes (Ctrl-C, a lost connection)
    {
        let mut rebuild = db.model.start_rebuild("embedded").await.unwrap();
        rebuild.load(orders[..orders.len() / 2].to_vec()).await.unwrap();
    }
    // Then the model says it is unfinished, never that it is empty or finished
    match db.model.rebuild_target().await.unwrap() {
        Target::Unfinished { source, .. } => assert_eq!(source, "embedded"),
        other => panic!("{backend:?}: an interrupted rebuild reads as {other:?}"),
    }
    // And a rebuild run again starts it clean and leaves exactly the migrations' schema
    rebuild(&db.model, &orders, history.changes.last().map(position_of), &mut rng).await;
    assert_equals_recomputation(&db.model, &history, &format!("{backend:?} rebuilt again")).await;
    assert_eq!(schema(&db).await, migrated, "{backend:?}: keys, indexes and constraints");
    // And a finished model is never rebuilt over
    assert!(db.model.start_rebuild("embedded").await.is_err(), "{backend:?}: a rebuild wrote over a projection");
    db.drop_database().await;
}

#[tokio::test]
async fn given_an_interrupted_rebuild_on_postgres_then_it_is_marked_unfinished_and_a_rerun_starts_clean() {
    interrupted_then_again(Backend::Postgres).await;
}

#[tokio::test]
async fn given_an_interrupted_rebuild_on_mariadb_then_it_is_marked_unfinished_and_a_rerun_starts_clean() {
    interrupted_then_again(Backend::MariaDb).await;
}

#[tokio::test]
async fn given_an_interrupted_rebuild_on_sqlite_then_it_is_marked_unfinished_and_a_rerun_starts_clean() {
    interrupted_then_again(Backend::Sqlite).await;
}
