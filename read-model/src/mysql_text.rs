//! MySQL's text protocol: statements go out with their arguments written in as literals that cannot carry SQL,
//! within the longest statement RDS Proxy passes without pinning the session.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::AssertSqlSafe;

use crate::value::Arg;

/// The longest statement sent to MySQL: RDS Proxy pins the session of "any statement with a text size greater
/// than 16 KB" (its documentation, for every engine), and on MySQL statements are sent as text with their values
/// written in. Multi-row statements and id lists are cut to fit; what does not fit is logged (`db`).
pub const MYSQL_STATEMENT_LIMIT: usize = 16_000;

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

pub(crate) fn only_postgres() -> sqlx::Error {
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
pub(crate) fn to_mysql(sql: String) -> sqlx::RawSql {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Array;

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
}
