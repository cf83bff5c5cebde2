//! The read model's connection pool, native per backend (sqlx's `Any` driver takes its options from the URL alone,
//! and RDS Proxy's MySQL IAM needs options no URL carries: the cleartext plugin, and no session `SET`s). Statements
//! bind text and integers, and on PostgreSQL also whole columns as binary arrays; rows come back as text, integers
//! or NULL, which is all the projection reads, and on PostgreSQL also as times and decimals, decoded from the
//! binary values it sends (no conversion in SQL). On MySQL nothing is prepared: RDS Proxy pins the session of any
//! prepared statement, binary protocol or not, so statements go out as text with their arguments written in as
//! literals (`mysql_text_statement`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Database, Executor, MySql, MySqlPool, PgPool, Postgres, Sqlite, SqlitePool};

use crate::dialect::Dialect;
use crate::mysql_text::{only_postgres, to_mysql};
use crate::row::{map_pg, map_rows};

pub use crate::mysql_text::{longest_mysql_statement, mysql_text_statement};
pub use crate::row::{Cell, DbRow, RowRef};
pub use crate::value::{Arg, Array, PgTime};

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

    /// Runs `statement` (a `COPY ... FROM STDIN`) with `data` as its input, on PostgreSQL; the rows it loaded.
    pub async fn copy_in(&mut self, statement: &str, data: Vec<u8>) -> Result<u64, sqlx::Error> {
        self.limited(async |conn| match conn {
            Conn::Postgres(c) => {
                let mut copy = c.copy_in_raw(statement).await?;
                copy.send(data).await?;
                copy.finish().await
            }
            _ => Err(sqlx::Error::Protocol("COPY is PostgreSQL's own".into())),
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
}
