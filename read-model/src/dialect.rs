//! The SQL that differs between PostgreSQL, MySQL and SQLite, in one place. Values cross the driver as text and
//! integers (on PostgreSQL, a batch's columns as binary arrays, times included; on MySQL, a batch's rows as
//! literals); each dialect converts them to its own decimal and time types on the way in and back to canonical
//! text on the way out, so the projection logic above is written once.

use chrono::{DateTime, Datelike, Timelike, Utc};
use rust_decimal::Decimal;

use crate::db::{Arg, Array, PgTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

/// How a bound value is typed in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    Int,
    Time,
    Decimal,
}

impl Dialect {
    pub fn from_url(url: &str) -> Option<Dialect> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// The `n`th (1-based) bind parameter, cast to the column's type.
    pub fn param(self, n: usize, col: Col) -> String {
        let p = match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
        };
        match (self, col) {
            (Dialect::Postgres, Col::Time) => format!("CAST({p} AS TIMESTAMPTZ)"),
            (Dialect::Postgres, Col::Decimal) => format!("CAST({p} AS NUMERIC)"),
            (Dialect::MySql, Col::Time) => format!("CAST({p} AS DATETIME(3))"),
            (Dialect::MySql, Col::Decimal) => format!("CAST({p} AS DECIMAL(38,4))"),
            _ => p,
        }
    }

    /// `(p, p, ...)` for `cols`, numbering from `first`.
    pub fn tuple(self, first: usize, cols: &[Col]) -> String {
        let inner: Vec<String> = cols.iter().enumerate().map(|(i, c)| self.param(first + i, *c)).collect();
        format!("({})", inner.join(", "))
    }

    /// `VALUES`-style rows of an INSERT: `rows` tuples of `cols`, numbered from 1.
    pub fn rows(self, rows: usize, cols: &[Col]) -> String {
        match self {
            Dialect::Postgres => (0..rows).map(|r| self.tuple(1 + r * cols.len(), cols)).collect::<Vec<_>>().join(", "),
            // Unnumbered placeholders, so every tuple is the same text, built once; no casts, as each value
            // is converted to its column's type as it is stored.
            Dialect::MySql | Dialect::Sqlite => {
                let tuple = format!("({})", vec!["?"; cols.len()].join(", "));
                let mut out = String::with_capacity(rows * (tuple.len() + 2));
                for r in 0..rows {
                    if r > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&tuple);
                }
                out
            }
        }
    }

    /// `col` is one of `n` values, bound from parameter 1: `col IN (?, ...)`, or on PostgreSQL `col = ANY($1)`
    /// over one text array (see `ids`), whose statement text and plan do not depend on `n`.
    pub fn in_list(self, col: &str, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("{col} = ANY(CAST($1 AS TEXT[]))"),
            Dialect::MySql | Dialect::Sqlite => format!("{col} IN {}", self.tuple(1, &vec![Col::Text; n])),
        }
    }

    /// The arguments of `in_list`.
    pub fn ids<'a>(self, values: impl IntoIterator<Item = &'a str>) -> Vec<Arg> {
        match self {
            Dialect::Postgres => {
                vec![Arg::Array(Array::Text(values.into_iter().map(|v| Some(v.to_owned())).collect()))]
            }
            Dialect::MySql | Dialect::Sqlite => values.into_iter().map(|v| Arg::Text(v.to_owned())).collect(),
        }
    }

    /// PostgreSQL's array type for a column, for `UNNEST` inserts.
    fn pg_array(col: Col) -> &'static str {
        match col {
            Col::Text => "TEXT[]",
            Col::Int => "BIGINT[]",
            Col::Time => "TIMESTAMPTZ[]",
            Col::Decimal => "NUMERIC[]",
        }
    }

    /// A time column as the read side decodes it: canonical RFC 3339 UTC text, or PostgreSQL's own TIMESTAMPTZ.
    pub fn time_out(self, col: &str) -> String {
        match self {
            // As it is: the driver decodes TIMESTAMPTZ's binary value (converting in SQL cost more than the read).
            Dialect::Postgres => col.to_owned(),
            Dialect::MySql => format!("DATE_FORMAT({col}, '%Y-%m-%dT%H:%i:%s.%fZ')"),
            Dialect::Sqlite => col.to_owned(),
        }
    }

    /// A decimal column as the read side decodes it: exact text, or PostgreSQL's own NUMERIC.
    pub fn decimal_out(self, col: &str) -> String {
        match self {
            // As it is: the driver decodes NUMERIC's binary value.
            Dialect::Postgres => col.to_owned(),
            Dialect::MySql => format!("CAST({col} AS CHAR)"),
            Dialect::Sqlite => col.to_owned(),
        }
    }

    /// A time as the text this dialect's time parameter accepts (MySQL's DATETIME takes no zone suffix; all
    /// stored times are UTC).
    pub fn time_value(self, at: &DateTime<Utc>) -> String {
        match self {
            Dialect::MySql => {
                time_text(at, b' ', false).unwrap_or_else(|| at.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            }
            Dialect::Postgres | Dialect::Sqlite => {
                time_text(at, b'T', true).unwrap_or_else(|| domain::order::format_time(at))
            }
        }
    }

    /// A value as this dialect's bound argument (times and decimals as text, NULL as a text NULL).
    pub fn arg(self, value: Val) -> Arg {
        match value {
            Val::Text(t) => Arg::Text(t),
            Val::Int(i) => Arg::Int(i),
            Val::Time(at) => Arg::Text(self.time_value(&at)),
            Val::Decimal(d) => Arg::Text(d.to_string()),
            Val::Null => Arg::OptText(None),
        }
    }

    /// The clause that turns an INSERT into an upsert on `keys`, overwriting `cols`.
    pub fn upsert(self, keys: &[&str], cols: &[&str]) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!(
                "ON CONFLICT ({}) DO UPDATE SET {}",
                keys.join(", "),
                cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect::<Vec<_>>().join(", ")
            ),
            Dialect::MySql => format!(
                "ON DUPLICATE KEY UPDATE {}",
                cols.iter().map(|c| format!("{c} = VALUES({c})")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The clause that turns an INSERT into an atomic increment of `col` on `keys` (an existing row gains the
    /// inserted value): no read, no explicit lock.
    pub fn increment(self, table: &str, keys: &[&str], col: &str) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => {
                format!("ON CONFLICT ({}) DO UPDATE SET {col} = {table}.{col} + EXCLUDED.{col}", keys.join(", "))
            }
            Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {col} = {col} + VALUES({col})"),
        }
    }

    /// For backends with an exact decimal type: the upsert tail that adds an `item_sales` delta row to the stored
    /// row (quantities, revenue, priced quantity and order count summed; the later last order date kept). SQLite
    /// has no exact decimal arithmetic, so it has none and its item totals are read, recomputed and written back
    /// instead.
    pub fn add_item_totals(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some(
                "ON CONFLICT (itemid) DO UPDATE SET \
                 totalordered = item_sales.totalordered + EXCLUDED.totalordered, \
                 totalrevenue = item_sales.totalrevenue + EXCLUDED.totalrevenue, \
                 pricedordered = item_sales.pricedordered + EXCLUDED.pricedordered, \
                 ordercount = item_sales.ordercount + EXCLUDED.ordercount, \
                 lastorderdate = GREATEST(item_sales.lastorderdate, EXCLUDED.lastorderdate)",
            ),
            // GREATEST is NULL if either side is; the CASE keeps whichever date exists.
            Dialect::MySql => Some(
                "ON DUPLICATE KEY UPDATE \
                 totalordered = totalordered + VALUES(totalordered), \
                 totalrevenue = totalrevenue + VALUES(totalrevenue), \
                 pricedordered = pricedordered + VALUES(pricedordered), \
                 ordercount = ordercount + VALUES(ordercount), \
                 lastorderdate = CASE WHEN VALUES(lastorderdate) IS NULL THEN lastorderdate \
                 WHEN lastorderdate IS NULL OR VALUES(lastorderdate) > lastorderdate THEN VALUES(lastorderdate) \
                 ELSE lastorderdate END",
            ),
            Dialect::Sqlite => None,
        }
    }

    /// The clause that makes an INSERT skip rows whose key exists (never `INSERT IGNORE`, which hides other errors).
    pub fn skip_existing(self, keys: &[&str]) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!("ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
            Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {k} = {k}", k = keys[0]),
        }
    }

    /// Row locks for read-modify-write; SQLite's write transaction already excludes other writers.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        }
    }
}

