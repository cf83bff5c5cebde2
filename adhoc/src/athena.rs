//! The Athena engine (`QUERY_ENGINE=athena`): StartQueryExecution in the configured workgroup and database (the
//! workgroup enforces the output location; the caller chooses none of the three), GetQueryExecution for state,
//! GetQueryResults with the NextToken fed back and the header row dropped on the first page only, StopQueryExecution
//! to cancel, and a presigned GET of the result CSV for downloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use chrono::{DateTime, Utc};

use crate::engine::{Column, Download, Engine, EngineError, Execution, Page, State, typed};

/// An execution as Athena describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaExecution {
    pub execution: Execution,
    /// `s3://bucket/key.csv`
    pub output_location: Option<String>,
}

/// One GetQueryResults answer: every cell as Athena's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaPage {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
    pub next: Option<String>,
}

/// The Athena calls the engine makes; the SDK client implements it, tests use fakes.
#[async_trait]
pub trait AthenaApi: Send + Sync {
    async fn start(&self, sql: &str, workgroup: &str, database: &str) -> Result<String, EngineError>;
    async fn describe(&self, id: &str) -> Result<AthenaExecution, EngineError>;
    async fn page(&self, id: &str, token: Option<&str>, max: i32) -> Result<AthenaPage, EngineError>;
    async fn stop(&self, id: &str) -> Result<(), EngineError>;
}

/// Presigned links to result objects.
#[async_trait]
pub trait Presign: Send + Sync {
    async fn presign(&self, s3_url: &str, lifetime: Duration) -> Result<String, EngineError>;
}

pub struct AthenaEngine {
    api: Arc<dyn AthenaApi>,
    presign: Arc<dyn Presign>,
    workgroup: String,
    database: String,
    /// The workgroup's enforced output location (`ATHENA_OUTPUT_LOCATION`), for when GetQueryExecution does not
    /// report one: Athena names each result `<location>/<QueryExecutionId>.csv`.
    output_location: Option<String>,
}

impl AthenaEngine {
    pub fn new(
        api: Arc<dyn AthenaApi>,
        presign: Arc<dyn Presign>,
        workgroup: String,
        database: String,
    ) -> AthenaEngine {
        AthenaEngine { api, presign, workgroup, database, output_location: None }
    }

    pub fn with_output_location(mut self, location: Option<String>) -> AthenaEngine {
        self.output_location = location;
        self
    }

    async fn succeeded(&self, id: &str) -> Result<AthenaExecution, EngineError> {
        let described = self.api.describe(id).await?;
        match described.execution.state {
            State::Succeeded => Ok(described),
            other => Err(EngineError::NotReady(other)),
        }
    }

    /// Every row of a succeeded query, page after page with each NextToken fed back (for callers that need the
    /// whole result in this process).
    pub async fn all_rows(&self, id: &str) -> Result<(Vec<Column>, Vec<Vec<serde_json::Value>>), EngineError> {
        let mut token: Option<String> = None;
        let mut rows = Vec::new();
        loop {
            let page = self.results(id, token.as_deref(), 1_000).await?;
            rows.extend(page.rows);
            match page.next {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                Some(_) => return Err(EngineError::Unavailable("Athena returned the same NextToken twice".into())),
                None => return Ok((page.columns, rows)),
            }
        }
    }
}

#[async_trait]
impl Engine for AthenaEngine {
    fn name(&self) -> &'static str {
        "athena"
    }

    async fn start(&self, sql: &str) -> Result<String, EngineError> {
        self.api.start(sql, &self.workgroup, &self.database).await
    }

    async fn status(&self, id: &str) -> Result<Execution, EngineError> {
        Ok(self.api.describe(id).await?.execution)
    }

    async fn results(&self, id: &str, token: Option<&str>, max: u32) -> Result<Page, EngineError> {
        self.succeeded(id).await?;
        let first = token.is_none();
        // The first page carries the header row, and it counts against MaxResults.
        let ask = if first { (max + 1).min(1_000) } else { max.min(1_000) };
        let page = self.api.page(id, token, ask as i32).await?;
        let mut rows = page.rows;
        if first && !rows.is_empty() {
            let header: Vec<Option<String>> = page.columns.iter().map(|c| Some(c.name.clone())).collect();
            if rows[0] == header {
                rows.remove(0);
            }
        }
        let typed_rows = rows
            .into_iter()
            .map(|row| {
                row.iter().zip(&page.columns).map(|(cell, column)| typed(&column.kind, cell.as_deref())).collect()
            })
            .collect();
        Ok(Page { columns: page.columns, rows: typed_rows, next: page.next })
    }

    async fn download(&self, id: &str, lifetime: Duration) -> Result<Download, EngineError> {
        let described = self.succeeded(id).await?;
        let location = described
            .output_location
            .or_else(|| self.output_location.as_ref().map(|l| format!("{}/{id}.csv", l.trim_end_matches('/'))))
            .ok_or_else(|| EngineError::Unavailable("Athena reported no output location".into()))?;
        Ok(Download::Redirect(self.presign.presign(&location, lifetime).await?))
    }

    async fn cancel(&self, id: &str) -> Result<(), EngineError> {
        self.api.stop(id).await
    }
}

