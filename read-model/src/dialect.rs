//! The SQL that differs between PostgreSQL, MySQL and SQLite, in one place. Values cross the driver as text and
//! integers (on PostgreSQL, a batch's columns as binary arrays, times included; on MySQL, a batch's rows as
//! literals); each dialect converts them to its own decimal and time types on the way in and back to canonical
//! text on the way out, so the projection logic above is written once.

use chrono::{DateTime, Datelike, Timelike, Utc};

pub use crate::mysql_text::MYSQL_STATEMENT_LIMIT;
use crate::value::{Arg, Array, Col, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
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
    pub(crate) fn pg_array(col: Col) -> &'static str {
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