/// `YYYY-MM-DD<sep>HH:MM:SS.mmm`, then `Z` if `zulu`: what chrono's `%Y-%m-%d %H:%M:%S%.3f` and RFC 3339 with
/// milliseconds give, written directly (the projector writes thousands of times per batch, and chrono's format
/// strings are interpreted at each call). `None` where chrono's text differs in shape: a year outside 0-9999, or
/// a leap second.
fn time_text(at: &DateTime<Utc>, sep: u8, zulu: bool) -> Option<String> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    put(20, nanos / 1_000_000, 3);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = sep;
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out[23] = b'Z';
    let len = if zulu { 24 } else { 23 };
    Some(out[..len].iter().map(|b| char::from(*b)).collect())
}

/// One value of a row to insert, or of a statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    Decimal(Decimal),
    Null,
}

/// Rows for one multi-row INSERT. On SQLite they go out as `VALUES (...), (...)`, one parameter per value; on
/// MySQL as the same `VALUES` with the values written in as literals (`mysql_literal_statements`); on PostgreSQL
/// as `SELECT * FROM UNNEST(...)` with one binary array parameter per column, whose planning cost does not grow
/// with the row count (a `VALUES` list of thousands of parameters costs ~30 us a row to plan) and which the
/// server reads without parsing text (decimals excepted: their text is cast to NUMERIC).
pub struct RowSet {
    cols: Vec<Col>,
    rows: Vec<Vec<Val>>,
}