/// The SDK client as `AthenaApi`.
pub struct SdkAthena(pub aws_sdk_athena::Client);

fn unavailable(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

fn chrono_time(t: Option<&aws_sdk_athena::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn not_found_or<E>(e: aws_sdk_athena::error::SdkError<E>) -> EngineError
where
    E: aws_sdk_athena::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let invalid = e.as_service_error().and_then(|s| s.code()).is_some_and(|c| c == "InvalidRequestException");
    if invalid { EngineError::NotFound } else { unavailable(aws_sdk_athena::error::DisplayErrorContext(e)) }
}

#[async_trait]
impl AthenaApi for SdkAthena {
    async fn start(&self, sql: &str, workgroup: &str, database: &str) -> Result<String, EngineError> {
        let started = self
            .0
            .start_query_execution()
            .query_string(sql)
            .work_group(workgroup)
            .query_execution_context(QueryExecutionContext::builder().database(database).build())
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_athena::error::DisplayErrorContext(e)))?;
        started.query_execution_id.ok_or_else(|| unavailable("StartQueryExecution returned no id"))
    }

    async fn describe(&self, id: &str) -> Result<AthenaExecution, EngineError> {
        let got = self.0.get_query_execution().query_execution_id(id).send().await.map_err(not_found_or)?;
        let q = got.query_execution.ok_or(EngineError::NotFound)?;
        let status = q.status.as_ref();
        let state = match status.and_then(|s| s.state.as_ref()) {
            Some(QueryExecutionState::Queued) => State::Queued,
            Some(QueryExecutionState::Running) => State::Running,
            Some(QueryExecutionState::Succeeded) => State::Succeeded,
            Some(QueryExecutionState::Cancelled) => State::Cancelled,
            _ => State::Failed,
        };
        let stats = q.statistics.as_ref();
        Ok(AthenaExecution {
            execution: Execution {
                state,
                submitted_at: chrono_time(status.and_then(|s| s.submission_date_time.as_ref())),
                completed_at: chrono_time(status.and_then(|s| s.completion_date_time.as_ref())),
                bytes_scanned: stats.and_then(|s| s.data_scanned_in_bytes).and_then(|b| u64::try_from(b).ok()),
                run_time_ms: stats
                    .and_then(|s| s.total_execution_time_in_millis.or(s.engine_execution_time_in_millis))
                    .and_then(|b| u64::try_from(b).ok()),
                failure: status.and_then(|s| s.state_change_reason.clone()).filter(|_| state == State::Failed),
            },
            output_location: q.result_configuration.and_then(|r| r.output_location),
        })
    }

    async fn page(&self, id: &str, token: Option<&str>, max: i32) -> Result<AthenaPage, EngineError> {
        let got = self
            .0
            .get_query_results()
            .query_execution_id(id)
            .set_next_token(token.map(str::to_owned))
            .max_results(max)
            .send()
            .await
            .map_err(|e| {
                let code = e.as_service_error().and_then(aws_sdk_athena::error::ProvideErrorMetadata::code);
                match code {
                    // A NextToken Athena does not know.
                    Some("InvalidRequestException") if token.is_some() => EngineError::BadToken,
                    _ => not_found_or(e),
                }
            })?;
        let set = got.result_set.unwrap_or_else(|| aws_sdk_athena::types::ResultSet::builder().build());
        let columns = set
            .result_set_metadata
            .map(|m| m.column_info.unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let kind = if c.r#type == "decimal" {
                    format!("decimal({},{})", c.precision, c.scale)
                } else {
                    c.r#type.clone()
                };
                Column { name: c.label.filter(|l| !l.is_empty()).unwrap_or(c.name), kind }
            })
            .collect();
        let rows = set
            .rows
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.data.unwrap_or_default().into_iter().map(|d| d.var_char_value).collect())
            .collect();
        Ok(AthenaPage { columns, rows, next: got.next_token })
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        self.0.stop_query_execution().query_execution_id(id).send().await.map_err(not_found_or)?;
        Ok(())
    }
}

/// Presigned S3 GETs signed with the function's own credentials (object_store's signer; no S3 SDK). Links signed
/// with temporary credentials stop working when those expire, whatever lifetime was asked for.
#[derive(Default)]
pub struct S3Presign {
    stores: Mutex<HashMap<String, Arc<object_store::aws::AmazonS3>>>,
}

