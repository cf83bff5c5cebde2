//! The relational read model: `orders` / `orderitems` (the sample's names), tombstones, the report
//! aggregates and the projection positions. `apply` runs one batch of changes in one transaction: it loads what
//! is projected for the batch's orders, folds the changes through `domain::projection` (version guard, deltas),
//! and writes the outcome with a handful of multi-row statements, whatever the batch size.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use domain::change::Sequence;
use domain::projection::{Deltas, ItemTotals, Projected, Revision, SaleMonth, next_state};
use domain::{ItemId, Lines, Order, OrderChange, OrderId, OrderLine, OrderStatus, Quantity, UnitPrice, Version};
use rust_decimal::Decimal;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::db::{Arg, Cell, DbRow, Mode, Pool, RowRef, Tx};

mod health;
mod logins;
mod reports;
use crate::dialect::Dialect;
use crate::mysql_text::{MYSQL_STATEMENT_LIMIT, mysql_text_len};
use crate::rowset::RowSet;
use crate::value::{Col, Val};
pub use health::{Backlog, DeadLetter, DeadLetters};
pub use logins::{DbRole, LoginAuth};
pub use reports::{
    Cursor, Epoch, Grouped, ItemPage, ItemQuery, ItemRow, ItemSort, MonthRow, PositionRow, ProjectedVersion, ReadAt,
};

/// Rows per multi-row statement: at most 8 columns x 2,000 rows = 16,000 parameters, inside every backend's limit
/// (SQLite 32,766; PostgreSQL and MySQL 65,535). Fewer, larger statements are what make a batch cheap.
const CHUNK: usize = 2_000;

/// The part of an id-list statement on MySQL that is not its ids, at most (the longest, the totals' check, is
/// under 400 bytes).
const MYSQL_SQL_AROUND_IDS: usize = 1_024;

/// `ids` cut into the lists of one `in_list` statement each: at most `CHUNK` ids, and on MySQL, where they are
/// written in as literals, no more than keep the statement within `limit` bytes.
fn id_chunks<T: AsRef<str>>(dialect: Dialect, limit: usize, ids: &[T]) -> Vec<&[T]> {
    if dialect != Dialect::MySql {
        return ids.chunks(CHUNK).collect();
    }
    let budget = limit.saturating_sub(MYSQL_SQL_AROUND_IDS);
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let len = mysql_text_len(id.as_ref()) + ", ".len();
        if i > start && (bytes + len > budget || i - start == CHUNK) {
            chunks.push(&ids[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < ids.len() {
        chunks.push(&ids[start..]);
    }
    chunks
}

/// The migrations of `migrations/<dialect>`, compiled in (sqlx's layout: `<version>_<description>.sql`). Listed
/// here rather than found by sqlx's `migrate!` macro, which would pull its proc-macro build into every binary.
const MIGRATIONS: &[(i64, &str, &str, &str, &str)] = &[
    (
        1,
        "read model",
        include_str!("../../migrations/postgres/0001_read_model.sql"),
        include_str!("../../migrations/mysql/0001_read_model.sql"),
        include_str!("../../migrations/sqlite/0001_read_model.sql"),
    ),
    (
        2,
        "reports and reader",
        include_str!("../../migrations/postgres/0002_reports_and_reader.sql"),
        include_str!("../../migrations/mysql/0002_reports_and_reader.sql"),
        include_str!("../../migrations/sqlite/0002_reports_and_reader.sql"),
    ),
    (
        3,
        "projection epoch",
        include_str!("../../migrations/postgres/0003_projection_epoch.sql"),
        include_str!("../../migrations/mysql/0003_projection_epoch.sql"),
        include_str!("../../migrations/sqlite/0003_projection_epoch.sql"),
    ),
    (
        4,
        "writer role",
        include_str!("../../migrations/postgres/0004_writer_role.sql"),
        include_str!("../../migrations/mysql/0004_writer_role.sql"),
        include_str!("../../migrations/sqlite/0004_writer_role.sql"),
    ),
    (
        5,
        "report fillfactor",
        include_str!("../../migrations/postgres/0005_report_fillfactor.sql"),
        include_str!("../../migrations/mysql/0005_report_fillfactor.sql"),
        include_str!("../../migrations/sqlite/0005_report_fillfactor.sql"),
    ),
    (
        6,
        "priced quantity",
        include_str!("../../migrations/postgres/0006_priced_quantity.sql"),
        include_str!("../../migrations/mysql/0006_priced_quantity.sql"),
        include_str!("../../migrations/sqlite/0006_priced_quantity.sql"),
    ),
    (
        7,
        "dead letters and backlog",
        include_str!("../../migrations/postgres/0007_dead_letters_and_backlog.sql"),
        include_str!("../../migrations/mysql/0007_dead_letters_and_backlog.sql"),
        include_str!("../../migrations/sqlite/0007_dead_letters_and_backlog.sql"),
    ),
];

fn migrator(dialect: Dialect) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, pg, my, lite)| {
                let sql = match dialect {
                    Dialect::Postgres => *pg,
                    Dialect::MySql => *my,
                    Dialect::Sqlite => *lite,
                };
                Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("READ_MODEL_URL must start with postgres://, mysql:// or sqlite: (got {0:?})")]
    UnsupportedUrl(String),
    #[error("read model database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("read model migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("read model authentication: {0}")]
    Auth(String),
    #[error("read model configuration: {0}")]
    Config(String),
    #[error("read model holds data the projection cannot explain: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, ProjectionError>;

fn corrupt(what: impl Into<String>) -> ProjectionError {
    ProjectionError::Corrupt(what.into())
}

/// Raised in every transaction that changes what the read model holds.
const EPOCH_BUMP: &str = "UPDATE projection_epoch SET epoch = epoch + 1 WHERE id = 1";

const ITEM_COLS: [Col; 6] = [Col::Text, Col::Int, Col::Decimal, Col::Int, Col::Int, Col::Time];
const ITEM_HEAD: &str =
    "INSERT INTO item_sales (itemid, totalordered, totalrevenue, pricedordered, ordercount, lastorderdate)";

/// The `item_sales` columns that [`item_totals_of`] decodes, in its order.
fn item_totals_columns(d: Dialect) -> String {
    format!(
        "itemid, totalordered, {}, pricedordered, ordercount, {}",
        d.decimal_out("totalrevenue"),
        d.time_out("lastorderdate")
    )
}

/// One row selected with [`item_totals_columns`].
fn item_totals_of(r: &DbRow) -> Result<(ItemId, ItemTotals)> {
    let totals = ItemTotals {
        quantity: r.int(1)?,
        revenue: get_decimal(r, 2)?.normalize(),
        priced_quantity: r.int(3)?,
        orders: r.int(4)?,
        last_order_date: get_opt_time(r, 5)?,
    };
    Ok((item_id(&get_text(r, 0)?)?, totals))
}

/// What one `apply` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub received: usize,
    /// Changes that were newer than what was projected; the rest were duplicates, replays or late arrivals.
    pub applied: usize,
}

/// The whole read model, decoded: for tests and rebuild checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub orders: BTreeMap<OrderId, Order>,
    pub tombstones: BTreeMap<OrderId, Revision>,
    pub items: BTreeMap<ItemId, ItemTotals>,
    pub months: BTreeMap<(ItemId, SaleMonth), i64>,
    pub positions: BTreeMap<String, (Sequence, DateTime<Utc>)>,
}

