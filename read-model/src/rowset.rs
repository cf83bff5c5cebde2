//! Rows for one multi-row INSERT, written the way each backend reads them fastest.

use crate::dialect::Dialect;
use crate::mysql_text::push_mysql_text;
use crate::value::{Arg, Array, Col, Val};

/// Rows for one multi-row INSERT. On SQLite they go out as `VALUES (...), (...)`, one parameter per value; on
/// MySQL as the same `VALUES` with the values written in as literals (`mysql_literal_statements`); on PostgreSQL
/// as `SELECT * FROM UNNEST(...)` with one binary array parameter per column, whose planning cost does not grow
/// with the row count (a `VALUES` list of thousands of parameters costs ~30 us a row to plan) and which the
/// server reads without parsing text (decimals excepted: their text is cast to NUMERIC).
pub struct RowSet {
    cols: Vec<Col>,
    rows: Vec<Vec<Val>>,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql_text::mysql_text_len;
    use crate::value::PgTime;
    use chrono::Utc;
    use rust_decimal::Decimal;

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
}
