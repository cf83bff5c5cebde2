//! The read model's connection pool, native per backend (sqlx's `Any` driver takes its options from the URL alone,
//! and RDS Proxy's MySQL IAM needs options no URL carries: the cleartext plugin, and no session `SET`s). Statements
//! bind text and integers, and on PostgreSQL also whole columns as binary arrays; rows come back as text, integers
//! or NULL, which is all the projection reads, and on PostgreSQL also as times and decimals, decoded from the
//! binary values it sends (no conversion in SQL). On MySQL nothing is prepared: RDS Proxy pins the session of any
//! prepared statement, binary protocol or not, so statements go out as text with their arguments written in as
//! literals (`mysql_text_statement`).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use rust_decimal::Decimal;
use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::{PgConnectOptions, PgRow, PgValueFormat};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    AssertSqlSafe, Column, ColumnIndex, Connection, Database, Decode, Executor, MySql, MySqlPool, PgPool, Postgres,
    Row, Sqlite, SqlitePool, Type, TypeInfo, ValueRef,
};

use crate::dialect::{Dialect, MYSQL_STATEMENT_LIMIT, push_mysql_text};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    /// PostgreSQL only: a column of values as one binary array parameter (`UNNEST` inserts, `= ANY` filters).
    Array(Array),
}

/// A column of values for one PostgreSQL array parameter, sent in binary: the server parses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Time(Vec<Option<PgTime>>),
}

/// A PostgreSQL TIMESTAMPTZ as its binary value: microseconds since 2000-01-01 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTime(i64);

impl PgTime {
    const UNIX_TO_2000_MICROS: i64 = 946_684_800_000_000;
    /// TIMESTAMPTZ and its array type, by their fixed OIDs (no lookup).
    const OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(1184);
    const ARRAY_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(1185);

    #[cfg(test)]
    pub fn from_micros(micros: i64) -> PgTime {
        PgTime(micros)
    }

    /// `at` to the millisecond, as every time the read model stores.
    pub fn new(at: &DateTime<Utc>) -> PgTime {
        PgTime(at.timestamp_millis().saturating_mul(1_000).saturating_sub(PgTime::UNIX_TO_2000_MICROS))
    }
}

impl Type<Postgres> for PgTime {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(PgTime::OID)
    }
}

impl sqlx::postgres::PgHasArrayType for PgTime {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(PgTime::ARRAY_OID)
    }
}

impl sqlx::Encode<'_, Postgres> for PgTime {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        buf.extend(&self.0.to_be_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// PostgreSQL's TIMESTAMPTZ.
    Time(DateTime<Utc>),
    /// PostgreSQL's NUMERIC.
    Decimal(Decimal),
}

/// One result row.
#[derive(Debug, Clone)]
pub struct DbRow(Vec<Cell>);

impl DbRow {
    pub fn cell(&self, i: usize) -> Result<&Cell, sqlx::Error> {
        self.0.get(i).ok_or_else(|| sqlx::Error::ColumnIndexOutOfBounds { index: i, len: self.0.len() })
    }

    fn mismatch(i: usize, want: &str, got: &Cell) -> sqlx::Error {
        sqlx::Error::ColumnDecode { index: i.to_string(), source: format!("expected {want}, found {got:?}").into() }
    }

