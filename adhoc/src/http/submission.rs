//! The body of `POST /queries`: either accepted shape read into the statement and `notify`, and everything that
//! would choose where or how a query runs refused.

use serde_json::{Map, Value};

use crate::error::AdhocError;

/// The statement and `notify` from either accepted shape; anything that would choose where or how the query runs
/// is refused.
pub(super) fn parse_submit(body: &[u8], database: &str) -> Result<(String, bool), AdhocError> {
    fn bad(code: &'static str, message: impl Into<String>) -> AdhocError {
        AdhocError::bad(code, message)
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| bad("invalid_json", format!("invalid JSON: {e}")))?;
    let Value::Object(mut obj) = value else { return Err(bad("invalid_body", "the body must be a JSON object")) };
    let notify = match obj.remove("notify") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("invalid_notify", "notify must be true or false")),
    };
    for refused in ["ResultConfiguration", "WorkGroup", "ResultReuseConfiguration", "ExecutionParameters"] {
        if obj.contains_key(refused) {
            return Err(bad(
                "field_not_allowed",
                format!("{refused} is chosen by the server (output location, workgroup, database), not the caller"),
            ));
        }
    }
    let text = |v: Option<Value>, name: &str| match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(bad("invalid_sql", format!("{name} must be a string holding one query"))),
    };
    let sql = if obj.contains_key("QueryString") {
        let sql = text(obj.remove("QueryString"), "QueryString")?;
        if let Some(context) = obj.remove("QueryExecutionContext") {
            let Value::Object(context) = context else {
                return Err(bad("invalid_body", "QueryExecutionContext must be an object"));
            };
            check_context(&context, database)?;
        }
        sql
    } else {
        text(obj.remove("sql"), "sql")?
    };
    if let Some(unknown) = obj.keys().next() {
        return Err(bad("unknown_field", format!("unknown field {unknown:?}")));
    }
    Ok((sql, notify))
}

fn check_context(context: &Map<String, Value>, database: &str) -> Result<(), AdhocError> {
    for (key, value) in context {
        match (key.as_str(), value) {
            ("Database", Value::String(d)) if d == database => {}
            ("Database", _) => {
                return Err(AdhocError::bad(
                    "database_not_allowed",
                    format!("queries run in the lake's database {database:?} only"),
                ));
            }
            ("Catalog", Value::String(c)) if c == "AwsDataCatalog" => {}
            _ => {
                return Err(AdhocError::bad(
                    "field_not_allowed",
                    format!("QueryExecutionContext.{key} is chosen by the server, not the caller"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Result<(String, bool), &'static str> {
        parse_submit(body.as_bytes(), "orders_lake").map_err(|e| match e {
            AdhocError::BadRequest { code, .. } => code,
            _ => "other",
        })
    }

    #[test]
    fn both_body_shapes_are_accepted_and_nothing_that_chooses_where_the_query_runs() {
        assert_eq!(parsed(r#"{"sql":"SELECT 1","notify":true}"#), Ok(("SELECT 1".into(), true)));
        assert_eq!(
            parsed(r#"{"QueryString":"SELECT 1","QueryExecutionContext":{"Database":"orders_lake"}}"#),
            Ok(("SELECT 1".into(), false))
        );
        assert_eq!(parsed(r#"{"QueryString":"SELECT 1"}"#), Ok(("SELECT 1".into(), false)));
        assert_eq!(
            parsed(r#"{"QueryString":"SELECT 1","ResultConfiguration":{"OutputLocation":"s3://evil/"}}"#),
            Err("field_not_allowed")
        );
        assert_eq!(parsed(r#"{"QueryString":"SELECT 1","WorkGroup":"primary"}"#), Err("field_not_allowed"));
        assert_eq!(
            parsed(r#"{"QueryString":"SELECT 1","QueryExecutionContext":{"Database":"hr"}}"#),
            Err("database_not_allowed")
        );
        assert_eq!(parsed(r#"{"sql":"SELECT 1","email":"x@evil.example"}"#), Err("unknown_field"));
        assert_eq!(parsed(r#"{"sql":1}"#), Err("invalid_sql"));
        assert_eq!(parsed(r#"{"sql":"SELECT 1","notify":"yes"}"#), Err("invalid_notify"));
        assert_eq!(parsed("[]"), Err("invalid_body"));
    }
}
