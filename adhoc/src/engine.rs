//! The one trait both engines implement (Athena in AWS, DataFusion locally), and the shapes they answer in.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a query is, in Athena's words (the embedded engine uses the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<State> {
        Some(match raw {
            "QUEUED" => State::Queued,
            "RUNNING" => State::Running,
            "SUCCEEDED" => State::Succeeded,
            "FAILED" => State::Failed,
            "CANCELLED" => State::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

/// What an engine knows about one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub state: State,
    pub submitted_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub bytes_scanned: Option<u64>,
    pub run_time_ms: Option<u64>,
    pub failure: Option<String>,
}

/// A result column: its name and type in SQL words (`bigint`, `double`, `decimal(38,4)`, `varchar`, `date`,
/// `timestamp`, `boolean`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One page of a result. Values are typed: integers and floats as JSON numbers, decimals as strings (exact),
/// booleans as booleans, NULL as null, everything else as text. `next` is the engine's own token.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub next: Option<String>,
}

/// The full result as CSV.
pub enum Download {
    /// Where to fetch it (a presigned S3 URL in AWS), valid for the lifetime asked for.
    Redirect(String),
    /// The CSV itself, streamed.
    Csv(axum::body::Body),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no such query execution")]
    NotFound,
    #[error("the page token is not valid for this query")]
    BadToken,
    #[error("the query is {}; results exist only once it has SUCCEEDED", .0.as_str())]
    NotReady(State),
    #[error("the query engine is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Engine: Send + Sync {
    /// `embedded` or `athena`.
    fn name(&self) -> &'static str;

    /// Starts `sql` (already through the guard); returns the execution's id. Planning and run-time errors of the
    /// statement itself are reported by `status` as FAILED, as Athena does.
    async fn start(&self, sql: &str) -> Result<String, EngineError>;

    async fn status(&self, id: &str) -> Result<Execution, EngineError>;

    /// Up to `max` rows after the engine's `token` (none: from the start).
    async fn results(&self, id: &str, token: Option<&str>, max: u32) -> Result<Page, EngineError>;

    /// The whole result as CSV; a link lives at most `lifetime`.
    async fn download(&self, id: &str, lifetime: Duration) -> Result<Download, EngineError>;

    async fn cancel(&self, id: &str) -> Result<(), EngineError>;

    /// Resolves when the execution ends, for engines that run in this process (the embedded one); `None` where
    /// the end is announced elsewhere (Athena: EventBridge).
    async fn wait(&self, _id: &str) -> Option<Execution> {
        None
    }
}

/// Athena's column type names, for engines that have their own.
pub fn is_numeric_type(kind: &str) -> bool {
    matches!(kind, "tinyint" | "smallint" | "integer" | "int" | "bigint" | "double" | "float" | "real")
}

/// A text cell (Athena returns every value as text) as a typed JSON value for its column type.
pub fn typed(kind: &str, text: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    let Some(text) = text else { return Value::Null };
    match kind {
        "tinyint" | "smallint" | "integer" | "int" | "bigint" => {
            text.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        "double" | "float" | "real" => serde_json::Number::from_f64(text.parse::<f64>().unwrap_or(f64::NAN))
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        "boolean" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_cells_become_typed_values_and_decimals_stay_exact() {
        assert_eq!(typed("bigint", Some("12")), json!(12));
        assert_eq!(typed("double", Some("1.5")), json!(1.5));
        assert_eq!(typed("double", Some("NaN")), json!("NaN"));
        assert_eq!(typed("decimal(38,4)", Some("12345678901234567890.1234")), json!("12345678901234567890.1234"));
        assert_eq!(typed("varchar", Some("z3333")), json!("z3333"));
        assert_eq!(typed("boolean", Some("true")), json!(true));
        assert_eq!(typed("bigint", None), json!(null));
    }
}
