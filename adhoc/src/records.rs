//! Query records: who asked what, where it stands, whom to tell. Embedded SQLite locally (`DATA_DIR/queries.db`),
//! DynamoDB in AWS (`QUERIES_TABLE`, key `queryId`, TTL on `expiresAt`). The query id is the engine's execution
//! id, so the notice function can find the record from Athena's own event.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::engine::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRecord {
    pub id: String,
    /// The caller's identity (a principal ARN, a JWT subject, or the local dev identity).
    pub requester: String,
    /// What the caller sent (the engine ran the guard's rendering of it).
    pub sql: String,
    pub state: State,
    pub notify: bool,
    /// The caller's registered address at submission; never one from the request.
    pub address: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub notified_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("query records: {0}")]
    Store(String),
}

#[async_trait]
pub trait Records: Send + Sync {
    async fn insert(&self, record: &QueryRecord) -> Result<(), RecordError>;
    async fn get(&self, id: &str) -> Result<Option<QueryRecord>, RecordError>;
    /// Records a final (or new) state; the first final state wins.
    async fn set_state(
        &self,
        id: &str,
        state: State,
        completed_at: Option<DateTime<Utc>>,
        failure: Option<&str>,
    ) -> Result<(), RecordError>;
    /// Marks the notice as sent; `true` only for the one caller that marked it (so it goes out once).
    async fn claim_notice(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RecordError>;
}

fn store_err(e: impl std::fmt::Display) -> RecordError {
    RecordError::Store(e.to_string())
}

fn time(raw: Option<String>) -> Option<DateTime<Utc>> {
    raw.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc))
}

/// Local records in SQLite.
pub struct SqliteRecords {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteRecords {
    pub fn open(path: &Path) -> Result<SqliteRecords, RecordError> {
        let conn = rusqlite::Connection::open(path).map_err(store_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS queries (
                 id TEXT PRIMARY KEY,
                 requester TEXT NOT NULL,
                 sql TEXT NOT NULL,
                 state TEXT NOT NULL,
                 notify INTEGER NOT NULL,
                 address TEXT,
                 submitted_at TEXT NOT NULL,
                 completed_at TEXT,
                 failure TEXT,
                 notified_at TEXT
             );",
        )
        .map_err(store_err)?;
        Ok(SqliteRecords { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Queries left QUEUED or RUNNING by an earlier process: the embedded engine lost them when it stopped.
    pub async fn fail_unfinished(&self, reason: &str) -> Result<usize, RecordError> {
        let reason = reason.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE queries SET state = 'FAILED', failure = ?1, completed_at = ?2
                 WHERE state IN ('QUEUED', 'RUNNING')",
                rusqlite::params![reason, Utc::now().to_rfc3339()],
            )
        })
        .await
    }

    /// Deletes the records of finished queries submitted before `cutoff` (the retention DynamoDB's TTL gives in
    /// AWS) and returns their ids, so their results can go too. Unfinished queries stay.
    pub async fn prune(&self, cutoff: chrono::DateTime<Utc>) -> Result<Vec<String>, RecordError> {
        self.with(move |c| {
            let mut statement = c.prepare(
                "DELETE FROM queries WHERE julianday(submitted_at) < julianday(?1)
                 AND state NOT IN ('QUEUED', 'RUNNING') RETURNING id",
            )?;
            let ids = statement.query_map(rusqlite::params![cutoff.to_rfc3339()], |row| row.get(0))?;
            ids.collect()
        })
        .await
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RecordError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| RecordError::Store("records lock poisoned".into()))?;
            f(&conn).map_err(store_err)
        })
        .await
        .map_err(store_err)?
    }
}

#[async_trait]
impl Records for SqliteRecords {
    async fn insert(&self, r: &QueryRecord) -> Result<(), RecordError> {
        let r = r.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO queries (id, requester, sql, state, notify, address, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    r.id,
                    r.requester,
                    r.sql,
                    r.state.as_str(),
                    r.notify,
                    r.address,
                    r.submitted_at.to_rfc3339()
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<QueryRecord>, RecordError> {
        let id = id.to_owned();
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, requester, sql, state, notify, address, submitted_at, completed_at, failure, notified_at
                 FROM queries WHERE id = ?1",
            )?;
            let mut rows = st.query([id])?;
            let Some(row) = rows.next()? else { return Ok(None) };
            let state: String = row.get(3)?;
            Ok(Some(QueryRecord {
                id: row.get(0)?,
                requester: row.get(1)?,
                sql: row.get(2)?,
                state: State::parse(&state).unwrap_or(State::Failed),
                notify: row.get(4)?,
                address: row.get(5)?,
                submitted_at: time(row.get(6)?).unwrap_or_default(),
                completed_at: time(row.get(7)?),
                failure: row.get(8)?,
                notified_at: time(row.get(9)?),
            }))
        })
        .await
    }

    async fn set_state(
        &self,
        id: &str,
        state: State,
        completed_at: Option<DateTime<Utc>>,
        failure: Option<&str>,
    ) -> Result<(), RecordError> {
        let (id, failure) = (id.to_owned(), failure.map(str::to_owned));
        self.with(move |c| {
            c.execute(
                "UPDATE queries SET state = ?2, completed_at = ?3, failure = ?4
                 WHERE id = ?1 AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
                rusqlite::params![id, state.as_str(), completed_at.map(|t| t.to_rfc3339()), failure],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim_notice(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RecordError> {
        let id = id.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE queries SET notified_at = ?2 WHERE id = ?1 AND notified_at IS NULL",
                rusqlite::params![id, at.to_rfc3339()],
            )
            .map(|n| n == 1)
        })
        .await
    }
}

/// Records in DynamoDB, kept `retention` after submission (TTL attribute `expiresAt`).
pub struct DynamoRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: chrono::Duration,
}

