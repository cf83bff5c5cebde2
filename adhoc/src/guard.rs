//! The guard every ad-hoc statement passes before any engine sees it: at most `max_bytes` of text, exactly one
//! statement, a query (SELECT / WITH / set operations / VALUES; nothing that writes, not even inside WITH), no
//! `SELECT ... INTO`, and relations only from the lake: its tables and views, unqualified or qualified by the lake's
//! database, plus the query's own CTEs and subqueries. No table functions at all (they are how engines read
//! arbitrary files or URLs).
//!
//! The engine receives the guard's rendering of the parsed statement, never the caller's text: comments and
//! anything the parser did not take as part of the one statement cannot reach it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{ObjectName, Query, SetExpr, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// What the guard allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// The lake's database (Glue database in AWS); the only qualifier a table may carry.
    pub database: String,
    /// Tables and views callers may read.
    pub tables: Vec<String>,
    /// Longest statement accepted, in bytes.
    pub max_bytes: usize,
}

impl GuardConfig {
    pub fn lake(database: impl Into<String>) -> GuardConfig {
        GuardConfig {
            database: database.into(),
            tables: vec![lake::TABLE.to_owned(), lake::CURRENT_VIEW.to_owned()],
            max_bytes: 64 * 1024,
        }
    }
}

/// Why a statement was refused: a stable code and a message naming the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// A statement the guard let through: what to send to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub sql: String,
}

/// Checks `sql` against `config`.
pub fn check(sql: &str, config: &GuardConfig) -> Result<Checked, Refusal> {
    if sql.len() > config.max_bytes {
        return Err(refuse(
            "sql_too_long",
            format!("the statement is {} bytes; at most {} are accepted", sql.len(), config.max_bytes),
        ));
    }
    if sql.trim().is_empty() {
        return Err(refuse("sql_empty", "no statement given"));
    }
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| refuse("sql_syntax", format!("cannot parse: {e}")))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(refuse("sql_empty", "no statement given")),
        more => {
            return Err(refuse(
                "sql_multiple_statements",
                format!("exactly one statement is accepted; got {}", more.len()),
            ));
        }
    };
    let Statement::Query(_) = statement else {
        return Err(refuse("sql_not_a_query", "only queries (SELECT or WITH ... SELECT) are accepted"));
    };
    let mut walk = Walk { config, ctes: HashSet::new() };
    if let ControlFlow::Break(refusal) = statement.visit(&mut walk) {
        return Err(refusal);
    }
    Ok(Checked { sql: statement.to_string() })
}

struct Walk<'a> {
    config: &'a GuardConfig,
    /// Names bound by WITH anywhere in the statement (lower-cased).
    ctes: HashSet<String>,
}

impl Walk<'_> {
    fn body(&self, body: &SetExpr) -> Result<(), Refusal> {
        match body {
            SetExpr::Select(select) if select.into.is_some() => {
                Err(refuse("sql_not_a_query", "SELECT ... INTO creates a table; only queries are accepted"))
            }
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
            SetExpr::SetOperation { left, right, .. } => {
                self.body(left)?;
                self.body(right)
            }
            SetExpr::Table(_) => Err(refuse("sql_not_a_query", "TABLE statements are not accepted; use SELECT")),
            _ => Err(refuse("sql_not_a_query", "statements that change data are not accepted, not even inside WITH")),
        }
    }

    fn relation(&self, name: &ObjectName) -> Result<(), Refusal> {
        let parts: Vec<String> =
            name.0.iter().map(|p| p.as_ident().map(|i| i.value.clone()).unwrap_or_else(|| p.to_string())).collect();
        let allowed = |table: &str| self.config.tables.iter().any(|t| t.eq_ignore_ascii_case(table));
        let ok = match parts.as_slice() {
            [table] => allowed(table) || self.ctes.contains(&table.to_lowercase()),
            [database, table] => database.eq_ignore_ascii_case(&self.config.database) && allowed(table),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(refuse(
                "sql_table_not_allowed",
                format!(
                    "{name} is not a table of the lake; queries may read {} (optionally as {}.<table>)",
                    self.config.tables.join(", "),
                    self.config.database
                ),
            ))
        }
    }
}

