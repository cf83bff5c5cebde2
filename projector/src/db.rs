//! The read model's connection pool, native per backend (sqlx's `Any` driver takes its options from the URL alone,
//! and RDS Proxy's MySQL IAM needs options no URL carries: the cleartext plugin, and no session `SET`s). Statements
//! bind text and integers only; rows come back as text, integers or NULL, which is all the projection reads.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{
    AssertSqlSafe, Column, ColumnIndex, Database, Decode, Executor, MySql, MySqlPool, PgPool, Postgres, Row, Sqlite,
    SqlitePool, Transaction, Type, TypeInfo, ValueRef,
};

use crate::dialect::Dialect;

#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
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

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        match self.cell(i)? {
            Cell::Text(s) => Ok(Some(s.clone())),
            Cell::Null => Ok(None),
            other => Err(DbRow::mismatch(i, "text", other)),
        }
    }

    /// The text of column `i`, moved out (the row keeps an empty string there).
    pub fn take_text(&mut self, i: usize) -> Result<String, sqlx::Error> {
        let len = self.0.len();
        match self.0.get_mut(i) {
            Some(Cell::Text(s)) => Ok(std::mem::take(s)),
            Some(other) => Err(DbRow::mismatch(i, "text", other)),
            None => Err(sqlx::Error::ColumnIndexOutOfBounds { index: i, len }),
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

    /// Each column as an integer where its type is one (of any width), else as text.
    fn from_row<'r, R: Row>(row: &'r R) -> Result<DbRow, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        i64: Type<R::Database> + Decode<'r, R::Database>,
        i32: Type<R::Database> + Decode<'r, R::Database>,
        String: Type<R::Database> + Decode<'r, R::Database>,
    {
        row.columns()
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let raw = row.try_get_raw(i)?;
                if raw.is_null() {
                    return Ok(Cell::Null);
                }
                // The value's own type where the backend has one per value (SQLite), else the column's.
                let integer = raw.type_info().name().contains("INT") || column.type_info().name().contains("INT");
                if !integer {
                    return row.try_get::<String, _>(i).map(Cell::Text);
                }
                match row.try_get::<i64, _>(i) {
                    Ok(v) => Ok(Cell::Int(v)),
                    Err(_) => row.try_get::<i32, _>(i).map(|v| Cell::Int(i64::from(v))),
                }
            })
            .collect::<Result<_, _>>()
            .map(DbRow)
    }
}