    pub fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        match self.cell(i)? {
            Cell::Int(v) => Ok(*v),
            other => Err(DbRow::mismatch(i, "an integer", other)),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        match self.cell(i)? {
            Cell::Text(s) => Ok(s.clone()),
            other => Err(DbRow::mismatch(i, "text", other)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Column `i` as an integer where its type is one (of any width), else as text.
    fn plain_cell<'r, R: Row>(row: &'r R, i: usize) -> Result<Cell, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        i64: Type<R::Database> + Decode<'r, R::Database>,
        i32: Type<R::Database> + Decode<'r, R::Database>,
        String: Type<R::Database> + Decode<'r, R::Database>,
    {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        // The value's own type where the backend has one per value (SQLite), else the column's.
        let integer = raw.type_info().name().contains("INT") || row.columns()[i].type_info().name().contains("INT");
        if !integer {
            return row.try_get::<String, _>(i).map(Cell::Text);
        }
        match row.try_get::<i64, _>(i) {
            Ok(v) => Ok(Cell::Int(v)),
            Err(_) => row.try_get::<i32, _>(i).map(|v| Cell::Int(i64::from(v))),
        }
    }

    fn pg_cell(row: &PgRow, i: usize, kind: PgKind) -> Result<Cell, sqlx::Error> {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        if raw.format() != PgValueFormat::Binary {
            return DbRow::plain_cell(row, i);
        }
        let decode = |e: String| sqlx::Error::ColumnDecode { index: i.to_string(), source: e.into() };
        let bytes = raw.as_bytes().map_err(|e| decode(e.to_string()))?;
        let int = |bytes: &[u8]| -> Result<i64, sqlx::Error> {
            match bytes.len() {
                8 => Ok(i64::from_be_bytes(bytes.try_into().map_err(|_| decode("INT8".into()))?)),
                4 => Ok(i64::from(i32::from_be_bytes(bytes.try_into().map_err(|_| decode("INT4".into()))?))),
                2 => Ok(i64::from(i16::from_be_bytes(bytes.try_into().map_err(|_| decode("INT2".into()))?))),
                n => Err(decode(format!("an integer of {n} bytes"))),
            }
        };
        Ok(match kind {
            PgKind::Int => Cell::Int(int(bytes)?),
            PgKind::Text => Cell::Text(std::str::from_utf8(bytes).map_err(|e| decode(e.to_string()))?.to_owned()),
            PgKind::Time => {
                Cell::Time(pg_time(int(bytes)?).ok_or_else(|| decode("an infinite or out-of-range time".into()))?)
            }
            PgKind::Decimal => Cell::Decimal(
                pg_numeric(bytes)
                    .ok_or_else(|| decode("a NUMERIC that is not a finite decimal of 28 digits".into()))?,
            ),
            PgKind::Other => return DbRow::plain_cell(row, i),
        })
    }
}

/// One result row where the backend left it, read column by column: for reads that map rows straight into their
/// own types, without a `DbRow` (a vector of cells) per row first.
pub enum RowRef<'r> {
    /// With each column's kind, looked at once per result.
    Pg(&'r PgRow, &'r [PgKind]),
    MySql(&'r MySqlRow),
    Sqlite(&'r SqliteRow),
}

impl RowRef<'_> {
    /// Column `i` as `DbRow` would hold it: on PostgreSQL decoded straight from the binary form the server sends
    /// (integers, text, TIMESTAMPTZ, NUMERIC); any other type, or a text-format value, as an integer or text.
    pub fn cell(&self, i: usize) -> Result<Cell, sqlx::Error> {
        match self {
            RowRef::Pg(row, kinds) => DbRow::pg_cell(row, i, kinds.get(i).copied().unwrap_or(PgKind::Other)),
            RowRef::MySql(row) => DbRow::plain_cell(*row, i),
            RowRef::Sqlite(row) => DbRow::plain_cell(*row, i),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RowRef::Pg(row, _) => row.len(),
            RowRef::MySql(row) => row.len(),
            RowRef::Sqlite(row) => row.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_db_row(&self) -> Result<DbRow, sqlx::Error> {
        (0..self.len()).map(|i| self.cell(i)).collect::<Result<_, _>>().map(DbRow)
    }
}

/// Each row of `rows` mapped by `f` as it arrives (no vector of backend rows held first), in order; the first error
/// ends it.
async fn map_rows<R, T, E: From<sqlx::Error>>(
    mut rows: BoxStream<'_, Result<R, sqlx::Error>>,
    mut f: impl FnMut(&R) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        out.push(f(&row)?);
    }
    Ok(out)
}

/// `map_rows` for PostgreSQL, each column's kind looked at once (on the first row).
async fn map_pg<T, E: From<sqlx::Error>>(
    rows: BoxStream<'_, Result<PgRow, sqlx::Error>>,
    mut f: impl FnMut(RowRef<'_>) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut kinds: Option<Vec<PgKind>> = None;
    map_rows(rows, |row: &PgRow| {
        let kinds =
            kinds.get_or_insert_with(|| row.columns().iter().map(|c| PgKind::of(c.type_info().name())).collect());
        f(RowRef::Pg(row, kinds))
    })
    .await
}

/// How a PostgreSQL column's binary values decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    Int,
    Text,
    Time,
    Decimal,
    Other,
}

impl PgKind {
    fn of(type_name: &str) -> PgKind {
        match type_name {
            "INT2" | "INT4" | "INT8" => PgKind::Int,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => PgKind::Text,
            "TIMESTAMPTZ" => PgKind::Time,
            "NUMERIC" => PgKind::Decimal,
            _ => PgKind::Other,
        }
    }
}

/// PostgreSQL's binary NUMERIC: digit count, weight, sign and display scale (each 16 bits), then base-10000
/// digits, the first worth 10000^weight; `None` for NaN, the infinities, and what `Decimal` cannot hold.
fn pg_numeric(bytes: &[u8]) -> Option<Decimal> {
    let word = |i: usize| bytes.get(2 * i..2 * i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (ndigits, weight, sign, scale) = (word(0)? as i16, word(1)? as i16, word(2)?, word(3)?);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let ndigits = usize::try_from(ndigits).ok()?;
    if bytes.len() != 8 + 2 * ndigits || scale > 28 {
        return None;
    }
    let mut mantissa: i128 = 0;
    for i in 0..ndigits {
        mantissa = mantissa.checked_mul(10_000)?.checked_add(i128::from(word(4 + i)?))?;
    }
    // mantissa x 10^-exponent is the value; bring it to `scale` digits after the point (digits past the display
    // scale are zeros, so the division is exact).
    let exponent = 4 * (ndigits as i64 - 1 - i64::from(weight));
    let shift = i64::from(scale) - exponent;
    let ten = |n: i64| 10i128.checked_pow(u32::try_from(n.unsigned_abs()).ok()?);
    mantissa = if shift >= 0 { mantissa.checked_mul(ten(shift)?)? } else { mantissa / ten(shift)? };
    Decimal::try_from_i128_with_scale(if negative { -mantissa } else { mantissa }, u32::from(scale)).ok()
}

/// PostgreSQL's binary TIMESTAMPTZ: microseconds since 2000-01-01 UTC; `None` for its infinities.
fn pg_time(micros: i64) -> Option<DateTime<Utc>> {
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    DateTime::from_timestamp_micros(micros.checked_add(PgTime::UNIX_TO_2000_MICROS)?)
}

/// `sqlx::query` on PostgreSQL with `$args` bound in order.
macro_rules! bound_pg {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<Postgres>(AssertSqlSafe($sql));
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::OptText(s) => q.bind(s.as_deref()),
                Arg::Int(i) => q.bind(*i),
                Arg::Array(Array::Text(v)) => q.bind(v),
                Arg::Array(Array::Int(v)) => q.bind(v),
                Arg::Array(Array::Time(v)) => q.bind(v),
            };
        }
        q
    }};
}