/// The longest statement sent to MySQL: RDS Proxy pins the session of "any statement with a text size greater
/// than 16 KB" (its documentation, for every engine), and on MySQL statements are sent as text with their values
/// written in. Multi-row statements and id lists are cut to fit; what does not fit is logged (`db`).
pub const MYSQL_STATEMENT_LIMIT: usize = 16_000;

/// Appends `value` as a MySQL literal that cannot carry SQL whatever the session's `sql_mode`: text as
/// `push_mysql_text` writes it, integers and decimals as Rust formats them (digits, sign, point), times as
/// `time_value` writes them (digits and separators), quoted.
pub fn push_mysql_literal(sql: &mut String, value: Val) {
    use std::fmt::Write;
    match value {
        Val::Text(t) => push_mysql_text(sql, &t),
        // Writing to a String cannot fail.
        Val::Int(n) => {
            let _ = write!(sql, "{n}");
        }
        Val::Decimal(d) => {
            let _ = write!(sql, "{d}");
        }
        Val::Time(at) => {
            sql.push('\'');
            sql.push_str(&Dialect::MySql.time_value(&at));
            sql.push('\'');
        }
        Val::Null => sql.push_str("NULL"),
    }
}

/// Text a quoted MySQL literal carries as it is: printable ASCII but the quote and the backslash, the only
/// characters a single-quoted string treats specially (with or without `NO_BACKSLASH_ESCAPES`), and the same
/// bytes in every ASCII-based connection character set.
fn plain_mysql_text(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'\'' && b != b'\\')
}

