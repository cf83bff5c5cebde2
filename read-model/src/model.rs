//! The relational read model: `orders` / `orderitems` (the sample's names), tombstones, the report
//! aggregates and the projection positions. `apply` runs one batch of changes in one transaction: it loads what
//! is projected for the batch's orders, folds the changes through `domain::projection` (version guard, deltas),
//! and writes the outcome with a handful of multi-row statements, whatever the batch size.
//!
//! Here: the connection, migrations, snapshots and positions. Beside it: `apply` (one batch), `totals` (the report
//! aggregates, by deltas), `reports` (the reads), `health` (dead letters and backlogs), `logins` (database roles)
//! and `migrations` (compiled in).

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

mod apply;
mod health;
mod logins;
mod migrations;
mod rebuild;
mod report_rows;
mod reports;
mod totals;
use crate::dialect::Dialect;
use crate::mysql_text::{MYSQL_STATEMENT_LIMIT, mysql_text_len};
use crate::rowset::RowSet;
use crate::value::{Col, Val};
use migrations::migrator;
use totals::{item_totals_columns, item_totals_of};

pub use health::{Backlog, DeadLetter, DeadLetters};
pub use logins::{DbRole, LoginAuth};
use rebuild::{MONTHS_GROUPED, grouped_revenue, item_totals_grouped};
pub use rebuild::{Rebuild, Rebuilt, SnapshotPosition, Target, report_inserts};
use report_rows::CursorValue;
pub use report_rows::{
    Cursor, Epoch, ItemPage, ItemQuery, ItemRow, ItemSort, MonthRow, PositionRow, ProjectedVersion, ReadAt,
};
pub use reports::Grouped;

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

    /// `sql` (with a `Dialect::in_list` filter) and `values` as that filter's arguments.
    fn with_ids<'a>(&self, sql: String, values: impl IntoIterator<Item = &'a str>) -> Stmt {
        Stmt { sql, args: self.dialect.ids(values) }
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
