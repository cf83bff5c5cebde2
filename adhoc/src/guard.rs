//! The guard every ad-hoc statement passes before any engine sees it: at most `max_bytes` of text, exactly one
//! statement, a query (SELECT / WITH / set operations / VALUES; nothing that writes, not even inside WITH), no
//! `SELECT ... INTO`, and relations only from the lake: its tables and views, unqualified or qualified by the lake's
//! database, plus the query's own CTEs and subqueries. No table functions at all (they are how engines read
//! arbitrary files or URLs). And no statement deeper or longer than [`Limits`]: engines plan and evaluate
//! recursively, and a chain of a thousand `+`, `UNION ALL` or CTEs in 2 KB of text would exhaust their stack.
//!
//! The engine receives the guard's rendering of the parsed statement, never the caller's text: comments and
//! anything the parser did not take as part of the one statement cannot reach it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Query, SetExpr, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// How deep and how long a statement may be. The parser refuses nesting of parentheses, subqueries and function
/// calls past its own recursion limit (50); these bound what it builds without recursing: chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Expressions within expressions: `1+1+...+1` with n terms is n deep, as is `a AND b AND ...`.
    pub expression_depth: usize,
    /// SELECTs joined by UNION / INTERSECT / EXCEPT in one query.
    pub set_operands: usize,
    /// Common table expressions in the whole statement.
    pub ctes: usize,
    /// Queries within queries (subqueries, CTE bodies, derived tables).
    pub query_depth: usize,
    /// Tables, views, subqueries and UNNESTs in FROM clauses, in the whole statement.
    pub relations: usize,
}

impl Limits {
    /// Limits both a debug and a release build of the embedded engine plan and run with room to spare (its
    /// planning threads have a large stack; see `adhoc-embedded`), and which no report-like question comes near.
    pub const DEFAULT: Limits =
        Limits { expression_depth: 64, set_operands: 32, ctes: 32, query_depth: 16, relations: 32 };
}

/// What the guard allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// The lake's database (Glue database in AWS); the only qualifier a table may carry.
    pub database: String,
    /// Tables and views callers may read.
    pub tables: Vec<String>,
    /// Longest statement accepted, in bytes.
    pub max_bytes: usize,
    pub limits: Limits,
}

impl GuardConfig {
    pub fn lake(database: impl Into<String>) -> GuardConfig {
        GuardConfig {
            database: database.into(),
            tables: vec![lake::TABLE.to_owned(), lake::CURRENT_VIEW.to_owned()],
            max_bytes: 64 * 1024,
            limits: Limits::DEFAULT,
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

/// The stack the guard runs on. Its own walks stop at the limits, but a refused statement's syntax tree is as
/// deep as its longest chain (up to `max_bytes / 2` levels), and dropping a tree recurses through it.
const GUARD_STACK: usize = 256 << 20;

/// Checks `sql` against `config`, on a thread of its own with a stack deep enough for any tree `max_bytes` of
/// text can make (the caller's thread, an async runtime's worker, may have 2 MiB).
pub fn check(sql: &str, config: &GuardConfig) -> Result<Checked, Refusal> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("sql-guard".into())
            .stack_size(GUARD_STACK)
            .spawn_scoped(scope, || check_here(sql, config));
        match worker {
            Ok(handle) => {
                handle.join().unwrap_or_else(|_| Err(refuse("sql_refused", "the statement could not be checked")))
            }
            Err(e) => Err(refuse("sql_refused", format!("the statement could not be checked: {e}"))),
        }
    })
}

/// Checks `sql` on the calling thread.
fn check_here(sql: &str, config: &GuardConfig) -> Result<Checked, Refusal> {
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
    let mut walk = Walk { config, ctes: HashSet::new(), cte_count: 0, expr_depth: 0, query_depth: 0, relations: 0 };
    if let ControlFlow::Break(refusal) = statement.visit(&mut walk) {
        return Err(refusal);
    }
    Ok(Checked { sql: statement.to_string() })
}

struct Walk<'a> {
    config: &'a GuardConfig,
    /// Names bound by WITH anywhere in the statement (lower-cased).
    ctes: HashSet<String>,
    cte_count: usize,
    /// Expressions and queries open around the node being visited: the visitor recurses no deeper than the
    /// limits, because it stops at the first node past them.
    expr_depth: usize,
    query_depth: usize,
    relations: usize,
}

fn too_complex(what: &str, limit: usize) -> Refusal {
    refuse("sql_too_complex", format!("the statement has more than {limit} {what}; split the question or simplify it"))
}

impl Walk<'_> {
    /// The query's body, by an explicit stack (a chain of set operations is as deep as it is long): each operand
    /// must be a query, and there may be at most `set_operands` of them.
    fn body(&self, body: &SetExpr) -> Result<(), Refusal> {
        let limit = self.config.limits.set_operands;
        let mut pending = vec![body];
        let mut operands = 0;
        while let Some(body) = pending.pop() {
            match body {
                SetExpr::Select(select) if select.into.is_some() => {
                    return Err(refuse(
                        "sql_not_a_query",
                        "SELECT ... INTO creates a table; only queries are accepted",
                    ));
                }
                SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => {
                    operands += 1;
                    if operands > limit {
                        return Err(too_complex("SELECTs joined by UNION, INTERSECT or EXCEPT", limit));
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    if pending.len() >= limit {
                        return Err(too_complex("SELECTs joined by UNION, INTERSECT or EXCEPT", limit));
                    }
                    pending.push(right);
                    pending.push(left);
                }
                SetExpr::Table(_) => {
                    return Err(refuse("sql_not_a_query", "TABLE statements are not accepted; use SELECT"));
                }
                _ => {
                    return Err(refuse(
                        "sql_not_a_query",
                        "statements that change data are not accepted, not even inside WITH",
                    ));
                }
            }
        }
        Ok(())
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

fn verdict(result: Result<(), Refusal>) -> ControlFlow<Refusal> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(r) => ControlFlow::Break(r),
    }
}