/// What `load` found: the projected state of each order, and which of its rows exist.
struct Loaded {
    states: BTreeMap<OrderId, Projected>,
    stored: Stored,
}

/// The orders that have a row in `orders` (and so lines in `orderitems`), and those with a tombstone. Only
/// these have rows to delete when their state changes.
struct Stored {
    rows: BTreeSet<OrderId>,
    tombstones: BTreeSet<OrderId>,
}

/// A statement and its arguments, built from fixed SQL fragments (never from input text).
struct Stmt {
    sql: String,
    args: Vec<Arg>,
}

impl Stmt {
    fn new(sql: String) -> Stmt {
        Stmt { sql, args: Vec::new() }
    }

    /// `sql` with `values` bound in order, as `dialect` takes them.
    fn with_vals(sql: String, values: Vec<Val>, dialect: Dialect) -> Stmt {
        Stmt { sql, args: values.into_iter().map(|v| dialect.arg(v)).collect() }
    }

    fn text(mut self, v: impl Into<String>) -> Stmt {
        self.args.push(Arg::Text(v.into()));
        self
    }

    async fn run(&self, conn: &mut Tx) -> Result<u64> {
        let started = std::time::Instant::now();
        let n = conn.run(&self.sql, &self.args).await?;
        self.trace(started, n);
        Ok(n)
    }

    async fn fetch(&self, conn: &mut Tx) -> Result<Vec<DbRow>> {
        let started = std::time::Instant::now();
        let rows = conn.fetch(&self.sql, &self.args).await?;
        self.trace(started, rows.len() as u64);
        Ok(rows)
    }