/// `sqlx::query` on database `$db` (MySQL or SQLite) with `$args` bound in order; arrays are PostgreSQL's only.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>(AssertSqlSafe($sql));
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::OptText(s) => q.bind(s.as_deref()),
                Arg::Int(i) => q.bind(*i),
                Arg::Array(_) => return Err(only_postgres().into()),
            };
        }
        q
    }};
}

fn only_postgres() -> sqlx::Error {
    sqlx::Error::Protocol("array parameters are bound on PostgreSQL only".into())
}

/// `sql` with each `?` placeholder replaced by the next of `args` as a MySQL literal (`push_mysql_text` for text,
/// digits for integers, `NULL`), for MySQL's text protocol. Placeholders are only looked for outside quoted
/// strings, quoted names and comments; a count of placeholders other than the arguments' is refused (a bug).
pub fn mysql_text_statement(sql: &str, args: &[Arg]) -> Result<String, sqlx::Error> {
    use std::fmt::Write;
    let mismatch = || sqlx::Error::Protocol(format!("{} arguments for the placeholders of: {sql}", args.len()));
    let mut out = String::with_capacity(sql.len() + args.len() * 16);
    let mut args = args.iter();
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                // To the closing quote; a doubled quote or (outside names) a backslash escapes what follows.
                i += 1;
                while i < bytes.len() {
                    let escaped = bytes[i] == b'\\' && quote != b'`';
                    if escaped || (bytes[i] == quote && bytes.get(i + 1) == Some(&quote)) {
                        i += 2;
                    } else if bytes[i] == quote {
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'#' => i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + n + 3),
            b'?' => {
                out.push_str(&sql[copied..i]);
                copied = i + 1;
                match args.next().ok_or_else(mismatch)? {
                    Arg::Text(t) | Arg::OptText(Some(t)) => push_mysql_text(&mut out, t),
                    Arg::OptText(None) => out.push_str("NULL"),
                    // Writing to a String cannot fail.
                    Arg::Int(n) => {
                        let _ = write!(out, "{n}");
                    }
                    Arg::Array(_) => return Err(only_postgres()),
                }
            }
            _ => {}
        }
        i += 1;
    }
    if args.next().is_some() {
        return Err(mismatch());
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok(out)
}