impl DynamoRecords {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, retention: chrono::Duration) -> DynamoRecords {
        DynamoRecords { client, table, retention }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl Records for DynamoRecords {
    async fn insert(&self, r: &QueryRecord) -> Result<(), RecordError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("queryId", s(&r.id))
            .item("requester", s(&r.requester))
            .item("sql", s(&r.sql))
            .item("state", s(r.state.as_str()))
            .item("notify", AttributeValue::Bool(r.notify))
            .item("submittedAt", s(r.submitted_at.to_rfc3339()))
            .item("expiresAt", AttributeValue::N((r.submitted_at + self.retention).timestamp().to_string()))
            .condition_expression("attribute_not_exists(queryId)");
        if let Some(address) = &r.address {
            put = put.item("address", s(address));
        }
        put.send().await.map_err(|e| store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<QueryRecord>, RecordError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("queryId", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let Some(item) = got.item else { return Ok(None) };
        Ok(Some(QueryRecord {
            id: id.to_owned(),
            requester: text(&item, "requester").unwrap_or_default(),
            sql: text(&item, "sql").unwrap_or_default(),
            state: text(&item, "state").and_then(|s| State::parse(&s)).unwrap_or(State::Failed),
            notify: item.get("notify").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
            address: text(&item, "address"),
            submitted_at: time(text(&item, "submittedAt")).unwrap_or_default(),
            completed_at: time(text(&item, "completedAt")),
            failure: text(&item, "failure"),
            notified_at: time(text(&item, "notifiedAt")),
        }))
    }

    async fn set_state(
        &self,
        id: &str,
        state: State,
        completed_at: Option<DateTime<Utc>>,
        failure: Option<&str>,
    ) -> Result<(), RecordError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("queryId", s(id))
            .condition_expression("attribute_exists(queryId) AND NOT (#s IN (:ok, :failed, :cancelled))")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":ok", s("SUCCEEDED"))
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":cancelled", s("CANCELLED"));
        let mut set = vec!["#s = :state"];
        if let Some(at) = completed_at {
            update = update.expression_attribute_values(":completed", s(at.to_rfc3339()));
            set.push("completedAt = :completed");
        }
        if let Some(reason) = failure {
            update = update.expression_attribute_values(":failure", s(reason));
            set.push("failure = :failure");
        }
        // An ended record keeps its end: a later state change is a no-op.
        applied(update.update_expression(format!("SET {}", set.join(", "))).send().await).map(|_| ())
    }

    async fn claim_notice(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RecordError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("queryId", s(id))
            .update_expression("SET notifiedAt = :at")
            .condition_expression("attribute_exists(queryId) AND attribute_not_exists(notifiedAt)")
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await;
        applied(result)
    }
}

/// A conditional UpdateItem's outcome: `true` when it applied, `false` when its condition did not hold.
fn applied<T>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>>,
) -> Result<bool, RecordError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> QueryRecord {
        QueryRecord {
            id: id.into(),
            requester: "dev".into(),
            sql: "SELECT 1".into(),
            state: State::Queued,
            notify: true,
            address: Some("dev@localhost".into()),
            submitted_at: Utc::now(),
            completed_at: None,
            failure: None,
            notified_at: None,
        }
    }

    #[tokio::test]
    async fn given_a_finished_query_then_its_state_is_final_and_its_notice_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let records = SqliteRecords::open(&dir.path().join("q.db")).unwrap();
        records.insert(&record("q1")).await.unwrap();

        records.set_state("q1", State::Failed, Some(Utc::now()), Some("boom")).await.unwrap();
        records.set_state("q1", State::Succeeded, Some(Utc::now()), None).await.unwrap();

        let got = records.get("q1").await.unwrap().unwrap();
        assert_eq!((got.state, got.failure.as_deref()), (State::Failed, Some("boom")), "the first final state wins");
        assert!(records.claim_notice("q1", Utc::now()).await.unwrap());
        assert!(!records.claim_notice("q1", Utc::now()).await.unwrap());
        assert_eq!(records.get("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn given_records_past_the_retention_then_pruning_deletes_the_finished_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let records = SqliteRecords::open(&dir.path().join("q.db")).unwrap();
        let week_ago = Utc::now() - chrono::Duration::days(8);
        for (id, submitted_at, state) in [
            ("old-done", week_ago, Some(State::Succeeded)),
            ("old-failed", week_ago, Some(State::Failed)),
            ("old-running", week_ago, None),
            ("new-done", Utc::now(), Some(State::Succeeded)),
        ] {
            records.insert(&QueryRecord { submitted_at, ..record(id) }).await.unwrap();
            if let Some(state) = state {
                records.set_state(id, state, Some(Utc::now()), None).await.unwrap();
            }
        }

        let mut pruned = records.prune(Utc::now() - chrono::Duration::days(7)).await.unwrap();
        pruned.sort();
        assert_eq!(pruned, ["old-done", "old-failed"]);
        assert_eq!(records.get("old-done").await.unwrap(), None);
        assert!(records.get("old-running").await.unwrap().is_some(), "an unfinished query stays");
        assert!(records.get("new-done").await.unwrap().is_some(), "a recent one stays");
        assert!(records.prune(Utc::now() - chrono::Duration::days(7)).await.unwrap().is_empty(), "once only");
    }
}