    async fn fetch_map<T>(&self, conn: &mut Tx, f: impl FnMut(RowRef<'_>) -> Result<T>) -> Result<Vec<T>> {
        let started = std::time::Instant::now();
        let rows = conn.fetch_map(&self.sql, &self.args, f).await?;
        self.trace(started, rows.len() as u64);
        Ok(rows)
    }

    /// One event per statement at TRACE: its start, arguments, rows and time (for finding where a batch goes).
    fn trace(&self, started: std::time::Instant, rows: u64) {
        let sql = self.sql.get(..self.sql.len().min(60)).unwrap_or(&self.sql);
        tracing::trace!(sql, args = self.args.len(), rows, micros = started.elapsed().as_micros() as u64, "statement");
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn get_text(row: &DbRow, i: usize) -> Result<String> {
    Ok(row.text(i)?)
}

fn text_of(cell: Cell) -> Result<String> {
    match cell {
        Cell::Text(text) => Ok(text),
        other => Err(corrupt(format!("not text: {other:?}"))),
    }
}

fn int_of(cell: &Cell) -> Result<i64> {
    match cell {
        Cell::Int(v) => Ok(*v),
        other => Err(corrupt(format!("not an integer: {other:?}"))),
    }
}

/// A time as `Dialect::time_out` reads it: a PostgreSQL TIMESTAMPTZ, or RFC 3339 text.
fn opt_time_of(cell: &Cell) -> Result<Option<DateTime<Utc>>> {
    match cell {
        Cell::Null => Ok(None),
        Cell::Time(at) => Ok(Some(*at)),
        Cell::Text(raw) => {
            domain::order::parse_time(raw).map(Some).ok_or_else(|| corrupt(format!("not a time: {raw:?}")))
        }
        other => Err(corrupt(format!("not a time: {other:?}"))),
    }
}

fn get_opt_time(row: &DbRow, i: usize) -> Result<Option<DateTime<Utc>>> {
    opt_time_of(row.cell(i)?)
}

fn get_time(row: &DbRow, i: usize) -> Result<DateTime<Utc>> {
    get_opt_time(row, i)?.ok_or_else(|| corrupt("a time is NULL"))
}

/// A decimal as `Dialect::decimal_out` reads it: a PostgreSQL NUMERIC, or exact text.
fn opt_decimal_of(cell: &Cell) -> Result<Option<Decimal>> {
    match cell {
        Cell::Null => Ok(None),
        Cell::Decimal(d) => Ok(Some(*d)),
        Cell::Text(raw) => Decimal::from_str(raw).map(Some).map_err(|_| corrupt(format!("not a decimal: {raw:?}"))),
        other => Err(corrupt(format!("not a decimal: {other:?}"))),
    }
}

fn decimal_of(cell: &Cell) -> Result<Decimal> {
    opt_decimal_of(cell)?.ok_or_else(|| corrupt("a decimal is NULL"))
}

fn get_opt_decimal(row: &DbRow, i: usize) -> Result<Option<Decimal>> {
    opt_decimal_of(row.cell(i)?)
}

fn get_decimal(row: &DbRow, i: usize) -> Result<Decimal> {
    decimal_of(row.cell(i)?)
}

/// An item id from a text cell, its text kept (no copy).
fn item_id_of(cell: Cell) -> Result<ItemId> {
    let raw = text_of(cell)?;
    ItemId::try_from(raw).map_err(|e| corrupt(format!("item id: {e}")))
}

fn item_id(raw: &str) -> Result<ItemId> {
    ItemId::parse(raw).map_err(|e| corrupt(format!("item id {raw:?}: {e}")))
}

fn order_id(raw: &str) -> Result<OrderId> {
    OrderId::parse(raw).map_err(|e| corrupt(format!("order id {raw:?}: {e}")))
}

fn version(raw: i64) -> Result<Version> {
    u64::try_from(raw).ok().and_then(Version::new).ok_or_else(|| corrupt(format!("version {raw}")))
}

#[derive(Clone)]
pub struct ReadModel {
    pool: Pool,
    dialect: Dialect,
    /// The longest statement sent to MySQL (`with_mysql_statement_limit`).
    mysql_statement_limit: usize,
}

impl ReadModel {
    /// A pool for `url` with its own credentials, connecting lazily and replacing broken connections (RDS Proxy
    /// closes idle ones).
    pub fn connect(url: &str) -> Result<ReadModel> {
        ReadModel::with_mode(url, Mode::Url)
    }

    fn with_mode(url: &str, mode: Mode) -> Result<ReadModel> {
        let dialect = Dialect::from_url(url).ok_or_else(|| ProjectionError::UnsupportedUrl(url.to_owned()))?;
        Ok(ReadModel {
            pool: Pool::connect_lazy(dialect, url, mode)?,
            dialect,
            mysql_statement_limit: MYSQL_STATEMENT_LIMIT,
        })
    }

    /// Lets each statement take up to `limit` (30 s by default; see `db::STATEMENT_TIMEOUT`).
    pub fn with_statement_timeout(mut self, limit: std::time::Duration) -> ReadModel {
        self.pool = self.pool.with_statement_timeout(limit);
        self
    }

    /// Lets statements to MySQL grow to `bytes` (from `MYSQL_STATEMENT_LIMIT`, the most RDS Proxy passes without
    /// pinning the session): fewer round trips a batch, for a MySQL with no RDS Proxy in front of it.
    pub fn with_mysql_statement_limit(mut self, bytes: usize) -> ReadModel {
        self.mysql_statement_limit = bytes;
        self
    }

    /// The read model as configured: `url` with its own password, or with RDS IAM tokens from the process's AWS
    /// credentials and region.
    pub async fn open(url: &str, auth: crate::rds::Auth) -> Result<ReadModel> {
        match auth {
            crate::rds::Auth::Password => ReadModel::connect(url),
            crate::rds::Auth::Iam => {
                let config = aws_config::load_from_env().await;
                let region = config
                    .region()
                    .map(|r| r.to_string())
                    .ok_or_else(|| ProjectionError::Auth("READ_MODEL_AUTH=iam needs AWS_REGION".into()))?;
                let credentials = config
                    .credentials_provider()
                    .ok_or_else(|| ProjectionError::Auth("READ_MODEL_AUTH=iam found no AWS credentials".into()))?;
                ReadModel::connect_iam(url, crate::rds::IamAuth { region, credentials }).await
            }
        }
    }

    /// A pool for `url` whose password is an RDS IAM token (Aurora through RDS Proxy), replaced by a fresh one
    /// every ten minutes for the connections the pool opens from then on.
    pub async fn connect_iam(url: &str, iam: crate::rds::IamAuth) -> Result<ReadModel> {
        let dialect = Dialect::from_url(url).ok_or_else(|| ProjectionError::UnsupportedUrl(url.to_owned()))?;
        let base = url::Url::parse(url).map_err(|e| ProjectionError::Auth(format!("READ_MODEL_URL: {e}")))?;
        crate::rds::check_url(&base, dialect).map_err(ProjectionError::Auth)?;
        let first = crate::rds::url_with_token(&base, &iam).await.map_err(ProjectionError::Auth)?;
        let model = ReadModel::with_mode(&first, Mode::RdsIam)?;
        let pool = model.pool.clone();
        tokio::spawn(async move {
            while !pool.is_closed() {
                tokio::time::sleep(crate::rds::REFRESH_EVERY).await;
                match crate::rds::url_with_token(&base, &iam)
                    .await
                    .and_then(|u| pool.set_url(&u, Mode::RdsIam).map_err(|e| e.to_string()))
                {
                    Ok(()) => tracing::debug!("RDS IAM token refreshed"),
                    // The previous token stays valid for five more minutes; the next round tries again.
                    Err(error) => tracing::error!(%error, "cannot refresh the RDS IAM token"),
                }
            }
        });
        Ok(model)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes the pool: open connections end once returned, new ones are refused.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the migrations in `migrations/<dialect>`; safe to run again.
    pub async fn migrate(&self) -> Result<()> {
        self.pool.migrate(&migrator(self.dialect)).await?;
        Ok(())
    }

    /// Deletes everything projected, in one transaction (the schema stays).
    pub async fn clear(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in
            ["orderitems", "orders", "order_tombstones", "item_sales", "item_monthly_sales", "projection_positions"]
        {
            Stmt::new(format!("DELETE FROM {table}")).run(&mut tx).await?;
        }
        Stmt::new(EPOCH_BUMP.into()).run(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies `changes` (in feed order) in one transaction: all of them take effect, or none.
    pub async fn apply(&self, changes: &[OrderChange]) -> Result<Applied> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let now = domain::order::timestamp(Utc::now());
        let mut tx = self.pool.begin_write().await?;
        let ids: Vec<OrderId> =
            changes.iter().map(|c| c.order_id().clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let Loaded { mut states, stored } = self.load(&mut tx, Some(&ids)).await?;
        let mut touched = BTreeSet::new();
        let mut deltas = Deltas::default();
        let mut applied = 0;
        for change in changes {
            let current = states.get(change.order_id());
            if let Some(next) = next_state(current, change) {
                deltas.record(current, Some(&next));
                touched.insert(change.order_id().clone());
                states.insert(change.order_id().clone(), next);
                applied += 1;
            }
        }
        deltas.compact();
        if !touched.is_empty() {
            self.write_orders(&mut tx, &states, &stored, &touched, now).await?;
            self.write_item_totals(&mut tx, &deltas).await?;
            self.write_month_totals(&mut tx, &deltas).await?;
            Stmt::new(EPOCH_BUMP.into()).run(&mut tx).await?;
        }
        self.write_positions(&mut tx, changes, now).await?;
        tx.commit().await?;
        Ok(Applied { received: changes.len(), applied })
    }

    /// `sql` (with a `Dialect::in_list` filter) and `values` as that filter's arguments.
    fn with_ids<'a>(&self, sql: String, values: impl IntoIterator<Item = &'a str>) -> Stmt {
        Stmt { sql, args: self.dialect.ids(values) }
    }

    /// What is projected for `ids` (all orders when `None`), and which rows hold it.
    async fn load(&self, conn: &mut Tx, ids: Option<&[OrderId]>) -> Result<Loaded> {
        let d = self.dialect;
        // Order rows without their lines yet.
        struct Header {
            status: OrderStatus,
            order_date: DateTime<Utc>,
            version: Version,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }
        let mut headers: BTreeMap<OrderId, Header> = BTreeMap::new();
        let mut lines: BTreeMap<OrderId, Vec<OrderLine>> = BTreeMap::new();
        let mut tombstones: BTreeMap<OrderId, Revision> = BTreeMap::new();
        // Each statement reads the rows of `ids` (or all of them), a chunk of ids at a time.
        let chunked = |ids: Option<&[&OrderId]>, sql: &dyn Fn(&str) -> String| -> Vec<Stmt> {
            match ids {
                Some(ids) => id_chunks(self.dialect, self.mysql_statement_limit, ids)
                    .into_iter()
                    .map(|chunk| {
                        let filter = format!(" WHERE {}", self.dialect.in_list("orderid", chunk.len()));
                        self.with_ids(sql(&filter), chunk.iter().map(|id| id.as_str()))
                    })
                    .collect(),
                None => vec![Stmt::new(sql(""))],
            }
        };
        let all_ids: Option<Vec<&OrderId>> = ids.map(|ids| ids.iter().collect());
        let header_sql = |filter: &str| {
            format!(
                "SELECT orderid, orderstatus, {}, version, {}, {} FROM orders{filter}",
                d.time_out("orderdate"),
                d.time_out("created_at"),
                d.time_out("updated_at"),
            )
        };
        for stmt in chunked(all_ids.as_deref(), &header_sql) {
            for r in stmt.fetch(conn).await? {
                let id = order_id(&get_text(&r, 0)?)?;
                let status = OrderStatus::parse(&get_text(&r, 1)?).ok_or_else(|| corrupt("order status"))?;
                let header = Header {
                    status,
                    order_date: get_time(&r, 2)?,
                    version: version(r.int(3)?)?,
                    created_at: get_time(&r, 4)?,
                    updated_at: get_time(&r, 5)?,
                };
                headers.insert(id, header);
            }
        }
        let tombstone_sql = |filter: &str| {
            format!("SELECT orderid, {}, version FROM order_tombstones{filter}", d.time_out("created_at"))
        };
        for stmt in chunked(all_ids.as_deref(), &tombstone_sql) {
            for r in stmt.fetch(conn).await? {
                tombstones.insert(
                    order_id(&get_text(&r, 0)?)?,
                    Revision { created_at: get_time(&r, 1)?, version: version(r.int(2)?)? },
                );
            }
        }
        // Lines only of the orders that have a row: an order's lines are written and removed with its row.
        let with_row: Option<Vec<&OrderId>> = ids.map(|_| headers.keys().collect());
        let line_sql = |filter: &str| {
            format!(
                "SELECT orderid, itemid, quantity, {} FROM orderitems{filter} ORDER BY orderid, itemid",
                d.decimal_out("unitprice")
            )
        };
        if with_row.as_ref().is_none_or(|ids| !ids.is_empty()) {
            for stmt in chunked(with_row.as_deref(), &line_sql) {
                for r in stmt.fetch(conn).await? {
                    let qty: i64 = r.int(2)?;
                    let price = get_opt_decimal(&r, 3)?
                        .map(|d| UnitPrice::new(d).map_err(|_| corrupt(format!("unit price {d}"))))
                        .transpose()?;
                    lines.entry(order_id(&get_text(&r, 0)?)?).or_default().push(OrderLine {
                        itemid: item_id(&get_text(&r, 1)?)?,
                        quantity: u32::try_from(qty).ok().and_then(Quantity::new).ok_or_else(|| corrupt("quantity"))?,
                        unit_price: price,
                    });
                }
            }
        }
        let stored =
            Stored { rows: headers.keys().cloned().collect(), tombstones: tombstones.keys().cloned().collect() };
        let mut states = BTreeMap::new();
        for (id, h) in headers {
            let order_lines = lines.remove(&id).ok_or_else(|| corrupt(format!("order {id} has no lines")))?;
            let items = Lines::new(order_lines).map_err(|e| corrupt(format!("order {id}: {e}")))?;
            let order = Order {
                order_id: id.clone(),
                items,
                status: h.status,
                order_date: h.order_date,
                version: h.version,
                created_at: h.created_at,
                updated_at: h.updated_at,
            };
            states.insert(id, Projected::Live(order));
        }
        for (id, revision) in tombstones {
            let removed = Projected::Removed { order_id: id.clone(), revision };
            // Both only if a write was interrupted mid-way in an older release; the later one is the truth.
            if states.get(&id).is_none_or(|live| live.rank() < removed.rank()) {
                states.insert(id, removed);
            }
        }
        Ok(Loaded { states, stored })
    }

    async fn delete_in(&self, conn: &mut Tx, table: &str, ids: &[&OrderId]) -> Result<()> {
        for chunk in id_chunks(self.dialect, self.mysql_statement_limit, ids) {
            let sql = format!("DELETE FROM {table} WHERE {}", self.dialect.in_list("orderid", chunk.len()));
            self.with_ids(sql, chunk.iter().map(|id| id.as_str())).run(conn).await?;
        }
        Ok(())
    }

    /// Sends `rows` as a multi-row INSERT (`VALUES`, or `UNNEST` arrays on PostgreSQL); on MySQL, with literals,
    /// as many statements as keep each within `mysql_statement_limit`.
    async fn insert(&self, conn: &mut Tx, rows: RowSet, head: &str, tail: &str) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.dialect == Dialect::MySql {
            for sql in rows.mysql_literal_statements(head, tail, self.mysql_statement_limit) {
                Stmt::new(sql).run(conn).await?;
            }
            return Ok(());
        }
        let (sql, args) = rows.statement(self.dialect, head, tail).map_err(corrupt)?;
        Stmt { sql, args }.run(conn).await?;
        Ok(())
    }

    async fn write_orders(
        &self,
        conn: &mut Tx,
        states: &BTreeMap<OrderId, Projected>,
        stored: &Stored,
        touched: &BTreeSet<OrderId>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let d = self.dialect;
        let mut live: Vec<&Order> = Vec::new();
        let mut removed: Vec<(&OrderId, Revision)> = Vec::new();
        for id in touched {
            match states.get(id) {
                Some(Projected::Live(o)) => live.push(o),
                Some(Projected::Removed { revision, .. }) => removed.push((id, *revision)),
                None => return Err(corrupt(format!("touched order {id} has no state"))),
            }
        }
        // Lines are replaced wholesale: an order's lines are whatever its newest state says. Only orders that
        // had a row have lines to delete (new orders, the bulk of a stream, have none).
        let had_row: Vec<&OrderId> = touched.iter().filter(|id| stored.rows.contains(*id)).collect();
        self.delete_in(conn, "orderitems", &had_row).await?;
        let time = |at: &DateTime<Utc>| Val::Time(*at);
        // Orders with a row are overwritten; the others are plain inserts (an upsert's conflict check cost
        // PostgreSQL ~40 % more per row), which fail if a row appeared meanwhile, and the batch is retried.
        let (existing, new): (Vec<&Order>, Vec<&Order>) = live.iter().partition(|o| stored.rows.contains(&o.order_id));
        let upsert = d.upsert(
            &["orderid"],
            &["orderstatus", "orderdate", "sale_month", "version", "created_at", "updated_at", "projected_at"],
        );
        for (orders, tail) in [(new, ""), (existing, upsert.as_str())] {
            for chunk in orders.chunks(CHUNK) {
                let mut rows = RowSet::new(&[
                    Col::Text,
                    Col::Text,
                    Col::Time,
                    Col::Text,
                    Col::Int,
                    Col::Time,
                    Col::Time,
                    Col::Time,
                ]);
                for o in chunk {
                    rows.push(vec![
                        Val::Text(o.order_id.to_string()),
                        Val::Text(o.status.as_str().to_owned()),
                        time(&o.order_date),
                        Val::Text(SaleMonth::of(o.order_date).as_str().to_owned()),
                        Val::Int(int(o.version.get())),
                        time(&o.created_at),
                        time(&o.updated_at),
                        Val::Time(now),
                    ]);
                }
                let head = "INSERT INTO orders (orderid, orderstatus, orderdate, sale_month, version, created_at, updated_at, projected_at)";
                self.insert(conn, rows, head, tail).await?;
            }
        }
        let all_lines: Vec<(&OrderId, &OrderLine)> =
            live.iter().flat_map(|o| o.items.as_slice().iter().map(move |l| (&o.order_id, l))).collect();
        for chunk in all_lines.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Int, Col::Decimal]);
            for (id, l) in chunk {
                rows.push(vec![
                    Val::Text(id.to_string()),
                    Val::Text(l.itemid.to_string()),
                    Val::Int(i64::from(l.quantity.get())),
                    l.unit_price.map(|p| Val::Decimal(p.get())).unwrap_or(Val::Null),
                ]);
            }
            self.insert(conn, rows, "INSERT INTO orderitems (orderid, itemid, quantity, unitprice)", "").await?;
        }
        let revived: Vec<&OrderId> =
            live.iter().map(|o| &o.order_id).filter(|id| stored.tombstones.contains(*id)).collect();
        self.delete_in(conn, "order_tombstones", &revived).await?;
        let removed_rows: Vec<&OrderId> =
            removed.iter().map(|(id, _)| *id).filter(|id| stored.rows.contains(*id)).collect();
        self.delete_in(conn, "orders", &removed_rows).await?;
        for chunk in removed.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Time, Col::Int, Col::Time]);
            for (id, rev) in chunk {
                rows.push(vec![
                    Val::Text(id.to_string()),
                    time(&rev.created_at),
                    Val::Int(int(rev.version.get())),
                    Val::Time(now),
                ]);
            }
            let tail = d.upsert(&["orderid"], &["created_at", "version", "removed_at"]);
            self.insert(conn, rows, "INSERT INTO order_tombstones (orderid, created_at, version, removed_at)", &tail)
                .await?;
        }
        Ok(())
    }

    /// The per-item totals. Where the backend has exact decimals, each delta is added by one atomic upsert;
    /// otherwise (SQLite, a single writer) rows are read, recomputed here with exact decimals and written back.
    /// Either way, an item whose latest contribution went away gets its last order date recomputed from the lines,
    /// and items no order counts any more are deleted.
    async fn write_item_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        if deltas.items.is_empty() {
            return Ok(());
        }
        match self.dialect.add_item_totals() {
            Some(tail) => self.add_item_totals(conn, deltas, tail).await,
            None => self.rewrite_item_totals(conn, deltas).await,
        }
    }

    async fn add_item_totals(&self, conn: &mut Tx, deltas: &Deltas, tail: &str) -> Result<()> {
        let recheck: Vec<&ItemId> = deltas.items.iter().filter(|(_, d)| d.recheck_last_date).map(|(i, _)| i).collect();
        let entries: Vec<(&ItemId, &domain::projection::ItemDelta)> = deltas.items.iter().collect();
        for chunk in entries.chunks(CHUNK) {
            let mut rows = RowSet::new(&ITEM_COLS);
            for (item, delta) in chunk {
                rows.push(vec![
                    Val::Text(item.to_string()),
                    Val::Int(delta.quantity),
                    Val::Decimal(delta.revenue.normalize()),
                    Val::Int(delta.priced_quantity),
                    Val::Int(delta.orders),
                    delta.latest_added.map(Val::Time).unwrap_or(Val::Null),
                ]);
            }
            self.insert(conn, rows, ITEM_HEAD, tail).await?;
        }
        if self.dialect == Dialect::MySql {
            // Not InnoDB's UPDATE with a subquery, as PostgreSQL does below: InnoDB reads the lines for it with
            // shared locks while this transaction holds the totals' rows, and a concurrent consumer holding new
            // lines of the same items and waiting for those rows made that a deadlock (the two-consumer test: one
            // small batch in six). A plain read at READ COMMITTED (`Pool::begin_write`) sees every transaction
            // that committed before it; one that has not yet committed lines of these items cannot commit before
            // this one (it waits for the totals' rows held here) and then folds its own dates in.
            let dates = self.latest_order_dates(conn, &recheck).await?;
            // The rows exist (the increments above made them): only their last order date is replaced.
            for chunk in recheck.chunks(CHUNK) {
                let mut rows = RowSet::new(&ITEM_COLS);
                for item in chunk {
                    rows.push(vec![
                        Val::Text(item.to_string()),
                        Val::Int(0),
                        Val::Decimal(Decimal::ZERO),
                        Val::Int(0),
                        Val::Int(0),
                        dates.get(*item).copied().map(Val::Time).unwrap_or(Val::Null),
                    ]);
                }
                self.insert(conn, rows, ITEM_HEAD, &self.dialect.upsert(&["itemid"], &["lastorderdate"])).await?;
            }
        } else {
            // PostgreSQL's subquery reads the statement's snapshot, without locks: the same reasoning holds.
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &recheck) {
                let sql = format!(
                    "UPDATE item_sales SET lastorderdate = (SELECT MAX(o.orderdate) FROM orderitems i \
                     JOIN orders o ON o.orderid = i.orderid WHERE i.itemid = item_sales.itemid \
                     AND o.orderstatus = 'created') WHERE {}",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        // Only where a contribution went away can a total have shrunk, to zero or (corrupt) below.
        if !recheck.is_empty() {
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &recheck) {
                let check = format!(
                    "SELECT itemid, totalordered, ordercount, pricedordered FROM item_sales WHERE {} \
                     AND (ordercount < 0 OR totalordered < 0 OR (ordercount = 0 AND totalordered <> 0) \
                     OR (ordercount <> 0 AND totalordered = 0) OR pricedordered < 0 OR pricedordered > totalordered)",
                    self.dialect.in_list("itemid", chunk.len())
                );
                if let Some(r) = self.with_ids(check, chunk.iter().map(|i| i.as_str())).fetch(conn).await?.first() {
                    let (q, n, p): (i64, i64, i64) = (r.int(1)?, r.int(2)?, r.int(3)?);
                    let item = get_text(r, 0)?;
                    return Err(corrupt(format!("item {item} would reach quantity {q} ({p} priced) over {n} orders")));
                }
                let sql = format!(
                    "DELETE FROM item_sales WHERE {} AND ordercount = 0",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        Ok(())
    }

    /// The latest order date among the counted orders of each of `items`, as now written (an item nothing counts
    /// for any more has none).
    async fn latest_order_dates(&self, conn: &mut Tx, items: &[&ItemId]) -> Result<BTreeMap<ItemId, DateTime<Utc>>> {
        let d = self.dialect;
        let mut dates = BTreeMap::new();
        for chunk in id_chunks(self.dialect, self.mysql_statement_limit, items) {
            let sql = format!(
                "SELECT i.itemid, {} FROM orderitems i JOIN orders o ON o.orderid = i.orderid \
                 WHERE {} AND o.orderstatus = 'created' GROUP BY i.itemid",
                d.time_out("MAX(o.orderdate)"),
                d.in_list("i.itemid", chunk.len()),
            );
            for r in self.with_ids(sql, chunk.iter().map(|i| i.as_str())).fetch(conn).await? {
                dates.insert(item_id(&get_text(&r, 0)?)?, get_time(&r, 1)?);
            }
        }
        Ok(dates)
    }

    async fn rewrite_item_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        let d = self.dialect;
        let items: Vec<&ItemId> = deltas.items.keys().collect();
        let mut current: BTreeMap<ItemId, ItemTotals> = BTreeMap::new();
        for chunk in items.chunks(CHUNK) {
            let mut zeros = RowSet::new(&ITEM_COLS);
            for i in chunk {
                zeros.push(vec![
                    Val::Text(i.to_string()),
                    Val::Int(0),
                    Val::Decimal(Decimal::ZERO),
                    Val::Int(0),
                    Val::Int(0),
                    Val::Null,
                ]);
            }
            self.insert(conn, zeros, ITEM_HEAD, &d.skip_existing(&["itemid"])).await?;
            let select = format!(
                "SELECT {} FROM item_sales WHERE {} ORDER BY itemid{}",
                item_totals_columns(d),
                self.dialect.in_list("itemid", chunk.len()),
                d.for_update()
            );
            for r in self.with_ids(select, chunk.iter().map(|i| i.as_str())).fetch(conn).await? {
                let (item, totals) = item_totals_of(&r)?;
                current.insert(item, totals);
            }
        }
        // Where an order stopped counting, the last order date is recomputed from the lines as now written.
        let recheck: Vec<&ItemId> = deltas.items.iter().filter(|(_, d)| d.recheck_last_date).map(|(i, _)| i).collect();
        let recomputed = self.latest_order_dates(conn, &recheck).await?;
        let mut rows = RowSet::new(&ITEM_COLS);
        let mut emptied = false;
        for (item, delta) in &deltas.items {
            let old = current.get(item).ok_or_else(|| corrupt(format!("item_sales row for {item} vanished")))?;
            let new = ItemTotals {
                quantity: old.quantity + delta.quantity,
                revenue: old.revenue + delta.revenue,
                priced_quantity: old.priced_quantity + delta.priced_quantity,
                orders: old.orders + delta.orders,
                last_order_date: if delta.recheck_last_date {
                    recomputed.get(item).copied()
                } else {
                    old.last_order_date.max(delta.latest_added)
                },
            };
            if new.orders < 0
                || new.quantity < 0
                || (new.orders == 0) != (new.quantity == 0)
                || !(0..=new.quantity).contains(&new.priced_quantity)
            {
                return Err(corrupt(format!("item {item} would reach {new:?}")));
            }
            emptied |= new.orders == 0;
            rows.push(vec![
                Val::Text(item.to_string()),
                Val::Int(new.quantity),
                Val::Decimal(new.revenue.normalize()),
                Val::Int(new.priced_quantity),
                Val::Int(new.orders),
                new.last_order_date.map(Val::Time).unwrap_or(Val::Null),
            ]);
        }
        let tail =
            d.upsert(&["itemid"], &["totalordered", "totalrevenue", "pricedordered", "ordercount", "lastorderdate"]);
        self.insert(conn, rows, ITEM_HEAD, &tail).await?;
        if emptied {
            for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &items) {
                let sql = format!(
                    "DELETE FROM item_sales WHERE {} AND ordercount = 0",
                    self.dialect.in_list("itemid", chunk.len())
                );
                self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
            }
        }
        Ok(())
    }

    /// Month totals are integers: each delta is added by an atomic upsert (no read, no lock beyond the rows
    /// written). Where a total shrank it is checked afterwards; a negative one fails the batch. (A CHECK constraint
    /// cannot do this: databases test it on the proposed row, the delta itself, before resolving the conflict.)
    async fn write_month_totals(&self, conn: &mut Tx, deltas: &Deltas) -> Result<()> {
        let d = self.dialect;
        let months: Vec<(&(ItemId, SaleMonth), &i64)> = deltas.months.iter().collect();
        for chunk in months.chunks(CHUNK) {
            let mut rows = RowSet::new(&[Col::Text, Col::Text, Col::Int]);
            for ((item, month), delta) in chunk {
                rows.push(vec![Val::Text(item.to_string()), Val::Text(month.as_str().to_owned()), Val::Int(**delta)]);
            }
            let tail = d.increment("item_monthly_sales", &["itemid", "sale_month"], "monthlyordered");
            self.insert(conn, rows, "INSERT INTO item_monthly_sales (itemid, sale_month, monthlyordered)", &tail)
                .await?;
        }
        // Months nothing counts in any more are removed, as a GROUP BY would not show them.
        let shrunk: Vec<&ItemId> =
            months.iter().filter(|(_, q)| **q < 0).map(|((i, _), _)| i).collect::<BTreeSet<_>>().into_iter().collect();
        for chunk in id_chunks(self.dialect, self.mysql_statement_limit, &shrunk) {
            let check = format!(
                "SELECT itemid, sale_month, monthlyordered FROM item_monthly_sales WHERE {} AND monthlyordered < 0",
                self.dialect.in_list("itemid", chunk.len())
            );
            if let Some(r) = self.with_ids(check, chunk.iter().map(|i| i.as_str())).fetch(conn).await?.first() {
                let n: i64 = r.int(2)?;
                return Err(corrupt(format!("{} {} would reach {n}", get_text(r, 0)?, get_text(r, 1)?)));
            }
            let sql = format!(
                "DELETE FROM item_monthly_sales WHERE {} AND monthlyordered = 0",
                self.dialect.in_list("itemid", chunk.len())
            );
            self.with_ids(sql, chunk.iter().map(|i| i.as_str())).run(conn).await?;
        }
        Ok(())
    }

    /// Moves each source's position forward to the newest change of the batch (never backwards on a replay).
    async fn write_positions(&self, conn: &mut Tx, changes: &[OrderChange], now: DateTime<Utc>) -> Result<()> {
        let mut newest: BTreeMap<&str, &OrderChange> = BTreeMap::new();
        for c in changes {
            let e = newest.entry(c.position().source.as_str()).or_insert(c);
            if c.position().sequence > e.position().sequence {
                *e = c;
            }
        }
        let rows: Vec<(&str, &Sequence, DateTime<Utc>)> =
            newest.into_iter().map(|(source, c)| (source, &c.position().sequence, c.changed_at())).collect();
        self.write_position_rows(conn, &rows, now).await
    }

    /// True when nothing was ever projected (no orders, tombstones or positions).
    pub async fn is_empty(&self) -> Result<bool> {
        let mut conn = self.pool.begin().await?;
        let mut empty = true;
        for table in ["orders", "order_tombstones", "projection_positions"] {
            let rows = Stmt::new(format!("SELECT COUNT(*) FROM {table}")).fetch(&mut conn).await?;
            empty &= rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) == 0;
        }
        conn.commit().await?;
        Ok(empty)
    }

    /// The last applied position of `source` and the time of that change.
    pub async fn position(&self, source: &str) -> Result<Option<(Sequence, DateTime<Utc>)>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT sequence, {} FROM projection_positions WHERE source = {}",
            d.time_out("last_changed_at"),
            d.param(1, Col::Text)
        );
        let mut conn = self.pool.read().await?;
        let rows = Stmt::new(sql).text(source).fetch(&mut conn).await?;
        rows.first()
            .map(|r| {
                let seq = get_text(r, 0)?;
                Ok((Sequence::parse(&seq).ok_or_else(|| corrupt(format!("sequence {seq:?}")))?, get_time(r, 1)?))
            })
            .transpose()
    }

    /// The whole read model, decoded.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let d = self.dialect;
        let mut conn = self.pool.begin().await?;
        let mut snap = Snapshot::default();
        for (id, state) in self.load(&mut conn, None).await?.states {
            match state {
                Projected::Live(o) => {
                    snap.orders.insert(id, o);
                }
                Projected::Removed { revision, .. } => {
                    snap.tombstones.insert(id, revision);
                }
            }
        }
        for r in Stmt::new(format!("SELECT {} FROM item_sales", item_totals_columns(d))).fetch(&mut conn).await? {
            let (item, totals) = item_totals_of(&r)?;
            snap.items.insert(item, totals);
        }
        for r in Stmt::new("SELECT itemid, sale_month, monthlyordered FROM item_monthly_sales".into())
            .fetch(&mut conn)
            .await?
        {
            let month = SaleMonth::parse(get_text(&r, 1)?.trim()).ok_or_else(|| corrupt("sale month"))?;
            snap.months.insert((item_id(&get_text(&r, 0)?)?, month), r.int(2)?);
        }
        let sql = format!("SELECT source, sequence, {} FROM projection_positions", d.time_out("last_changed_at"));
        for r in Stmt::new(sql).fetch(&mut conn).await? {
            let seq = get_text(&r, 1)?;
            snap.positions.insert(
                get_text(&r, 0)?,
                (Sequence::parse(&seq).ok_or_else(|| corrupt("sequence"))?, get_time(&r, 2)?),
            );
        }
        conn.commit().await?;
        Ok(snap)
    }
}