/// The longest statement sent to MySQL by this process (see `longest_mysql_statement`).
static LONGEST_MYSQL_STATEMENT: AtomicUsize = AtomicUsize::new(0);

/// The length in bytes of the longest statement this process has sent to MySQL: the projection keeps every one
/// within its read model's limit, `MYSQL_STATEMENT_LIMIT` unless raised (tests check it after whole batches).
pub fn longest_mysql_statement() -> usize {
    LONGEST_MYSQL_STATEMENT.load(Ordering::Relaxed)
}

/// `sql` as it goes to MySQL: counted, and the first that is long enough for RDS Proxy to pin the session logged
/// (once: with `READ_MODEL_MAX_STATEMENT_BYTES` raised, every batch sends such statements on purpose).
fn to_mysql(sql: String) -> sqlx::RawSql {
    static WARNED: AtomicBool = AtomicBool::new(false);
    LONGEST_MYSQL_STATEMENT.fetch_max(sql.len(), Ordering::Relaxed);
    if sql.len() > MYSQL_STATEMENT_LIMIT && !WARNED.swap(true, Ordering::Relaxed) {
        let start = sql.get(..sql.len().min(60)).unwrap_or_default();
        tracing::warn!(
            bytes = sql.len(),
            sql = start,
            "statements over 16 KB are being sent to MySQL: RDS Proxy pins the sessions sending them (logged once)"
        );
    }
    sqlx::raw_sql(AssertSqlSafe(sql))
}

/// A pool of one backend, with the time limit every statement on its connections has.
#[derive(Debug, Clone)]
pub struct Pool {
    conns: Conns,
    statement_timeout: Duration,
}

#[derive(Debug, Clone)]
enum Conns {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// A connection of the pool, in a transaction (`Pool::begin*`) or not (`Pool::read`, for a read that is one
/// statement, a snapshot by itself, and needs no transaction's round trips). A transaction ends with `commit`.
/// Each statement has the pool's time limit. A `Tx` dropped in a transaction, or in the middle of a statement (a
/// time limit, a shutdown), closes its connection instead of handing it back: the server rolls back what it
/// holds, and nothing waits on a peer that may never answer again (sqlx would ping it first, with no limit).
pub struct Tx {
    conn: Conn,
    open: bool,
    in_flight: bool,
    statement_timeout: Duration,
}

enum Conn {
    Postgres(PoolConnection<Postgres>),
    MySql(PoolConnection<MySql>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open || self.in_flight {
            match &mut self.conn {
                Conn::Postgres(c) => c.close_on_drop(),
                Conn::MySql(c) => c.close_on_drop(),
                Conn::Sqlite(c) => c.close_on_drop(),
            }
        }
    }
}

/// How to reach the database beyond what the URL says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The URL's own credentials.
    Url,
    /// The password is an RDS IAM token, to RDS Proxy: on MySQL this needs the cleartext plugin (only ever over
    /// TLS, which the URL must require) and no session `SET` at connect, which would pin proxy sessions.
    RdsIam,
}

