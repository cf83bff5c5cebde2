//! Fresh read-model databases on each backend (dropped afterwards), the recomputation every projection is compared
//! with, and a history of the longest ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use domain::projection::{SaleMonth, Totals};
use domain::testkit::{History, Rng, at};
use domain::{ChangeKind, ItemId, Lines, Order, OrderChange, OrderId};
use read_model::ReadModel;
use sqlx::Executor;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::MariaDb, Backend::Sqlite];

/// A fresh, migrated database; dropped (server backends) when the test ends.
pub struct Fresh {
    pub model: ReadModel,
    pub url: String,
    pub admin_url: Option<String>,
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn server_url(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

pub async fn fresh(backend: Backend) -> Fresh {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("rm_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    sqlx::any::install_default_drivers();
    let (url, admin_url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display()), None, Some(dir))
        }
        Backend::Postgres | Backend::MariaDb => {
            let (var, base, admin_db, hint) = match backend {
                Backend::Postgres => (
                    "TEST_POSTGRES_URL",
                    "postgres://postgres@127.0.0.1:5432",
                    "postgres",
                    "start PostgreSQL on 127.0.0.1:5432 with trust auth, or set TEST_POSTGRES_URL",
                ),
                _ => (
                    "TEST_MYSQL_URL",
                    "mysql://root@127.0.0.1:3306",
                    "test",
                    "start MariaDB/MySQL on 127.0.0.1:3306 (root, no password), or set TEST_MYSQL_URL",
                ),
            };
            let base = server_url(var, base);
            let admin = format!("{base}/{admin_db}");
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("cannot reach {admin} ({e}): {hint}"));
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            (format!("{base}/{name}"), Some(admin), None)
        }
    };
    let model = ReadModel::connect(&url).unwrap();
    model.migrate().await.unwrap();
    model.migrate().await.expect("migrating twice is harmless");
    Fresh { model, url, admin_url, name, _dir: dir }
}

impl Fresh {
    /// The rows `table` holds, counted by the database itself (not through the projection's own reading).
    pub async fn rows_in(&self, table: &str) -> i64 {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.url).await.unwrap();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::Row::try_get(&row, 0).unwrap()
    }

    pub async fn drop_database(self) {
        let Fresh { model, admin_url, name, .. } = self;
        model.close().await;
        if let Some(admin) = admin_url {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).await.unwrap();
        }
    }
}

pub fn canonical(o: &Order) -> Order {
    let mut lines: Vec<_> = o.items.as_slice().to_vec();
    lines.sort_by(|a, b| a.itemid.cmp(&b.itemid));
    Order { items: Lines::new(lines).unwrap(), ..o.clone() }
}

/// The read model holds exactly what `history`'s final write model gives when recomputed: orders and lines, item
/// and month totals, and the newest position.
pub async fn assert_equals_recomputation(model: &ReadModel, history: &History, what: &str) {
    assert_equals_orders(model, history.final_state.values(), what).await;
    if let Some(last) = history.changes.last() {
        let snap = model.snapshot().await.unwrap();
        assert_eq!(snap.positions["test"].0, last.position().sequence, "{what}: position");
    }
}

/// The read model holds exactly `orders` (a write model's final state) and the totals recomputed from them.
pub async fn assert_equals_orders<'a>(model: &ReadModel, orders: impl Iterator<Item = &'a Order> + Clone, what: &str) {
    let snap = model.snapshot().await.unwrap();
    let expected_orders: BTreeMap<OrderId, Order> =
        orders.clone().map(|o| (o.order_id.clone(), canonical(o))).collect();
    assert_eq!(snap.orders, expected_orders, "{what}: orders and lines");
    let totals = Totals::recompute(orders);
    let items: BTreeMap<_, _> = totals
        .items
        .into_iter()
        .map(|(k, mut v)| {
            v.revenue = v.revenue.normalize();
            (k, v)
        })
        .collect();
    assert_eq!(snap.items, items, "{what}: item totals");
    let months: BTreeMap<(ItemId, SaleMonth), i64> = totals.months;
    assert_eq!(snap.months, months, "{what}: monthly totals");
}

/// `n` as an id of 64 characters (the longest the id rules allow), starting with `prefix`.
pub fn long_id(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:0>width$}", width = 64 - prefix.len())
}

/// Lines of 1-3 distinct items out of `items` long ids, some priced.
pub fn long_lines(rng: &mut Rng, items: u64) -> Lines {
    let start = rng.below(items);
    let lines = (0..1 + rng.below(3))
        .map(|i| domain::OrderLine {
            itemid: ItemId::parse(&long_id("item-", (start + i) % items)).unwrap(),
            quantity: domain::Quantity::new(1 + rng.below(20) as u32).unwrap(),
            unit_price: rng
                .chance(50)
                .then(|| domain::UnitPrice::new(rust_decimal::Decimal::new(rng.below(100_000) as i64, 2)).unwrap()),
        })
        .collect();
    Lines::new(lines).unwrap()
}

/// 2,000 new orders with 64-character ids (the longest the id rules allow) over 1,500 items of 64-character ids,
/// then most of them amended, cancelled or deleted (lines read and deleted, last order dates rechecked, emptied
/// totals removed): the changes, where the second batch starts, and the write model's final state.
pub fn long_id_history() -> (History, usize) {
    let mut rng = Rng::new(7);
    let now = at("2026-11-21T10:00:00Z");
    let mut state: BTreeMap<OrderId, Order> = BTreeMap::new();
    let mut changes: Vec<OrderChange> = Vec::new();
    let push = |changes: &mut Vec<OrderChange>, kind, before: Option<&Order>, after: Option<&Order>| {
        let seq = changes.len() as u64 + 1;
        let position = domain::Position { source: "test".into(), sequence: domain::change::Sequence::from(seq) };
        changes.push(OrderChange::new(kind, before.cloned(), after.cloned(), position, now).unwrap());
    };
    for n in 0..2_000 {
        let draft = domain::OrderDraft {
            order_id: OrderId::parse(&long_id("order-", n)).unwrap(),
            lines: long_lines(&mut rng, 1_500),
            order_date: Some(at("2022-01-01T00:00:00Z") + chrono::Duration::hours(rng.below(24 * 700) as i64)),
        };
        let Ok(domain::CreateDecision::Create(order)) = domain::decide_create(draft, None, now) else {
            panic!("a valid order")
        };
        push(&mut changes, ChangeKind::Insert, None, Some(&order));
        state.insert(order.order_id.clone(), order);
    }
    let first = changes.len();
    for (n, (id, current)) in state.clone().into_iter().enumerate() {
        let command = match n % 4 {
            0 | 1 => domain::OrderCommand::Amend { lines: long_lines(&mut rng, 1_500), expected: current.version },
            2 => domain::OrderCommand::Cancel { expected: None },
            _ => domain::OrderCommand::Delete { expected: None },
        };
        match command.decide(Some(&current), &id, now).unwrap() {
            domain::Decision::Replace(next) => {
                push(&mut changes, ChangeKind::Modify, Some(&current), Some(&next));
                state.insert(id, next);
            }
            domain::Decision::Remove => {
                push(&mut changes, ChangeKind::Remove, Some(&current), None);
                state.remove(&id);
            }
            domain::Decision::Unchanged => {}
        }
    }

    (History { changes, final_state: state }, first)
}