impl Visitor for Walk<'_> {
    type Break = Refusal;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        if !query.locks.is_empty() {
            return ControlFlow::Break(refuse("sql_not_a_query", "locking clauses (FOR UPDATE) are not accepted"));
        }
        match self.body(&query.body) {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => ControlFlow::Break(r),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        let verdict = match factor {
            TableFactor::Table { name, args: None, .. } => self.relation(name),
            TableFactor::Table { name, args: Some(_), .. } => {
                Err(refuse("sql_table_function", format!("table functions such as {name}(...) are not accepted")))
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => Ok(()),
            other => Err(refuse(
                "sql_table_function",
                format!("only lake tables, subqueries and UNNEST may appear in FROM; not {other}"),
            )),
        };
        match verdict {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => ControlFlow::Break(r),
        }
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(refuse("sql_not_a_query", "only queries are accepted")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GuardConfig {
        GuardConfig::lake("orders_lake")
    }

    fn refused(sql: &str) -> &'static str {
        match check(sql, &config()) {
            Ok(ok) => panic!("accepted {sql:?} as {:?}", ok.sql),
            Err(r) => r.code,
        }
    }

    #[test]
    fn given_queries_over_the_lake_then_they_pass_as_one_rendered_statement() {
        for sql in [
            "SELECT itemid, SUM(quantity) FROM order_lines_current GROUP BY itemid",
            "select * from ORDER_LINES where dt = '2022-10-13' limit 10",
            "SELECT * FROM orders_lake.order_lines_current",
            "WITH m AS (SELECT itemid, quantity FROM order_lines) SELECT itemid, COUNT(*) FROM m GROUP BY itemid",
            "SELECT a.orderid FROM order_lines a JOIN (SELECT orderid FROM order_lines_current) b ON a.orderid = b.orderid",
            "SELECT 1 UNION ALL SELECT 2",
            "SELECT itemid FROM order_lines -- a trailing comment",
            "SELECT x FROM UNNEST(ARRAY[1, 2]) AS t(x)",
        ] {
            let checked = check(sql, &config()).unwrap_or_else(|r| panic!("{sql:?} refused: {r}"));
            assert!(!checked.sql.contains("--"), "comments never reach the engine: {}", checked.sql);
        }
    }

    #[test]
    fn given_hostile_statements_then_each_is_refused_with_its_reason() {
        let cases: &[(&str, &str)] = &[
            ("DROP TABLE order_lines", "sql_not_a_query"),
            ("CREATE TABLE x AS SELECT * FROM order_lines", "sql_not_a_query"),
            ("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'", "sql_not_a_query"),
            ("INSERT INTO order_lines VALUES ('a')", "sql_not_a_query"),
            ("DELETE FROM order_lines", "sql_not_a_query"),
            ("UPDATE order_lines SET quantity = 0", "sql_not_a_query"),
            ("WITH x AS (SELECT 1) INSERT INTO order_lines SELECT * FROM x", "sql_not_a_query"),
            ("WITH d AS (DELETE FROM order_lines RETURNING *) SELECT * FROM d", "sql_not_a_query"),
            ("COPY order_lines TO '/tmp/out.csv'", "sql_not_a_query"),
            ("COPY (SELECT 1) TO 's3://bucket/key'", "sql_not_a_query"),
            ("SELECT * INTO stolen FROM order_lines", "sql_not_a_query"),
            ("EXPLAIN SELECT * FROM order_lines", "sql_not_a_query"),
            ("SET datafusion.execution.target_partitions = 1", "sql_not_a_query"),
            ("SELECT 1; DROP TABLE order_lines", "sql_multiple_statements"),
            ("SELECT 1; -- harmless?\nDELETE FROM order_lines", "sql_multiple_statements"),
            ("SELECT 1 /* ; */ ; SELECT 2", "sql_multiple_statements"),
            ("SELECT * FROM read_parquet('/etc/passwd')", "sql_table_function"),
            ("SELECT * FROM read_csv('s3://other/secret.csv')", "sql_table_function"),
            ("SELECT * FROM generate_series(1, 1000000000)", "sql_table_function"),
            ("SELECT * FROM '/etc/passwd'", "sql_table_not_allowed"),
            ("SELECT * FROM \"file:///etc/passwd\"", "sql_table_not_allowed"),
            ("SELECT * FROM information_schema.tables", "sql_table_not_allowed"),
            ("SELECT * FROM other_db.order_lines", "sql_table_not_allowed"),
            ("SELECT * FROM awsdatacatalog.orders_lake.order_lines", "sql_table_not_allowed"),
            ("SELECT * FROM secrets", "sql_table_not_allowed"),
            ("SELECT * FROM order_lines WHERE orderid IN (SELECT x FROM secrets)", "sql_table_not_allowed"),
            ("SELECT * FROM order_lines FOR UPDATE", "sql_not_a_query"),
            ("", "sql_empty"),
            ("   -- only a comment", "sql_empty"),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(sql, code)| refused(sql) != *code)
            .map(|(sql, code)| format!("{sql:?}: expected {code}, got {}", refused(sql)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn given_a_megabyte_of_sql_then_it_is_refused_before_parsing() {
        let sql = format!("SELECT 1 {}", " ".repeat(1 << 20));
        assert_eq!(refused(&sql), "sql_too_long");
    }

    #[test]
    fn given_deeply_nested_sql_then_it_is_refused_not_a_stack_overflow() {
        let sql = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(refused(&sql), "sql_syntax");
    }
}