/// How long a connection may take to be had (connecting included) before the caller hears the database is
/// unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one statement may take by default (`Pool::with_statement_timeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every pool shares: a bounded wait for a connection, and idle ones closed before RDS Proxy closes them.
fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT).idle_timeout(Some(Duration::from_secs(120)))
}

/// How long a connection may sit idle and still be handed out without a ping first.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A database server's pool: four connections with TCP_NODELAY and keepalives on their sockets
/// (`crate::sockets`). sqlx pings each connection as it comes back to the pool (a broken one is closed there); one
/// idle for `PING_IF_IDLE_FOR` or longer, which a proxy or a restart may have closed meanwhile, is pinged again
/// before use (and replaced if that fails). Pinging on every acquire instead would add a round trip to every
/// request.
fn server_options<DB: Database>() -> PoolOptions<DB> {
    pool_options()
        .max_connections(4)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    // A peer gone silent must not hold up the acquire: the pool's own timeout counts only the wait.
                    match tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await {
                        Ok(pinged) => pinged?,
                        Err(_) => return Ok(false),
                    }
                }
                Ok(true)
            })
        })
        .after_connect(|_, _| {
            Box::pin(async {
                crate::sockets::set_on_tcp_sockets();
                Ok(())
            })
        })
}

/// MySQL options for `url`; for RDS IAM, with the cleartext plugin (refused unless TLS is required) and without
/// the session `SET`s sqlx sends by default (statements must not rely on them: times are written and read as
/// explicit UTC text, strings are joined with `CONCAT`).
pub fn mysql_options(url: &str, mode: Mode) -> Result<MySqlConnectOptions, sqlx::Error> {
    let options = MySqlConnectOptions::from_str(url)?;
    Ok(match mode {
        Mode::Url => options,
        Mode::RdsIam => {
            // The same rule start-up applies (`rds::check_url`), here where the plugin is switched on.
            let parsed = url::Url::parse(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
            crate::rds::check_url(&parsed, Dialect::MySql).map_err(|e| sqlx::Error::Configuration(e.into()))?;
            options
                .enable_cleartext_plugin(true)
                .pipes_as_concat(false)
                .no_engine_substitution(false)
                .timezone(None)
                .set_names(false)
        }
    })
}

/// The error a statement past its time limit ends with.
fn timed_out(limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the database did not answer within {} s", limit.as_secs()),
    ))
}

impl Pool {
    /// A lazily connecting pool for `url`, replacing broken connections (RDS Proxy closes idle ones).
    pub fn connect_lazy(dialect: Dialect, url: &str, mode: Mode) -> Result<Pool, sqlx::Error> {
        let conns = match dialect {
            Dialect::Postgres => Conns::Postgres(server_options().connect_lazy_with(PgConnectOptions::from_str(url)?)),
            Dialect::MySql => Conns::MySql(server_options().connect_lazy_with(mysql_options(url, mode)?)),
            // One writer: SQLite serialises writes anyway, and one connection never waits on itself.
            Dialect::Sqlite => Conns::Sqlite(
                pool_options::<Sqlite>()
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 5000",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_lazy_with(SqliteConnectOptions::from_str(url)?),
            ),
        };
        Ok(Pool { conns, statement_timeout: STATEMENT_TIMEOUT })
    }

    /// Each statement may take `limit` (a bulk load's statements take longer than a batch's).
    pub fn with_statement_timeout(mut self, limit: Duration) -> Pool {
        self.statement_timeout = limit;
        self
    }

    /// New connections from now on use `url` (a fresh IAM token); open ones keep theirs.
    pub fn set_url(&self, url: &str, mode: Mode) -> Result<(), sqlx::Error> {
        match &self.conns {
            Conns::Postgres(p) => p.set_connect_options(PgConnectOptions::from_str(url)?),
            Conns::MySql(p) => p.set_connect_options(mysql_options(url, mode)?),
            Conns::Sqlite(p) => p.set_connect_options(SqliteConnectOptions::from_str(url)?),
        }
        Ok(())
    }

