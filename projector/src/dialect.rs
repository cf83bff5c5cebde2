//! The SQL that differs between PostgreSQL, MySQL and SQLite, in one place. Values cross the driver as text and
//! integers only; each dialect casts them to its own decimal and time types on the way in and back to canonical
//! text on the way out, so the projection logic above is written once.

use chrono::{DateTime, Utc};

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

    /// `VALUES`-style rows: `rows` tuples of `cols`, numbered from 1.
    pub fn rows(self, rows: usize, cols: &[Col]) -> String {
        (0..rows).map(|r| self.tuple(1 + r * cols.len(), cols)).collect::<Vec<_>>().join(", ")
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
            Dialect::MySql => at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            Dialect::Postgres | Dialect::Sqlite => domain::order::format_time(at),
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
    /// row (quantities, revenue and order count summed; the later last order date kept). SQLite has no exact
    /// decimal arithmetic, so it has none and its item totals are read, recomputed and written back instead.
    pub fn add_item_totals(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some(
                "ON CONFLICT (itemid) DO UPDATE SET \
                 totalordered = item_sales.totalordered + EXCLUDED.totalordered, \
                 totalrevenue = item_sales.totalrevenue + EXCLUDED.totalrevenue, \
                 ordercount = item_sales.ordercount + EXCLUDED.ordercount, \
                 lastorderdate = GREATEST(item_sales.lastorderdate, EXCLUDED.lastorderdate)",
            ),
            // GREATEST is NULL if either side is; the CASE keeps whichever date exists.
            Dialect::MySql => Some(
                "ON DUPLICATE KEY UPDATE \
                 totalordered = totalordered + VALUES(totalordered), \
                 totalrevenue = totalrevenue + VALUES(totalrevenue), \
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

/// One value of a row to insert, or of a statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Text(String),
    Int(i64),
    Null,
}

/// Rows for one multi-row INSERT. On MySQL and SQLite they go out as `VALUES (...), (...)`, one parameter per
/// value; on PostgreSQL as `SELECT * FROM UNNEST(...)` with one array parameter per column, whose planning cost
/// does not grow with the row count (a `VALUES` list of thousands of parameters costs ~30 us a row to plan).
pub struct RowSet {
    cols: Vec<Col>,
    rows: Vec<Vec<Val>>,
}

/// A PostgreSQL array literal of `values`: every element quoted (`"` and `\` escaped), NULL unquoted.
fn array_literal(values: impl Iterator<Item = Val>) -> String {
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Val::Null => out.push_str("NULL"),
            Val::Int(n) => out.push_str(&n.to_string()),
            Val::Text(t) => {
                out.push('"');
                for c in t.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

impl RowSet {
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
    pub fn statement(self, dialect: Dialect, head: &str, tail: &str) -> (String, Vec<Val>) {
        match dialect {
            Dialect::Postgres => {
                let arrays: Vec<String> = self
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("CAST(${} AS {})", i + 1, Dialect::pg_array(*c)))
                    .collect();
                let sql = format!("{head} SELECT * FROM UNNEST({}) {tail}", arrays.join(", "));
                let mut columns: Vec<Vec<Val>> = vec![Vec::with_capacity(self.rows.len()); self.cols.len()];
                for row in self.rows {
                    for (i, v) in row.into_iter().enumerate() {
                        columns[i].push(v);
                    }
                }
                (sql, columns.into_iter().map(|c| Val::Text(array_literal(c.into_iter()))).collect())
            }
            Dialect::MySql | Dialect::Sqlite => {
                let sql = format!("{head} VALUES {} {tail}", dialect.rows(self.rows.len(), &self.cols));
                (sql, self.rows.into_iter().flatten().collect())
            }
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
        assert_eq!(Dialect::MySql.rows(1, &[Col::Decimal, Col::Int]), "(CAST(? AS DECIMAL(38,4)), ?)");
        assert_eq!(Dialect::Sqlite.tuple(3, &[Col::Text, Col::Time]), "(?, ?)");
        assert_eq!(Dialect::from_url("postgres://u@h/db"), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("sqlite://data/read.db"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::from_url("oracle://x"), None);
    }

    #[test]
    fn postgres_rows_go_out_as_one_array_per_column() {
        let mut rows = RowSet::new(&[Col::Text, Col::Int, Col::Decimal]);
        rows.push(vec![Val::Text("a\"b".into()), Val::Int(3), Val::Null]);
        rows.push(vec![Val::Text("c".into()), Val::Int(-1), Val::Text("1.5".into())]);
        let (sql, args) = rows.statement(Dialect::Postgres, "INSERT INTO t (x, y, z)", "ON CONFLICT DO NOTHING");
        assert_eq!(
            sql,
            "INSERT INTO t (x, y, z) SELECT * FROM UNNEST(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS NUMERIC[])) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            args,
            [Val::Text(r#"{"a\"b","c"}"#.into()), Val::Text("{3,-1}".into()), Val::Text(r#"{NULL,"1.5"}"#.into())]
        );
        let mut rows = RowSet::new(&[Col::Text, Col::Int]);
        rows.push(vec![Val::Text("a".into()), Val::Int(1)]);
        let (sql, args) = rows.statement(Dialect::MySql, "INSERT INTO t (x, y)", "");
        assert_eq!((sql.trim(), args.len()), ("INSERT INTO t (x, y) VALUES (?, ?)", 2));
    }
}