#[async_trait]
impl Presign for S3Presign {
    async fn presign(&self, s3_url: &str, lifetime: Duration) -> Result<String, EngineError> {
        use object_store::signer::Signer;
        let rest = s3_url.strip_prefix("s3://").ok_or_else(|| unavailable(format!("not an s3:// URL: {s3_url}")))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| unavailable(format!("no key in {s3_url}")))?;
        let store = {
            let mut stores = self.stores.lock().map_err(|_| unavailable("presigner lock poisoned"))?;
            match stores.get(bucket) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(lake::s3_store(bucket).map_err(unavailable)?);
                    stores.insert(bucket.to_owned(), s.clone());
                    s
                }
            }
        };
        let url = store
            .signed_url(http::Method::GET, &object_store::path::Path::from(key), lifetime)
            .await
            .map_err(unavailable)?;
        Ok(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Athena with three pages of results for one query, recording the tokens it was given.
    struct Paged {
        given: Mutex<Vec<(Option<String>, i32)>>,
    }

    fn col(name: &str, kind: &str) -> Column {
        Column { name: name.into(), kind: kind.into() }
    }

    #[async_trait]
    impl AthenaApi for Paged {
        async fn start(&self, _: &str, _: &str, _: &str) -> Result<String, EngineError> {
            Ok("q1".into())
        }
        async fn describe(&self, _: &str) -> Result<AthenaExecution, EngineError> {
            Ok(AthenaExecution {
                execution: Execution {
                    state: State::Succeeded,
                    submitted_at: None,
                    completed_at: None,
                    bytes_scanned: Some(1),
                    run_time_ms: Some(1),
                    failure: None,
                },
                output_location: Some("s3://results/q1.csv".into()),
            })
        }
        async fn page(&self, _: &str, token: Option<&str>, max: i32) -> Result<AthenaPage, EngineError> {
            self.given.lock().unwrap().push((token.map(str::to_owned), max));
            let columns = vec![col("itemid", "varchar"), col("total", "bigint")];
            let row = |a: &str, b: &str| vec![Some(a.to_owned()), Some(b.to_owned())];
            let (rows, next) = match token {
                None => (vec![row("itemid", "total"), row("a", "1"), row("b", "2")], Some("t1")),
                // A data row that happens to look like the header is kept on later pages.
                Some("t1") => (vec![row("itemid", "total"), row("c", "3")], Some("t2")),
                Some("t2") => (vec![row("d", "4")], None),
                Some(_) => return Err(EngineError::BadToken),
            };
            Ok(AthenaPage { columns, rows, next: next.map(str::to_owned) })
        }
        async fn stop(&self, _: &str) -> Result<(), EngineError> {
            Ok(())
        }
    }

    struct NoPresign;
    #[async_trait]
    impl Presign for NoPresign {
        async fn presign(&self, url: &str, _: Duration) -> Result<String, EngineError> {
            Ok(format!("https://signed/{url}"))
        }
    }

    #[tokio::test]
    async fn given_three_pages_when_reading_all_then_each_next_token_is_fed_back_and_only_the_first_header_dropped() {
        let api = Arc::new(Paged { given: Mutex::new(vec![]) });
        let engine = AthenaEngine::new(api.clone(), Arc::new(NoPresign), "wg".into(), "db".into());

        let (columns, rows) = engine.all_rows("q1").await.unwrap();

        assert_eq!(columns, vec![col("itemid", "varchar"), col("total", "bigint")]);
        assert_eq!(
            rows,
            vec![
                vec![json!("a"), json!(1)],
                vec![json!("b"), json!(2)],
                vec![json!("itemid"), json!("total")],
                vec![json!("c"), json!(3)],
                vec![json!("d"), json!(4)],
            ]
        );
        let given = api.given.lock().unwrap().clone();
        assert_eq!(given, vec![(None, 1000), (Some("t1".into()), 1000), (Some("t2".into()), 1000)]);
    }

    #[tokio::test]
    async fn the_first_page_asks_for_one_more_row_to_make_room_for_the_header() {
        let api = Arc::new(Paged { given: Mutex::new(vec![]) });
        let engine = AthenaEngine::new(api.clone(), Arc::new(NoPresign), "wg".into(), "db".into());
        let page = engine.results("q1", None, 2).await.unwrap();
        assert_eq!(page.rows.len(), 2);
        assert_eq!(page.next.as_deref(), Some("t1"));
        assert_eq!(api.given.lock().unwrap()[0], (None, 3));
        let Download::Redirect(url) = engine.download("q1", Duration::from_secs(60)).await.unwrap() else {
            panic!("Athena downloads are links")
        };
        assert_eq!(url, "https://signed/s3://results/q1.csv");
    }
}