    /// A connection of the pool, outside any transaction.
    async fn acquire(&self) -> Result<Tx, sqlx::Error> {
        let conn = match &self.conns {
            Conns::Postgres(p) => Conn::Postgres(p.acquire().await?),
            Conns::MySql(p) => Conn::MySql(p.acquire().await?),
            Conns::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
        };
        Ok(Tx { conn, open: false, in_flight: false, statement_timeout: self.statement_timeout })
    }

    /// A connection in a transaction begun with `begin` (as text: nothing is prepared).
    async fn begin_with(&self, begin: &'static str) -> Result<Tx, sqlx::Error> {
        let mut tx = self.acquire().await?;
        tx.open = true;
        tx.execute_raw(begin).await?;
        Ok(tx)
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    /// A transaction that writes projected changes. On MySQL it runs at READ COMMITTED: each read then sees what
    /// committed before it, as on PostgreSQL, and InnoDB takes no gap locks for it, so consumers applying other
    /// orders at the same time (shards, or Lambda's `ParallelizationFactor`) meet only on the totals' rows, which
    /// every batch locks in one order, and then on the epoch and position rows. The level is set for the session
    /// (`mysql_begin`): RDS Proxy tracks a session's isolation level, but pins the session of a `SET TRANSACTION`
    /// for the next transaction only.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match &self.conns {
            Conns::MySql(_) => self.mysql_begin("READ COMMITTED").await,
            _ => self.begin().await,
        }
    }

    /// A read-only transaction whose reads all see one snapshot: REPEATABLE READ, on PostgreSQL set by its `BEGIN`
    /// (RDS Proxy pins a PostgreSQL session on any `SET`), on MySQL for the session as `begin_write` does; SQLite
    /// reads one WAL snapshot.
    pub async fn begin_snapshot(&self) -> Result<Tx, sqlx::Error> {
        match &self.conns {
            Conns::Postgres(_) => self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await,
            Conns::MySql(_) => self.mysql_begin("REPEATABLE READ").await,
            Conns::Sqlite(_) => self.begin().await,
        }
    }

    /// A transaction on a connection whose session is first set to `level` (a statement of its own: one round trip
    /// more, and nothing for a proxy to parse out of a multi-statement text).
    async fn mysql_begin(&self, level: &'static str) -> Result<Tx, sqlx::Error> {
        let mut tx = self.acquire().await?;
        tx.execute_raw(&format!("SET SESSION TRANSACTION ISOLATION LEVEL {level}")).await?;
        tx.open = true;
        tx.execute_raw("BEGIN").await?;
        Ok(tx)
    }

    /// A connection for single-statement reads.
    pub async fn read(&self) -> Result<Tx, sqlx::Error> {
        self.acquire().await
    }

    pub async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.conns {
            Conns::Postgres(p) => migrator.run(p).await,
            Conns::MySql(p) => migrator.run(p).await,
            Conns::Sqlite(p) => migrator.run(p).await,
        }
    }

    pub async fn close(&self) {
        match &self.conns {
            Conns::Postgres(p) => p.close().await,
            Conns::MySql(p) => p.close().await,
            Conns::Sqlite(p) => p.close().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match &self.conns {
            Conns::Postgres(p) => p.is_closed(),
            Conns::MySql(p) => p.is_closed(),
            Conns::Sqlite(p) => p.is_closed(),
        }
    }
}