/// Appends `text` as a MySQL string literal that cannot carry SQL: quoted as it is where `plain_mysql_text`
/// allows (ids, statuses, times: compared with their columns in the columns' own collation, so through their
/// indexes), else as a hex literal (`X'c3a9'`: only hex digits between the quotes).
pub fn push_mysql_text(sql: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if plain_mysql_text(text) {
        sql.push('\'');
        sql.push_str(text);
        sql.push('\'');
        return;
    }
    sql.push_str("X'");
    for b in text.bytes() {
        sql.push(char::from(HEX[usize::from(b >> 4)]));
        sql.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    sql.push('\'');
}

/// The length of `push_mysql_text`'s literal for `text`.
pub fn mysql_text_len(text: &str) -> usize {
    if plain_mysql_text(text) { text.len() + 2 } else { 2 * text.len() + 3 }
}

impl RowSet {
    /// The statements with every value written in as a literal that cannot carry SQL, for MySQL's text protocol
    /// (`push_mysql_literal`), as many rows to a statement as fit in `limit` bytes (RDS Proxy pins the session of
    /// any statement over 16 KB: `MYSQL_STATEMENT_LIMIT`); a row longer than that by itself goes alone. A prepared
    /// statement of thousands of parameters cost the server more than parsing the same values as literals (and,
    /// with a different row count each batch, a prepare round trip too), and prepared statements pin proxy
    /// sessions as well. No casts: MySQL converts each value to its column's type as it stores it (exactly, and
    /// strictly: a bad time is an error), and a CAST per value cost a quarter of an item-totals upsert.
    pub fn mysql_literal_statements(self, head: &str, tail: &str, limit: usize) -> Vec<String> {
        let start = |capacity: usize| {
            let mut sql = String::with_capacity(capacity);
            sql.push_str(head);
            sql.push_str(" VALUES ");
            sql
        };
        let finish = |mut sql: String| {
            sql.push(' ');
            sql.push_str(tail);
            sql
        };
        let fixed = head.len() + " VALUES ".len() + 1 + tail.len();
        let mut statements = Vec::new();
        let mut sql = start(limit.min(fixed + self.rows.len() * self.cols.len() * 16));
        let mut row_text = String::new();
        let mut rows_in = 0;
        for row in self.rows {
            row_text.clear();
            row_text.push('(');
            for (i, v) in row.into_iter().enumerate() {
                if i > 0 {
                    row_text.push_str(", ");
                }
                push_mysql_literal(&mut row_text, v);
            }
            row_text.push(')');
            if rows_in > 0 && sql.len() + 2 + row_text.len() + 1 + tail.len() > limit {
                statements.push(finish(std::mem::replace(&mut sql, start(limit))));
                rows_in = 0;
            }
            if rows_in > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row_text);
            rows_in += 1;
        }
        if rows_in > 0 {
            statements.push(finish(sql));
        }
        statements
    }

    pub fn new(cols: &[Col]) -> RowSet {
        RowSet { cols: cols.to_vec(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.cols.len());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `head` (e.g. `INSERT INTO t (a, b)`), the rows, then `tail` (e.g. an upsert clause); and the arguments.
    pub fn statement(self, dialect: Dialect, head: &str, tail: &str) -> Result<(String, Vec<Arg>), String> {
        match dialect {
            Dialect::Postgres => {
                let arrays: Vec<String> = self
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("CAST(${} AS {})", i + 1, Dialect::pg_array(*c)))
                    .collect();
                let sql = format!("{head} SELECT * FROM UNNEST({}) {tail}", arrays.join(", "));
                let n = self.rows.len();
                let mut columns: Vec<Array> = self
                    .cols
                    .iter()
                    .map(|c| match c {
                        Col::Text | Col::Decimal => Array::Text(Vec::with_capacity(n)),
                        Col::Int => Array::Int(Vec::with_capacity(n)),
                        Col::Time => Array::Time(Vec::with_capacity(n)),
                    })
                    .collect();
                for row in self.rows {
                    for (column, v) in columns.iter_mut().zip(row) {
                        column.push(v)?;
                    }
                }
                Ok((sql, columns.into_iter().map(Arg::Array).collect()))
            }
            Dialect::MySql | Dialect::Sqlite => {
                let sql = format!("{head} VALUES {} {tail}", dialect.rows(self.rows.len(), &self.cols));
                Ok((sql, self.rows.into_iter().flatten().map(|v| dialect.arg(v)).collect()))
            }
        }
    }
}

impl Array {
    /// Appends `value` to this column; a value of another type is refused (rows are built from their columns'
    /// types, so that is a bug, never data).
    fn push(&mut self, value: Val) -> Result<(), String> {
        match (self, value) {
            (Array::Text(v), Val::Text(t)) => v.push(Some(t)),
            (Array::Text(v), Val::Decimal(d)) => v.push(Some(d.to_string())),
            (Array::Int(v), Val::Int(i)) => v.push(Some(i)),
            (Array::Time(v), Val::Time(at)) => v.push(Some(PgTime::new(&at))),
            (Array::Text(v), Val::Null) => v.push(None),
            (Array::Int(v), Val::Null) => v.push(None),
            (Array::Time(v), Val::Null) => v.push(None),
            (column, value) => return Err(format!("{value:?} in a column of {}", column.kind())),
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        match self {
            Array::Text(_) => "text",
            Array::Int(_) => "integers",
            Array::Time(_) => "times",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_casts_follow_the_dialect() {
        assert_eq!(
            Dialect::Postgres.rows(2, &[Col::Text, Col::Time]),
            "($1, CAST($2 AS TIMESTAMPTZ)), ($3, CAST($4 AS TIMESTAMPTZ))"
        );
        assert_eq!(Dialect::MySql.tuple(1, &[Col::Decimal, Col::Int]), "(CAST(? AS DECIMAL(38,4)), ?)");
        assert_eq!(Dialect::MySql.rows(2, &[Col::Decimal, Col::Time]), "(?, ?), (?, ?)");
        assert_eq!(Dialect::Sqlite.tuple(3, &[Col::Text, Col::Time]), "(?, ?)");
        assert_eq!(Dialect::from_url("postgres://u@h/db"), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("sqlite://data/read.db"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::from_url("oracle://x"), None);
    }

    #[test]
    fn postgres_rows_go_out_as_one_binary_array_per_column_and_others_as_one_parameter_per_value() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2022, 10, 13, 8, 30, 0).unwrap()
            + chrono::Duration::microseconds(250_999);
        let cols = [Col::Text, Col::Int, Col::Decimal, Col::Time];
        let rows = || {
            let mut rows = RowSet::new(&cols);
            rows.push(vec![Val::Text("a\"b".into()), Val::Int(3), Val::Null, Val::Time(at)]);
            rows.push(vec![Val::Text("c".into()), Val::Int(-1), Val::Decimal(Decimal::new(15, 1)), Val::Null]);
            rows
        };

        let (sql, args) =
            rows().statement(Dialect::Postgres, "INSERT INTO t (x, y, z, w)", "ON CONFLICT DO NOTHING").unwrap();
        assert_eq!(
            sql,
            "INSERT INTO t (x, y, z, w) SELECT * FROM UNNEST(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), \
             CAST($3 AS NUMERIC[]), CAST($4 AS TIMESTAMPTZ[])) ON CONFLICT DO NOTHING"
        );
        // 2022-10-13T08:30:00.250Z in microseconds since 2000-01-01 (the time's own microseconds cut to the ms).
        let micros = (at.timestamp_millis() - 946_684_800_000) * 1_000;
        assert_eq!(micros % 1_000_000, 250_000);
        assert_eq!(
            args,
            [
                Arg::Array(Array::Text(vec![Some("a\"b".into()), Some("c".into())])),
                Arg::Array(Array::Int(vec![Some(3), Some(-1)])),
                Arg::Array(Array::Text(vec![None, Some("1.5".into())])),
                Arg::Array(Array::Time(vec![Some(PgTime::new(&at)), None])),
            ]
        );
        assert_eq!(PgTime::new(&at), PgTime::from_micros(micros));

        let (sql, args) = rows().statement(Dialect::MySql, "INSERT INTO t (x, y, z, w)", "").unwrap();
        assert_eq!(sql.trim(), "INSERT INTO t (x, y, z, w) VALUES (?, ?, ?, ?), (?, ?, ?, ?)");
        assert_eq!(
            args,
            [
                Arg::Text("a\"b".into()),
                Arg::Int(3),
                Arg::OptText(None),
                Arg::Text("2022-10-13 08:30:00.250".into()),
                Arg::Text("c".into()),
                Arg::Int(-1),
                Arg::Text("1.5".into()),
                Arg::OptText(None),
            ]
        );
    }

    #[test]
    fn a_value_of_another_type_than_its_column_is_refused_not_sent_as_null() {
        let mut rows = RowSet::new(&[Col::Int]);
        rows.push(vec![Val::Text("3".into())]);
        assert!(rows.statement(Dialect::Postgres, "INSERT INTO t (x)", "").is_err());
    }

    #[test]
    fn given_hostile_text_when_rows_are_written_as_literals_then_it_is_hex_digits_and_plain_text_is_quoted() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2022, 10, 13, 8, 30, 0).unwrap();
        let mut rows = RowSet::new(&[Col::Text, Col::Int, Col::Decimal, Col::Time, Col::Decimal]);
        rows.push(vec![
            Val::Text("x'); DROP TABLE orders; -- \\ é".into()),
            Val::Int(-7),
            Val::Decimal(Decimal::new(-12_345, 3)),
            Val::Time(at),
            Val::Null,
        ]);
        rows.push(vec![Val::Text("z3333".into()), Val::Int(0), Val::Decimal(Decimal::ZERO), Val::Null, Val::Null]);
        for hostile in ["a'b", "a\\", "é", "\n", "\0"] {
            rows.push(vec![Val::Text(hostile.into()), Val::Int(1), Val::Null, Val::Null, Val::Null]);
        }
        let statements =
            rows.mysql_literal_statements("INSERT INTO t (a, b, c, d, e)", "ON DUPLICATE KEY UPDATE b = b", 10_000);
        let hex = |t: &str| -> String { t.bytes().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(
            statements,
            [format!(
                "INSERT INTO t (a, b, c, d, e) VALUES (X'{}', -7, -12.345, '2022-10-13 08:30:00.000', NULL), \
                 ('z3333', 0, 0, NULL, NULL), (X'{}', 1, NULL, NULL, NULL), (X'{}', 1, NULL, NULL, NULL), \
                 (X'{}', 1, NULL, NULL, NULL), (X'{}', 1, NULL, NULL, NULL), (X'{}', 1, NULL, NULL, NULL) \
                 ON DUPLICATE KEY UPDATE b = b",
                hex("x'); DROP TABLE orders; -- \\ é"),
                hex("a'b"),
                hex("a\\"),
                hex("é"),
                hex("\n"),
                hex("\0"),
            )]
        );
        assert!(!statements[0].contains("DROP"));
        for text in ["z3333", "a'b", "é", ""] {
            let mut sql = String::new();
            push_mysql_text(&mut sql, text);
            assert_eq!(sql.len(), mysql_text_len(text), "{text:?}");
        }
    }

    #[test]
    fn given_more_rows_than_fit_then_they_go_out_in_statements_each_within_the_limit_in_order() {
        let mut rows = RowSet::new(&[Col::Text, Col::Int]);
        for i in 0..1_000 {
            rows.push(vec![Val::Text(format!("order-{i:05}")), Val::Int(i)]);
        }
        let (head, tail) = ("INSERT INTO t (a, b)", "ON DUPLICATE KEY UPDATE b = VALUES(b)");
        let statements = rows.mysql_literal_statements(head, tail, 2_000);
        assert!(statements.len() > 1, "{}", statements.len());
        let mut seen = Vec::new();
        for sql in &statements {
            assert!(sql.len() <= 2_000, "{} bytes", sql.len());
            assert!(sql.starts_with("INSERT INTO t (a, b) VALUES ('order-") && sql.ends_with(tail), "{sql}");
            seen.extend(sql.match_indices("'order-").map(|(at, _)| sql[at + 7..at + 12].parse::<i64>().unwrap()));
        }
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>(), "every row once, in order");
        // A limit no row fits in still sends every row, one to a statement.
        let mut one = RowSet::new(&[Col::Text]);
        one.push(vec![Val::Text("a".repeat(100))]);
        one.push(vec![Val::Text("b".repeat(100))]);
        assert_eq!(one.mysql_literal_statements("INSERT INTO t (a)", "", 50).len(), 2);
    }

    #[test]
    fn in_lists_are_one_array_on_postgres_and_one_parameter_per_value_elsewhere() {
        assert_eq!(Dialect::Postgres.in_list("orderid", 3), "orderid = ANY(CAST($1 AS TEXT[]))");
        assert_eq!(
            Dialect::Postgres.ids(["a", "b"]),
            [Arg::Array(Array::Text(vec![Some("a".into()), Some("b".into())]))]
        );
        assert_eq!(Dialect::MySql.in_list("i.itemid", 2), "i.itemid IN (?, ?)");
        assert_eq!(Dialect::Sqlite.ids(["a", "b"]), [Arg::Text("a".into()), Arg::Text("b".into())]);
    }

    #[test]
    fn times_are_written_as_chrono_writes_them_and_odd_years_are_left_to_chrono() {
        let mut at = chrono::TimeZone::with_ymd_and_hms(&Utc, 1999, 12, 31, 23, 59, 59).unwrap();
        for step_ms in [0i64, 1, 999, 1_000, 86_399_999, 3_000_000_000, 90_061_001, 1_234_567_891_234] {
            at += chrono::Duration::milliseconds(step_ms) + chrono::Duration::nanoseconds(987_654);
            assert_eq!(Dialect::Postgres.time_value(&at), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            assert_eq!(Dialect::MySql.time_value(&at), at.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
            assert_eq!(time_text(&at, b'T', true).as_deref(), Some(Dialect::Sqlite.time_value(&at).as_str()));
        }
        let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 12_345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(time_text(&far, b'T', true), None);
        assert_eq!(Dialect::Postgres.time_value(&far), domain::order::format_time(&far));
        assert_eq!(Dialect::MySql.time_value(&far), far.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
    }
}