/// `sqlx::query` on database `$db` with `$args` bound in order.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>(AssertSqlSafe($sql));
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::OptText(s) => q.bind(s.as_deref()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// A transaction on one of the pools (dropped without `commit`, it rolls back), or a plain connection for a
/// read that is one statement (a snapshot by itself) and needs no transaction's round trips.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
    Sqlite(Transaction<'static, Sqlite>),
    PostgresRead(PoolConnection<Postgres>),
    MySqlRead(PoolConnection<MySql>),
    SqliteRead(PoolConnection<Sqlite>),
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

/// What every pool shares: a bounded wait for a connection, and idle ones closed before RDS Proxy closes them.
fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new().acquire_timeout(Duration::from_secs(10)).idle_timeout(Some(Duration::from_secs(120)))
}

/// A database server's pool: four connections, each tested before use, with TCP_NODELAY on their sockets.
fn server_options<DB: Database>() -> PoolOptions<DB> {
    pool_options().max_connections(4).test_before_acquire(true).after_connect(|_, _| {
        Box::pin(async {
            crate::nodelay::set_on_tcp_sockets();
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

impl Pool {
    /// A lazily connecting pool for `url`, replacing broken connections (RDS Proxy closes idle ones).
    pub fn connect_lazy(dialect: Dialect, url: &str, mode: Mode) -> Result<Pool, sqlx::Error> {
        Ok(match dialect {
            Dialect::Postgres => Pool::Postgres(server_options().connect_lazy_with(PgConnectOptions::from_str(url)?)),
            Dialect::MySql => Pool::MySql(server_options().connect_lazy_with(mysql_options(url, mode)?)),
            // One writer: SQLite serialises writes anyway, and one connection never waits on itself.
            Dialect::Sqlite => Pool::Sqlite(
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
        })
    }

    /// New connections from now on use `url` (a fresh IAM token); open ones keep theirs.
    pub fn set_url(&self, url: &str, mode: Mode) -> Result<(), sqlx::Error> {
        match self {
            Pool::Postgres(p) => p.set_connect_options(PgConnectOptions::from_str(url)?),
            Pool::MySql(p) => p.set_connect_options(mysql_options(url, mode)?),
            Pool::Sqlite(p) => p.set_connect_options(SqliteConnectOptions::from_str(url)?),
        }
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
            Pool::MySql(p) => Tx::MySql(p.begin().await?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
        })
    }

    /// A connection for single-statement reads.
    pub async fn read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Postgres(p) => Tx::PostgresRead(p.acquire().await?),
            Pool::MySql(p) => Tx::MySqlRead(p.acquire().await?),
            Pool::Sqlite(p) => Tx::SqliteRead(p.acquire().await?),
        })
    }

    pub async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Pool::Postgres(p) => migrator.run(p).await,
            Pool::MySql(p) => migrator.run(p).await,
            Pool::Sqlite(p) => migrator.run(p).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Pool::Postgres(p) => p.is_closed(),
            Pool::MySql(p) => p.is_closed(),
            Pool::Sqlite(p) => p.is_closed(),
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::MySql(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
            Tx::PostgresRead(_) | Tx::MySqlRead(_) | Tx::SqliteRead(_) => Ok(()),
        }
    }

    /// Runs `sql` with `args`; the number of rows it affected.
    pub async fn run(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Postgres(t) => bound!(Postgres, sql, args).execute(&mut **t).await?.rows_affected(),
            Tx::MySql(t) => bound!(MySql, sql, args).execute(&mut **t).await?.rows_affected(),
            Tx::Sqlite(t) => bound!(Sqlite, sql, args).execute(&mut **t).await?.rows_affected(),
            Tx::PostgresRead(c) => bound!(Postgres, sql, args).execute(&mut **c).await?.rows_affected(),
            Tx::MySqlRead(c) => bound!(MySql, sql, args).execute(&mut **c).await?.rows_affected(),
            Tx::SqliteRead(c) => bound!(Sqlite, sql, args).execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs `sql` as text, unprepared: statements servers refuse to prepare (role and user DDL).
    pub async fn execute_raw(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        let raw = || sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        Ok(match self {
            Tx::Postgres(t) => raw().execute(&mut **t).await?.rows_affected(),
            Tx::MySql(t) => raw().execute(&mut **t).await?.rows_affected(),
            Tx::Sqlite(t) => raw().execute(&mut **t).await?.rows_affected(),
            Tx::PostgresRead(c) => raw().execute(&mut **c).await?.rows_affected(),
            Tx::MySqlRead(c) => raw().execute(&mut **c).await?.rows_affected(),
            Tx::SqliteRead(c) => raw().execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs `sql` with `args`; all its rows.
    pub async fn fetch(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<DbRow>, sqlx::Error> {
        match self {
            Tx::Postgres(t) => {
                bound!(Postgres, sql, args).fetch_all(&mut **t).await?.iter().map(DbRow::from_row).collect()
            }
            Tx::MySql(t) => bound!(MySql, sql, args).fetch_all(&mut **t).await?.iter().map(DbRow::from_row).collect(),
            Tx::Sqlite(t) => bound!(Sqlite, sql, args).fetch_all(&mut **t).await?.iter().map(DbRow::from_row).collect(),
            Tx::PostgresRead(c) => {
                bound!(Postgres, sql, args).fetch_all(&mut **c).await?.iter().map(DbRow::from_row).collect()
            }
            Tx::MySqlRead(c) => {
                bound!(MySql, sql, args).fetch_all(&mut **c).await?.iter().map(DbRow::from_row).collect()
            }
            Tx::SqliteRead(c) => {
                bound!(Sqlite, sql, args).fetch_all(&mut **c).await?.iter().map(DbRow::from_row).collect()
            }
        }
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
    fn a_row_reads_integers_text_and_null_and_says_when_a_column_is_not_what_was_asked() {
        let row = DbRow(vec![Cell::Int(7), Cell::Text("x".into()), Cell::Null]);
        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.text(1).unwrap(), "x");
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert!(row.text(0).is_err());
        assert!(row.int(1).is_err());
        assert!(row.int(3).is_err());
    }
}