impl Tx {
    /// `work` on this connection within the statement time limit, marked in flight until it is done: if it is
    /// abandoned, the connection is closed on drop.
    async fn limited<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut Conn) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let limit = self.statement_timeout;
        self.in_flight = true;
        let done = tokio::time::timeout(limit, work(&mut self.conn)).await.map_err(|_| timed_out(limit))??;
        self.in_flight = false;
        Ok(done)
    }

    /// Commits the transaction (ends it; a read-only one too). On a connection outside a transaction, nothing.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.open {
            self.execute_raw("COMMIT").await?;
            self.open = false;
        }
        Ok(())
    }

    /// Runs `sql` with `args`; the number of rows it affected.
    pub async fn run(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        self.limited(async |conn| {
            Ok(match conn {
                Conn::Postgres(c) => bound_pg!(sql, args).execute(&mut **c).await?.rows_affected(),
                Conn::MySql(c) => to_mysql(mysql_text_statement(sql, args)?).execute(&mut **c).await?.rows_affected(),
                Conn::Sqlite(c) => bound!(Sqlite, sql, args).execute(&mut **c).await?.rows_affected(),
            })
        })
        .await
    }

    /// Runs `sql` as text, unprepared: statements servers refuse to prepare (role and user DDL), and transaction
    /// control.
    pub async fn execute_raw(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        self.limited(async |conn| {
            let raw = || sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
            Ok(match conn {
                Conn::Postgres(c) => raw().execute(&mut **c).await?.rows_affected(),
                Conn::MySql(c) => to_mysql(sql.to_owned()).execute(&mut **c).await?.rows_affected(),
                Conn::Sqlite(c) => raw().execute(&mut **c).await?.rows_affected(),
            })
        })
        .await
    }

    /// Runs `sql` with `args`; all its rows.
    pub async fn fetch(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<DbRow>, sqlx::Error> {
        self.fetch_map(sql, args, |row| row.to_db_row()).await
    }

    /// Runs `sql` with `args`; each of its rows mapped by `f`, in order (the first error ends it).
    pub async fn fetch_map<T, E: From<sqlx::Error>>(
        &mut self,
        sql: &str,
        args: &[Arg],
        mut f: impl FnMut(RowRef<'_>) -> Result<T, E>,
    ) -> Result<Vec<T>, E> {
        let limit = self.statement_timeout;
        self.in_flight = true;
        let rows = tokio::time::timeout(limit, async {
            match &mut self.conn {
                Conn::Postgres(c) => map_pg(bound_pg!(sql, args).fetch(&mut **c), f).await,
                Conn::MySql(c) => {
                    let sql = to_mysql(mysql_text_statement(sql, args)?);
                    map_rows(sql.fetch(&mut **c), |r| f(RowRef::MySql(r))).await
                }
                Conn::Sqlite(c) => map_rows(bound!(Sqlite, sql, args).fetch(&mut **c), |r| f(RowRef::Sqlite(r))).await,
            }
        })
        .await
        .map_err(|_| E::from(timed_out(limit)))?;
        // A row `f` refused ends the read early: the rest of the result may still be on the wire.
        if rows.is_ok() {
            self.in_flight = false;
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_rds_iam_then_mysql_gets_the_cleartext_plugin_and_no_session_sets_and_only_with_tls() {
        let plain = format!("{:?}", mysql_options("mysql://u@proxy/orders", Mode::Url).unwrap());
        assert!(plain.contains("enable_cleartext_plugin: false"), "{plain}");

        let iam =
            format!("{:?}", mysql_options("mysql://u@proxy/orders?ssl-mode=VERIFY_IDENTITY", Mode::RdsIam).unwrap());
        for expected in [
            "enable_cleartext_plugin: true",
            "set_names: false",
            "pipes_as_concat: false",
            "no_engine_substitution: false",
            "timezone: None",
        ] {
            assert!(iam.contains(expected), "{expected}: {iam}");
        }

        for url in ["mysql://u@proxy/orders", "mysql://u@proxy/orders?ssl-mode=PREFERRED"] {
            assert!(mysql_options(url, Mode::RdsIam).is_err(), "{url}");
        }
    }

    #[test]
    fn given_mysql_placeholders_then_arguments_are_written_in_as_literals_only_outside_quotes_and_comments() {
        let sql = "SELECT '?', \"?\", `?`, 'it''s ?', 'a\\'?' FROM t -- ?\n\
                   WHERE a = ? AND b IN (?, ?) /* ? */ AND c = ? # ?\nAND d = ?";
        let args = [
            Arg::Text("z3333".into()),
            Arg::Text("x'); DROP TABLE orders; --".into()),
            Arg::OptText(None),
            Arg::Int(-42),
            Arg::OptText(Some("2022-10-13 08:30:00.000".into())),
        ];
        let hex: String = "x'); DROP TABLE orders; --".bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            mysql_text_statement(sql, &args).unwrap(),
            format!(
                "SELECT '?', \"?\", `?`, 'it''s ?', 'a\\'?' FROM t -- ?\n\
                 WHERE a = 'z3333' AND b IN (X'{hex}', NULL) /* ? */ AND c = -42 # ?\nAND d = '2022-10-13 08:30:00.000'"
            )
        );
        assert!(mysql_text_statement("SELECT ?", &[]).is_err(), "a placeholder without an argument");
        assert!(mysql_text_statement("SELECT 1", &[Arg::Int(1)]).is_err(), "an argument without a placeholder");
        let array = Arg::Array(Array::Int(vec![Some(1)]));
        assert!(mysql_text_statement("SELECT ?", &[array]).is_err(), "arrays are PostgreSQL's");
        assert_eq!(mysql_text_statement("SELECT 'unterminated ?", &[]).unwrap(), "SELECT 'unterminated ?");
    }

    #[test]
    fn a_row_reads_integers_text_and_null_and_says_when_a_column_is_not_what_was_asked() {
        let row = DbRow(vec![Cell::Int(7), Cell::Text("x".into()), Cell::Null]);
        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.text(1).unwrap(), "x");
        assert_eq!(row.cell(2).unwrap(), &Cell::Null);
        assert!(row.text(0).is_err());
        assert!(row.int(1).is_err());
        assert!(row.int(3).is_err());
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, scale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits as u16, weight as u16, sign, scale].into_iter().chain(digits.iter().map(|d| *d as u16)) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn given_postgres_binary_numerics_then_they_decode_exactly_with_their_scale() {
        let cases: [(Vec<u8>, &str); 7] = [
            (numeric(2, 0, 0, 4, &[15, 6]), "15.0006"),
            (numeric(0, 0, 0, 4, &[]), "0.0000"),
            (numeric(3, 1, 0x4000, 1, &[123, 4567, 5000]), "-1234567.5"),
            (numeric(1, 5, 0, 0, &[1]), "100000000000000000000"),
            (numeric(1, -1, 0, 4, &[1]), "0.0001"),
            (numeric(1, -2, 0, 8, &[1234]), "0.00001234"),
            (numeric(2, 6, 0, 0, &[7922, 8162]), "7922816200000000000000000000"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(pg_numeric(&bytes).map(|d| d.to_string()).as_deref(), Some(expected), "{bytes:?}");
        }
        // NaN, +/-infinity, a truncated value, a scale past Decimal's and a value past its 96 bits.
        for bad in [
            numeric(0, 0, 0xC000, 0, &[]),
            numeric(0, 0, 0xD000, 0, &[]),
            numeric(0, 0, 0xF000, 0, &[]),
            numeric(2, 0, 0, 0, &[1])[..10].to_vec(),
            numeric(1, 0, 0, 29, &[1]),
            numeric(1, 8, 0, 0, &[1]),
        ] {
            assert_eq!(pg_numeric(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn given_postgres_binary_times_then_they_count_from_2000_in_utc_and_infinities_are_refused() {
        assert_eq!(pg_time(0).unwrap().to_rfc3339(), "2000-01-01T00:00:00+00:00");
        assert_eq!(pg_time(-946_684_800_000_000).unwrap().timestamp(), 0);
        // 2022-10-13T10:00:00.123Z
        let at = DateTime::parse_from_rfc3339("2022-10-13T10:00:00.123Z").unwrap().with_timezone(&Utc);
        assert_eq!(pg_time(at.timestamp_micros() - 946_684_800_000_000), Some(at));
        assert_eq!(pg_time(i64::MAX), None);
        assert_eq!(pg_time(i64::MIN), None);
    }
}
