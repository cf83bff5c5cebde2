//! The read model on PostgreSQL, MariaDB and SQLite, one suite for all three, each test in a fresh database.
//! PostgreSQL and MariaDB must be running (127.0.0.1:5432 trust auth, 127.0.0.1:3306 root without password, or
//! TEST_POSTGRES_URL / TEST_MYSQL_URL); a test that cannot reach them fails and says so.

use domain::projection::Totals;
use domain::testkit::{History, Rng, at, order};
use domain::{ChangeKind, ItemId, Lines, Order, OrderChange};
use read_model::{Dialect, ReadModel};
use sqlx::Executor;

use test_support::databases::*;

fn change(kind: ChangeKind, before: Option<&Order>, after: Option<&Order>, seq: u64) -> OrderChange {
    domain::testkit::change(kind, before, after, "shard-1", seq)
}

fn item(s: &str) -> ItemId {
    ItemId::parse(s).unwrap()
}

#[tokio::test]
async fn given_the_samples_example_when_projected_then_orders_lines_and_aggregates_hold_it_on_every_backend() {
    for backend in ALL {
        let db = fresh(backend).await;
        let o1 = order(
            r#"{"orderId":"6119","orderDate":"2022-10-13T09:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"},{"itemid":"z4444","quantity":3}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let o2 = order(
            r#"{"orderId":"6120","orderDate":"2022-11-02T00:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"0.0001"}]}"#,
            "2026-11-21T09:00:01Z",
        );
        let applied = db
            .model
            .apply(&[change(ChangeKind::Insert, None, Some(&o1), 1), change(ChangeKind::Insert, None, Some(&o2), 2)])
            .await
            .unwrap();
        assert_eq!((applied.received, applied.applied), (2, 2), "{backend:?}");

        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(
            snap.orders.values().cloned().collect::<Vec<_>>(),
            vec![canonical(&o1), canonical(&o2)],
            "{backend:?}"
        );
        let z3 = &snap.items[&item("z3333")];
        assert_eq!(
            (z3.quantity, z3.revenue.to_string(), z3.priced_quantity, z3.orders),
            (12, "15.0006".to_owned(), 12, 2),
            "{backend:?}"
        );
        assert_eq!(z3.last_order_date, Some(at("2022-11-02T00:00:00Z")), "{backend:?}");
        let z4 = &snap.items[&item("z4444")];
        assert_eq!(
            (z4.quantity, z4.revenue.to_string(), z4.priced_quantity, z4.orders),
            (3, "0".to_owned(), 0, 1),
            "{backend:?}: no price known, so no units priced"
        );
        let months: Vec<(String, String, i64)> =
            snap.months.iter().map(|((i, m), q)| (i.to_string(), m.to_string(), *q)).collect();
        assert_eq!(
            months,
            [
                ("z3333".into(), "2022-10".into(), 6),
                ("z3333".into(), "2022-11".into(), 6),
                ("z4444".into(), "2022-10".into(), 3)
            ],
            "{backend:?}"
        );
        assert_eq!(snap.positions["shard-1"].0.as_str(), "2", "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_read_model_projected_before_priced_units_were_kept_when_migrated_then_they_are_filled_from_the_lines()
{
    for backend in ALL {
        let db = fresh(backend).await;
        let mut rng = Rng::new(7);
        let history = History::random(&mut rng, 12, 60);
        for batch in history.batches(&mut rng) {
            db.model.apply(&batch).await.unwrap();
        }
        let expected = db.model.snapshot().await.unwrap().items;
        assert!(expected.values().any(|t| t.priced_quantity > 0), "{backend:?}: some units are priced");
        assert!(expected.values().any(|t| t.priced_quantity < t.quantity), "{backend:?}: some are not");

        // Given the schema as migration 5 left it (no pricedordered column, migration 6 not recorded)
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        conn.execute("ALTER TABLE item_sales DROP COLUMN pricedordered").await.unwrap();
        conn.execute("DELETE FROM _sqlx_migrations WHERE version = 6").await.unwrap();
        drop(conn);

        // When migrated, then every item's priced units are what the projection itself keeps
        db.model.migrate().await.unwrap();
        assert_eq!(db.model.snapshot().await.unwrap().items, expected, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_projected_history_when_it_is_delivered_again_then_nothing_changes_but_a_newer_position_is_kept() {
    for backend in ALL {
        let db = fresh(backend).await;
        let v1 = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":2}]}"#, "2026-11-21T09:00:00Z");
        let mut v2 = v1.clone();
        v2.version = v1.version.next();
        v2.items = Lines::new(vec![domain::OrderLine {
            quantity: domain::Quantity::new(5).unwrap(),
            ..v1.items.as_slice()[0].clone()
        }])
        .unwrap();
        let history =
            [change(ChangeKind::Insert, None, Some(&v1), 1), change(ChangeKind::Modify, Some(&v1), Some(&v2), 2)];
        db.model.apply(&history).await.unwrap();
        let before = db.model.snapshot().await.unwrap();
        let again = db.model.apply(&history).await.unwrap();
        assert_eq!(again.applied, 0, "{backend:?}: duplicates are no-ops");
        let late = db.model.apply(&history[..1]).await.unwrap();
        assert_eq!(late.applied, 0, "{backend:?}");
        assert_eq!(
            db.model.snapshot().await.unwrap(),
            before,
            "{backend:?}: the read model and the position are unchanged"
        );
        assert_eq!(before.items[&item("x")].quantity, 5, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_a_removed_order_then_it_leaves_a_tombstone_that_late_changes_cannot_pass_but_a_new_order_can() {
    for backend in ALL {
        let db = fresh(backend).await;
        let v1 = order(
            r#"{"orderId":"a","orderDate":"2022-12-31T23:00:00Z","items":[{"itemid":"x","quantity":2}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let mut cancelled = v1.clone();
        cancelled.version = v1.version.next();
        cancelled.status = domain::OrderStatus::Cancelled;
        db.model.apply(&[change(ChangeKind::Insert, None, Some(&v1), 1)]).await.unwrap();
        db.model
            .apply(&[
                change(ChangeKind::Modify, Some(&v1), Some(&cancelled), 2),
                change(ChangeKind::Remove, Some(&cancelled), None, 3),
            ])
            .await
            .unwrap();
        let snap = db.model.snapshot().await.unwrap();
        assert!(snap.orders.is_empty() && snap.items.is_empty() && snap.months.is_empty(), "{backend:?}: {snap:?}");
        assert_eq!(snap.tombstones.len(), 1, "{backend:?}");

        let late = db.model.apply(&[change(ChangeKind::Insert, None, Some(&v1), 1)]).await.unwrap();
        assert_eq!(late.applied, 0, "{backend:?}: a late INSERT does not resurrect the order");

        let reborn = order(
            r#"{"orderId":"a","orderDate":"2023-01-01T00:30:00Z","items":[{"itemid":"y","quantity":1}]}"#,
            "2026-11-21T10:00:00Z",
        );
        assert_eq!(db.model.apply(&[change(ChangeKind::Insert, None, Some(&reborn), 4)]).await.unwrap().applied, 1);
        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(snap.orders.values().cloned().collect::<Vec<_>>(), vec![canonical(&reborn)], "{backend:?}");
        assert!(snap.tombstones.is_empty(), "{backend:?}");
        assert_eq!(db.rows_in("order_tombstones").await, 0, "{backend:?}: the new order's row replaced the tombstone");
        assert_eq!(snap.months.keys().map(|(_, m)| m.to_string()).collect::<Vec<_>>(), ["2023-01"], "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_the_latest_order_of_an_item_is_cancelled_then_its_last_order_date_falls_back_to_the_previous_one() {
    for backend in ALL {
        let db = fresh(backend).await;
        let early = order(
            r#"{"orderId":"e","orderDate":"2022-01-05T00:00:00Z","items":[{"itemid":"x","quantity":1}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let late = order(
            r#"{"orderId":"l","orderDate":"2022-03-05T00:00:00Z","items":[{"itemid":"x","quantity":1}]}"#,
            "2026-11-21T09:00:00Z",
        );
        let mut cancelled = late.clone();
        cancelled.version = late.version.next();
        cancelled.status = domain::OrderStatus::Cancelled;
        db.model
            .apply(&[
                change(ChangeKind::Insert, None, Some(&early), 1),
                change(ChangeKind::Insert, None, Some(&late), 2),
            ])
            .await
            .unwrap();
        assert_eq!(db.model.snapshot().await.unwrap().items[&item("x")].last_order_date, Some(late.order_date));
        db.model.apply(&[change(ChangeKind::Modify, Some(&late), Some(&cancelled), 3)]).await.unwrap();
        let x = db.model.snapshot().await.unwrap().items[&item("x")].clone();
        assert_eq!((x.quantity, x.orders, x.last_order_date), (1, 1, Some(early.order_date)), "{backend:?}");
        db.drop_database().await;
    }
}

fn cases() -> u64 {
    std::env::var("PROJECTION_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000)
}

async fn clear(model: &ReadModel) {
    model.clear().await.unwrap();
}

/// Random histories of create / amend / cancel / delete over a few orders, delivered in batches with duplicates,
/// retried batch prefixes and replays: the read model must equal a recomputation from the final write model.
async fn property(backend: Backend) {
    let db = fresh(backend).await;
    assert_eq!(
        db.model.dialect(),
        match backend {
            Backend::Postgres => Dialect::Postgres,
            Backend::MariaDb => Dialect::MySql,
            Backend::Sqlite => Dialect::Sqlite,
        }
    );
    for seed in 0..cases() {
        clear(&db.model).await;
        let mut rng = Rng::new(seed);
        let history = History::random(&mut rng, 4, 24);
        for batch in history.batches(&mut rng) {
            db.model.apply(&batch).await.unwrap_or_else(|e| panic!("{backend:?} seed {seed}: {e}"));
        }
        assert_equals_recomputation(&db.model, &history, &format!("{backend:?} seed {seed}")).await;
    }
    db.drop_database().await;
}

#[tokio::test]
async fn random_histories_equal_a_recomputation_on_postgres() {
    property(Backend::Postgres).await;
}

#[tokio::test]
async fn random_histories_equal_a_recomputation_on_mariadb() {
    property(Backend::MariaDb).await;
}

#[tokio::test]
async fn random_histories_equal_a_recomputation_on_sqlite() {
    property(Backend::Sqlite).await;
}

/// The lane of a change when two consumers share a stream by order id, as Lambda's `ParallelizationFactor` routes a
/// shard's records by key (or as two shards split the orders).
fn lane(c: &OrderChange) -> u32 {
    c.order_id().as_str().bytes().map(u32::from).sum::<u32>() % 2
}

/// A batch applied as a consumer would: again after a deadlock or serialization failure the database reports
/// (Lambda retries such a batch); any other error fails the test. Returns how many retries it took.
async fn apply_retrying(model: &ReadModel, batch: &[OrderChange], what: &str) -> u32 {
    let mut retries = 0;
    loop {
        match model.apply(batch).await {
            Ok(_) => return retries,
            Err(read_model::ProjectionError::Database(e))
                if retries < 10
                    && e.as_database_error()
                        .and_then(|d| d.code())
                        .is_some_and(|c| matches!(c.as_ref(), "40001" | "40P01" | "1213" | "1205")) =>
            {
                retries += 1;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Random histories over eight orders sharing six items, delivered (with duplicates, retried prefixes and replays)
/// to two consumers at once, each getting the records of its own orders in stream order: their transactions meet
/// on the item and month totals. The read model must still equal a recomputation from the final write model.
async fn concurrent_property(backend: Backend) {
    let db = fresh(backend).await;
    let mut retries = 0;
    for seed in 0..cases() / 4 {
        clear(&db.model).await;
        let mut rng = Rng::new(seed);
        let history = History::random(&mut rng, 8, 40);
        let batches = history.batches(&mut rng);
        let lane_of = |l: u32| -> Vec<Vec<OrderChange>> {
            batches
                .iter()
                .map(|b| b.iter().filter(|c| lane(c) == l).cloned().collect::<Vec<_>>())
                .filter(|b| !b.is_empty())
                .collect()
        };
        let consume = |batches: Vec<Vec<OrderChange>>| {
            let model = &db.model;
            async move {
                let mut retries = 0;
                for batch in batches {
                    retries += apply_retrying(model, &batch, &format!("{backend:?} seed {seed}")).await;
                }
                retries
            }
        };
        let (a, b) = tokio::join!(consume(lane_of(0)), consume(lane_of(1)));
        retries += a + b;
        assert_equals_recomputation(&db.model, &history, &format!("{backend:?} seed {seed}")).await;
    }
    println!("{backend:?}: {} concurrent histories, {retries} batches retried after a deadlock", cases() / 4);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_consumers_at_once_then_random_histories_still_equal_a_recomputation_on_postgres() {
    concurrent_property(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_consumers_at_once_then_random_histories_still_equal_a_recomputation_on_mariadb() {
    concurrent_property(Backend::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_consumers_at_once_then_random_histories_still_equal_a_recomputation_on_sqlite() {
    concurrent_property(Backend::Sqlite).await;
}

/// RDS Proxy's MySQL IAM sends the token through the cleartext plugin, so the connection must be TLS or nothing.
#[tokio::test]
async fn given_mysql_iam_auth_then_the_token_only_ever_travels_over_tls() {
    // Given the MariaDB here and IAM auth with TLS required
    let base = server_url("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
    let admin = format!("{base}/test");
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|e| {
        panic!("cannot reach {admin} ({e}): start MariaDB/MySQL on 127.0.0.1:3306 (root, no password), or set TEST_MYSQL_URL")
    });
    let rows = conn.fetch_all("SELECT @@have_ssl").await.unwrap();
    let have_ssl: String = sqlx::Row::try_get(&rows[0], 0).unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username("projector").unwrap();
    url.set_query(Some("ssl-mode=REQUIRED"));
    let iam = read_model::rds::IamAuth {
        region: "eu-west-1".into(),
        credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
        ),
    };
    let model = ReadModel::connect_iam(url.as_str(), iam).await.unwrap();

    // When the pool connects
    let error = model.migrate().await.unwrap_err().to_string();

    // Then a server without TLS is refused before authentication; with TLS, the (fake) token is what is refused
    if have_ssl.eq_ignore_ascii_case("YES") {
        assert!(error.contains("Access denied"), "{error}");
    } else {
        let lower = error.to_lowercase();
        assert!(lower.contains("tls") || lower.contains("ssl"), "refused for want of TLS: {error}");
    }
}

/// The reports come from the aggregates; they must equal a recomputation from the final write model and a GROUP BY
/// over the projected lines, sorted and paged the same on every backend.
#[tokio::test]
async fn given_random_histories_then_both_reports_equal_a_recomputation_and_every_sort_pages_to_the_whole() {
    use read_model::{Cursor, ItemQuery, ItemRow, ItemSort};
    for backend in ALL {
        let db = fresh(backend).await;
        for seed in 0..20 {
            clear(&db.model).await;
            let mut rng = Rng::new(1_000 + seed);
            let history = History::random(&mut rng, 8, 40);
            for batch in history.batches(&mut rng) {
                db.model.apply(&batch).await.unwrap();
            }
            let totals = Totals::recompute(history.final_orders());
            let expected: Vec<ItemRow> = totals
                .items
                .iter()
                .map(|(item, t)| ItemRow {
                    itemid: item.clone(),
                    totalordered: t.quantity,
                    totalrevenue: t.revenue.normalize(),
                    pricedordered: t.priced_quantity,
                    ordercount: t.orders,
                    lastorderdate: t.last_order_date,
                })
                .collect();
            let whole = |sort, descending| ItemQuery { sort, descending, limit: None, after: None };
            let report = db.model.item_report(&whole(ItemSort::ItemId, false)).await.unwrap();
            assert_eq!(report.rows, expected, "{backend:?} seed {seed}: item report");
            assert_eq!(report.next, None);
            let grouped = db.model.reports_by_grouping().await.unwrap();
            assert_eq!(grouped.items, report.rows, "{backend:?} seed {seed}: aggregates = GROUP BY over the lines");
            assert_eq!(grouped.months, totals.months, "{backend:?} seed {seed}: months = GROUP BY over the lines");
            for item in totals.items.keys() {
                let (months, _) = db.model.monthly_report(item).await.unwrap();
                let want: Vec<(String, i64)> = totals
                    .months
                    .iter()
                    .filter(|((i, _), _)| i == item)
                    .rev()
                    .map(|((_, m), q)| (m.to_string(), *q))
                    .collect();
                let got: Vec<(String, i64)> = months.iter().map(|m| (m.month.to_string(), m.monthlyordered)).collect();
                assert_eq!(got, want, "{backend:?} seed {seed}: months of {item}, newest first");
            }
            for sort in ItemSort::ALL {
                for descending in [false, true] {
                    let all = db.model.item_report(&whole(sort, descending)).await.unwrap().rows;
                    let mut sorted = expected.clone();
                    sorted.sort_by(|a, b| {
                        let key = |r: &ItemRow| match sort {
                            ItemSort::ItemId => (0, rust_decimal::Decimal::ZERO, None),
                            ItemSort::TotalOrdered => (r.totalordered, rust_decimal::Decimal::ZERO, None),
                            ItemSort::OrderCount => (r.ordercount, rust_decimal::Decimal::ZERO, None),
                            ItemSort::TotalRevenue => (0, r.totalrevenue, None),
                            ItemSort::LastOrderDate => (0, rust_decimal::Decimal::ZERO, r.lastorderdate),
                        };
                        let ord = key(a).cmp(&key(b)).then_with(|| a.itemid.as_str().cmp(b.itemid.as_str()));
                        if descending { ord.reverse() } else { ord }
                    });
                    assert_eq!(all, sorted, "{backend:?} seed {seed}: sorted by {sort:?} desc={descending}");
                    let mut paged = Vec::new();
                    let mut after: Option<Cursor> = None;
                    loop {
                        let query = ItemQuery { sort, descending, limit: Some(2), after: after.take() };
                        let page = db.model.item_report(&query).await.unwrap();
                        paged.extend(page.rows);
                        match page.next {
                            Some(next) => after = Some(Cursor::decode(sort, &next.encode()).unwrap()),
                            None => break,
                        }
                    }
                    assert_eq!(paged, all, "{backend:?} seed {seed}: pages of 2 by {sort:?} desc={descending}");
                }
            }
        }
        db.drop_database().await;
    }
}

/// The migrations create `orders_reader`: a user holding it reads every table and writes none.
#[tokio::test]
async fn given_a_user_with_the_reader_role_then_it_can_read_the_read_model_and_not_write_it() {
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let db = fresh(backend).await;
        let admin = db.admin_url.clone().unwrap();
        let user = format!("{}_reader", db.name);
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap();
        let (setup, reader_url, teardown) = match backend {
            Backend::Postgres => (
                vec![format!("CREATE ROLE {user} LOGIN IN ROLE orders_reader")],
                format!(
                    "{}/{}",
                    admin.rsplit_once('/').unwrap().0.replacen("postgres@", &format!("{user}@"), 1),
                    db.name
                ),
                vec![format!("DROP ROLE {user}")],
            ),
            _ => (
                vec![
                    format!("CREATE USER '{user}'@'127.0.0.1'"),
                    format!("GRANT orders_reader TO '{user}'@'127.0.0.1'"),
                    format!("SET DEFAULT ROLE orders_reader FOR '{user}'@'127.0.0.1'"),
                ],
                format!("{}/{}", admin.rsplit_once('/').unwrap().0.replacen("root@", &format!("{user}@"), 1), db.name),
                vec![format!("DROP USER '{user}'@'127.0.0.1'")],
            ),
        };
        for sql in &setup {
            conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap_or_else(|e| panic!("{backend:?} {sql}: {e}"));
        }

        let reader = ReadModel::connect(&reader_url).unwrap();
        let report = reader.item_report(&read_model::ItemQuery {
            sort: read_model::ItemSort::ItemId,
            descending: false,
            limit: None,
            after: None,
        });
        assert_eq!(report.await.unwrap().rows, vec![], "{backend:?}: the reader reads");
        let o = order(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#, "2026-11-21T09:00:00Z");
        let err = reader.apply(&[change(ChangeKind::Insert, None, Some(&o), 1)]).await.unwrap_err().to_string();
        assert!(err.contains("denied") || err.contains("permission"), "{backend:?}: the reader cannot write: {err}");
        reader.close().await;

        for sql in &teardown {
            conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap();
        }
        db.drop_database().await;
    }
}

/// Ends every session on database `name` but the caller's own, from `admin`: what a server restart, a failover or
/// a proxy closing idle clients does to a pool's idle connections.
async fn end_other_sessions(backend: Backend, admin: &str, name: &str) -> usize {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await.unwrap();
    match backend {
        Backend::Postgres => {
            let ended: Vec<(bool,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            ended.len()
        }
        _ => {
            let ids: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
                 WHERE db = '{name}' AND id <> CONNECTION_ID()"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (id,) in &ids {
                conn.execute(sqlx::AssertSqlSafe(format!("KILL {id}"))).await.unwrap();
            }
            ids.len()
        }
    }
}

#[tokio::test]
async fn given_the_server_ended_the_pools_idle_connections_then_a_read_after_a_second_idle_gets_a_new_one() {
    use read_model::{ItemQuery, ItemSort};
    let all = ItemQuery { sort: ItemSort::ItemId, descending: false, limit: None, after: None };
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let db = fresh(backend).await;
        let o = order(r#"{"orderId":"6119","items":[{"itemid":"z3333","quantity":6}]}"#, "2026-11-21T09:00:00Z");
        db.model.apply(&[change(ChangeKind::Insert, None, Some(&o), 1)]).await.unwrap();
        assert_eq!(db.model.item_report(&all).await.unwrap().rows.len(), 1, "{backend:?}");

        // Given: the pool's connections are idle, and the server ends them.
        let admin = db.admin_url.clone().unwrap();
        assert!(end_other_sessions(backend, &admin, &db.name).await > 0, "{backend:?}: the pool had a connection");
        // When: a read comes after a second idle (the pool pings a connection idle that long before handing it out).
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        // Then: the dead connection is found and replaced, and the read succeeds.
        let page = db.model.item_report(&all).await.unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        assert_eq!(page.rows.len(), 1, "{backend:?}");
        db.drop_database().await;
    }
}

/// Runs `sql` on the test's database, outside the read model.
async fn exec(db: &Fresh, sql: &str) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.unwrap();
}

#[tokio::test]
async fn given_a_statement_fails_part_way_through_a_batch_then_its_error_is_returned_nothing_is_applied_and_the_retry_converges()
 {
    for backend in ALL {
        let db = fresh(backend).await;
        // Given a database that refuses lines of 1,000 units or more (a stand-in for any write that fails after
        // others of the same transaction: here the first of five line statements, after the order rows)
        let (refuse, allow) = match backend {
            Backend::Sqlite => (
                "CREATE TRIGGER test_small_lines BEFORE INSERT ON orderitems WHEN NEW.quantity >= 1000 \
                 BEGIN SELECT RAISE(ABORT, 'line too large'); END",
                "DROP TRIGGER test_small_lines",
            ),
            _ => (
                "ALTER TABLE orderitems ADD CONSTRAINT test_small_lines CHECK (quantity < 1000)",
                "ALTER TABLE orderitems DROP CONSTRAINT test_small_lines",
            ),
        };
        exec(&db, refuse).await;
        let batch: Vec<OrderChange> = (0..3_000u64)
            .map(|i| {
                let first = if i == 0 { 5_000 } else { 1 };
                let json = format!(
                    r#"{{"orderId":"o{i}","items":[{{"itemid":"a","quantity":{first}}},{{"itemid":"b{}","quantity":2}},{{"itemid":"c","quantity":3}}]}}"#,
                    i % 7
                );
                let o = order(&json, "2026-11-21T09:00:00Z");
                change(ChangeKind::Insert, None, Some(&o), i + 1)
            })
            .collect();

        // When the batch is applied
        let err = db.model.apply(&batch).await.expect_err("the refused line fails the batch");

        // Then the database's own error comes back, and nothing of the batch is visible: no orders, lines,
        // totals or position
        assert!(matches!(err, read_model::ProjectionError::Database(_)), "{backend:?}: {err}");
        assert_eq!(db.model.snapshot().await.unwrap(), read_model::Snapshot::default(), "{backend:?}");
        assert_eq!(db.rows_in("orderitems").await, 0, "{backend:?}");

        // And once the database takes the line, the same batch applies in full on the same pool
        exec(&db, allow).await;
        let applied = db.model.apply(&batch).await.unwrap();
        assert_eq!(applied.applied, 3_000, "{backend:?}");
        let snap = db.model.snapshot().await.unwrap();
        assert_eq!(snap.orders.len(), 3_000, "{backend:?}");
        assert_eq!((snap.items[&item("a")].quantity, snap.items[&item("a")].orders), (7_999, 3_000), "{backend:?}");
        assert_eq!((snap.items[&item("c")].quantity, snap.items[&item("c")].orders), (9_000, 3_000), "{backend:?}");
        assert_eq!(db.rows_in("orderitems").await, 9_000, "{backend:?}");
        db.drop_database().await;
    }
}

#[tokio::test]
async fn given_batches_of_the_longest_ids_on_mariadb_then_no_statement_is_long_enough_for_rds_proxy_to_pin() {
    // Given 2,000 new orders with the longest ids in one batch, then a batch amending, cancelling and deleting most
    // of them: every statement kind with its longest lists.
    let db = fresh(Backend::MariaDb).await;
    let (history, first) = long_id_history();

    // When they are applied as two batches.
    db.model.apply(&history.changes[..first]).await.unwrap();
    db.model.apply(&history.changes[first..]).await.unwrap();

    // Then the read model is right, and no statement this process sent to MySQL was over RDS Proxy's 16 KB (the
    // lists were long enough to need cutting: the longest statements come close to the limit).
    assert_equals_recomputation(&db.model, &history, "long ids").await;
    let longest = read_model::db::longest_mysql_statement();
    assert!(longest <= read_model::dialect::MYSQL_STATEMENT_LIMIT, "a statement of {longest} bytes");
    assert!(longest > read_model::dialect::MYSQL_STATEMENT_LIMIT * 3 / 4, "the longest statement: {longest} bytes");
    db.drop_database().await;
}

#[tokio::test]
async fn given_statements_with_arguments_on_mariadb_then_none_is_prepared() {
    // Given a connection of the read model's pool (RDS Proxy pins the session of any prepared statement).
    let db = fresh(Backend::MariaDb).await;
    let pool = read_model::db::Pool::connect_lazy(Dialect::MySql, &db.url, read_model::db::Mode::Url).unwrap();
    let mut tx = pool.begin_write().await.unwrap();
    let prepared = |rows: Vec<read_model::db::DbRow>| rows[0].text(1).unwrap().parse::<u64>().unwrap();
    let status = "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'";
    let before = prepared(tx.fetch(status, &[]).await.unwrap());

    // When statements with text, integer and NULL arguments run and read rows.
    use read_model::db::Arg;
    let insert = "INSERT INTO projection_positions (source, sequence, last_changed_at, applied_at) VALUES (?, ?, ?, ?)";
    // (the source column is ASCII, as ids are; the sequence column takes any text)
    let hostile = "x'); DROP TABLE orders; -- \\";
    let args = [
        Arg::Text(hostile.into()),
        Arg::Text("é ünïcode".into()),
        Arg::Text("2026-11-21 10:00:00.000".into()),
        Arg::Text("2026-11-21 10:00:01.000".into()),
    ];
    assert_eq!(tx.run(insert, &args).await.unwrap(), 1);
    let read = "SELECT source, sequence, ? FROM projection_positions WHERE source = ? AND ? IS NULL";
    let rows = tx.fetch(read, &[Arg::Int(-7), args[0].clone(), Arg::OptText(None)]).await.unwrap();

    // Then they did what they say, hostile text stayed a value, and the session prepared nothing.
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0).unwrap(), hostile);
    assert_eq!(rows[0].text(1).unwrap(), "é ünïcode");
    assert_eq!(rows[0].int(2).unwrap(), -7);
    assert_eq!(prepared(tx.fetch(status, &[]).await.unwrap()), before, "statements prepared");
    tx.commit().await.unwrap();
    pool.close().await;
    assert!(db.rows_in("orders").await == 0);
    db.drop_database().await;
}