impl Visitor for Walk<'_> {
    type Break = Refusal;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        let limits = self.config.limits;
        self.query_depth += 1;
        if self.query_depth > limits.query_depth {
            return ControlFlow::Break(too_complex("levels of queries within queries", limits.query_depth));
        }
        if let Some(with) = &query.with {
            self.cte_count += with.cte_tables.len();
            if self.cte_count > limits.ctes {
                return ControlFlow::Break(too_complex("common table expressions (WITH)", limits.ctes));
            }
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        if !query.locks.is_empty() {
            return ControlFlow::Break(refuse("sql_not_a_query", "locking clauses (FOR UPDATE) are not accepted"));
        }
        verdict(self.body(&query.body))
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Refusal> {
        self.query_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Refusal> {
        self.expr_depth += 1;
        let limit = self.config.limits.expression_depth;
        if self.expr_depth > limit {
            return ControlFlow::Break(refuse(
                "sql_too_deep",
                format!(
                    "an expression nests more than {limit} deep (a chain such as a + b + ... or x AND y AND ... \
                     counts one level per operator); split it or simplify it"
                ),
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Refusal> {
        self.expr_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        self.relations += 1;
        let limit = self.config.limits.relations;
        if self.relations > limit {
            return ControlFlow::Break(too_complex("tables, subqueries and UNNESTs in FROM clauses", limit));
        }
        verdict(match factor {
            TableFactor::Table { name, args: None, .. } => self.relation(name),
            TableFactor::Table { name, args: Some(_), .. } => {
                Err(refuse("sql_table_function", format!("table functions such as {name}(...) are not accepted")))
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => Ok(()),
            other => Err(refuse(
                "sql_table_function",
                format!("only lake tables, subqueries and UNNEST may appear in FROM; not {other}"),
            )),
        })
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

    /// `n` copies of `item` joined by `sep`.
    fn chain(item: &str, sep: &str, n: usize) -> String {
        vec![item; n].join(sep)
    }

    fn ctes(n: usize) -> String {
        let mut sql = String::from("WITH c1 AS (SELECT 1 AS x)");
        for i in 2..=n {
            sql.push_str(&format!(", c{i} AS (SELECT x FROM c{})", i - 1));
        }
        sql + &format!(" SELECT x FROM c{n}")
    }

    fn nested_subqueries(n: usize) -> String {
        let mut sql = "SELECT 1 AS x".to_owned();
        for _ in 1..n {
            sql = format!("SELECT x FROM ({sql}) AS t");
        }
        sql
    }

    #[test]
    fn given_chains_at_the_limits_then_they_pass_and_one_more_is_refused_naming_the_limit() {
        let l = Limits::DEFAULT;
        // `1+...+1` with n terms nests n - 1 operators around a literal: n expressions deep.
        let sums = |n| format!("SELECT {}", chain("1", "+", n));
        let ands = |n| format!("SELECT * FROM order_lines WHERE {}", chain("quantity > 0", " AND ", n));
        let unions = |n| chain("SELECT 1", " UNION ALL ", n);
        let joins = |n| format!("SELECT 1 FROM {}", chain("order_lines", " CROSS JOIN ", n));
        let cases: Vec<(String, String, &str)> = vec![
            (sums(l.expression_depth), sums(l.expression_depth + 1), "sql_too_deep"),
            // each AND adds a level, each comparison one more around its column
            (ands(l.expression_depth / 2), ands(l.expression_depth), "sql_too_deep"),
            (unions(l.set_operands), unions(l.set_operands + 1), "sql_too_complex"),
            (ctes(l.ctes), ctes(l.ctes + 1), "sql_too_complex"),
            (nested_subqueries(l.query_depth), nested_subqueries(l.query_depth + 1), "sql_too_complex"),
            (joins(l.relations), joins(l.relations + 1), "sql_too_complex"),
        ];
        for (at_limit, past_it, code) in cases {
            check(&at_limit, &config()).unwrap_or_else(|r| panic!("{at_limit:?} refused: {r}"));
            let refusal = check(&past_it, &config()).expect_err(&past_it);
            assert_eq!(refusal.code, code, "{past_it}");
            assert!(refusal.message.contains("more than"), "{}", refusal.message);
        }
    }

    #[test]
    fn given_the_longest_chains_the_size_limit_lets_through_then_each_is_refused_on_a_small_stack() {
        // The shapes that took a whole process down, as long as 64 KB allows, checked on a thread with the
        // smallest stack an async runtime gives its workers: the guard's walks stop at the limits, and the deep
        // tree it refused is dropped on the guard's own thread.
        let n = config().max_bytes / 2 - 8;
        let shapes = [
            (format!("SELECT {}", chain("1", "+", n)), "sql_too_deep"),
            (format!("SELECT 1 FROM order_lines WHERE {}", chain("1=1", " AND ", n / 5)), "sql_too_deep"),
            (format!("SELECT {}", chain("'a'", "||", n / 3)), "sql_too_deep"),
            (chain("SELECT 1", " UNION ALL ", n / 20), "sql_too_complex"),
            (ctes(n / 40), "sql_too_complex"),
        ];
        let codes = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || shapes.iter().map(|(sql, code)| (refused(sql), *code)).collect::<Vec<_>>())
            .unwrap()
            .join()
            .expect("the guard survives on a 2 MiB stack");
        for (got, expected) in codes {
            assert_eq!(got, expected);
        }
    }
}
