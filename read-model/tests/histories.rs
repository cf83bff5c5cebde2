//! Random histories on PostgreSQL, MariaDB and SQLite, each test in a fresh database: delivered in batches with
//! duplicates, retried prefixes and replays, by one consumer or two at once, the read model and both reports
//! equal a recomputation from the final write model. `PROJECTION_CASES` sets how many histories (default 1,000).
//! PostgreSQL and MariaDB must be running (see read_model.rs); a test that cannot reach them fails and says so.

mod common;

use domain::OrderChange;
use domain::projection::Totals;
use domain::testkit::{History, Rng};
use read_model::{Dialect, ReadModel};

use test_support::databases::*;

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
