//! The embedded ad-hoc engine: Apache DataFusion over the local lake. Each query runs in a worker process of its
//! own (`worker`): killed at its time limit or on cancel whatever it is doing, held to its memory limit by the
//! kernel, at a lower priority than the APIs, and when it dies only its query fails. In it, a fresh session in
//! which only the lake's table (`order_lines`, Hive-partitioned by `dt`) and view (`order_lines_current`) exist,
//! no information schema, no URL tables, statements other than queries refused by DataFusion's own `SQLOptions`
//! (DDL, DML, SET). Results are written to `<results>/<id>.arrow` (Arrow IPC) and paged or downloaded (CSV,
//! streamed) from there; each execution's final state sits beside it as JSON, so finished queries survive a
//! restart.
//!
//! Linked by the local runner only: no Lambda carries DataFusion.

mod counting;
pub mod pool;
mod settings;
pub mod worker;

pub use settings::{EmbeddedArgs, EmbeddedSettings};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adhoc::engine::{Column, Download, Engine, EngineError, Execution, Page, State};
use async_trait::async_trait;
use chrono::Utc;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

struct Run {
    state: watch::Receiver<Execution>,
    task: tokio::task::AbortHandle,
}

pub struct EmbeddedEngine {
    lake: lake::Lake,
    results: PathBuf,
    settings: EmbeddedSettings,
    worker: worker::WorkerCommand,
    slots: Arc<Semaphore>,
    runs: Mutex<HashMap<String, Run>>,
}

fn unavailable(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

impl EmbeddedEngine {
    /// An engine over `lake`, keeping results in `results` (created if missing), running each query in a process
    /// started by `worker` (one that calls [`worker::main`]).
    pub fn new(
        lake: lake::Lake,
        results: PathBuf,
        settings: EmbeddedSettings,
        worker: worker::WorkerCommand,
    ) -> Result<EmbeddedEngine, String> {
        std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Ok(EmbeddedEngine { lake, results, settings, worker, slots, runs: Mutex::new(HashMap::new()) })
    }

    /// The lake this engine reads.
    pub fn lake(&self) -> &lake::Lake {
        &self.lake
    }

    /// A session that knows the lake and nothing else.
    pub async fn session(lake: &lake::Lake, memory_limit: usize) -> Result<SessionContext, String> {
        EmbeddedEngine::counted_session(lake, memory_limit, Arc::new(AtomicU64::new(0))).await
    }

    /// A session that knows the lake and nothing else, adding every byte it reads from the lake to `read`.
    pub async fn counted_session(
        lake: &lake::Lake,
        memory_limit: usize,
        read: Arc<AtomicU64>,
    ) -> Result<SessionContext, String> {
        // Spilling operators take memory as they need it but leave a quarter of the limit to those that cannot
        // spill (see `pool`).
        let pool = Arc::new(pool::HeadroomPool::new(memory_limit));
        let runtime = RuntimeEnvBuilder::new().with_memory_pool(pool).build_arc().map_err(|e| e.to_string())?;
        let mut config = SessionConfig::new().with_information_schema(false);
        // Joins keep the order the SQL gives them: the view puts the small side (one row per order
        // revision) first, where the hash table is built; swapped, the build side is every line and cannot spill.
        config.options_mut().optimizer.join_reordering = false;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let table_url = if let Some(rest) = lake.url().strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            let url = url_of(&format!("s3://{bucket}"))?;
            ctx.register_object_store(&url, Arc::new(counting::CountingStore::new(lake.store().clone(), read)));
            format!("s3://{bucket}/{}/", lake.table_path())
        } else {
            let local = Arc::new(object_store::local::LocalFileSystem::new());
            ctx.register_object_store(&url_of("file://")?, Arc::new(counting::CountingStore::new(local, read)));
            let dir = Path::new(lake.url()).join(lake::TABLE);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            format!("{}/", dir.display())
        };
        let table_url = ListingTableUrl::parse(&table_url).map_err(|e| e.to_string())?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("dt".to_owned(), DataType::Utf8)]);
        let config = ListingTableConfig::new(table_url).with_listing_options(options).with_schema(lake::schema());
        let table = ListingTable::try_new(config).map_err(|e| e.to_string())?;
        ctx.register_table(lake::TABLE, Arc::new(table)).map_err(|e| e.to_string())?;
        let view = format!("CREATE VIEW {} AS {}", lake::CURRENT_VIEW, lake::current_view_query(lake::TABLE));
        ctx.sql(&view).await.map_err(|e| e.to_string())?;
        Ok(ctx)
    }

    /// Only queries: DataFusion refuses DDL, DML and statements such as SET under these options.
    pub fn query_options() -> SQLOptions {
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
    }

    fn file(&self, id: &str, ext: &str) -> Result<PathBuf, EngineError> {
        uuid::Uuid::parse_str(id).map_err(|_| EngineError::NotFound)?;
        Ok(self.results.join(format!("{id}.{ext}")))
    }

    /// Deletes what the engine keeps of query `id` (its result, its final state): for results past their
    /// retention. A file already gone is not an error.
    pub fn forget(&self, id: &str) -> Result<(), EngineError> {
        self.file(id, "json")?; // only a query id names files
        {
            let mut runs = self.runs.lock().map_err(|_| unavailable("runs lock poisoned"))?;
            if runs.get(id).is_some_and(|run| !run.state.borrow().state.is_final()) {
                return Err(unavailable(format!("query {id} is still running")));
            }
            runs.remove(id);
        }
        for ext in ["arrow", "json", "arrow.partial"] {
            match std::fs::remove_file(self.file(id, ext)?) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    fn finished_state(&self, id: &str) -> Result<Option<Execution>, EngineError> {
        let path = self.file(id, "json")?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                Ok(Some(from_json(&bytes).ok_or_else(|| unavailable(format!("{}: unreadable", path.display())))?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn succeeded_file(&self, id: &str) -> Result<PathBuf, EngineError> {
        let state = self.status_now(id)?;
        if state.state != State::Succeeded {
            return Err(EngineError::NotReady(state.state));
        }
        self.file(id, "arrow")
    }

    fn status_now(&self, id: &str) -> Result<Execution, EngineError> {
        if let Some(run) = self.runs.lock().map_err(|_| unavailable("runs lock poisoned"))?.get(id) {
            return Ok(run.state.borrow().clone());
        }
        self.finished_state(id)?.ok_or(EngineError::NotFound)
    }
}

fn url_of(raw: &str) -> Result<url::Url, String> {
    url::Url::parse(raw).map_err(|e| e.to_string())
}

fn to_json(e: &Execution) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "state": e.state.as_str(),
        "submittedAt": e.submitted_at,
        "completedAt": e.completed_at,
        "bytesScanned": e.bytes_scanned,
        "runTimeMs": e.run_time_ms,
        "failure": e.failure,
    }))
    .unwrap_or_default()
}

fn from_json(bytes: &[u8]) -> Option<Execution> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let time = |k: &str| v.get(k).and_then(Value::as_str).and_then(|t| t.parse().ok());
    Some(Execution {
        state: State::parse(v.get("state")?.as_str()?)?,
        submitted_at: time("submittedAt"),
        completed_at: time("completedAt"),
        bytes_scanned: v.get("bytesScanned").and_then(Value::as_u64),
        run_time_ms: v.get("runTimeMs").and_then(Value::as_u64),
        failure: v.get("failure").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Runs `sql` and writes its result to `path` (as `<path>.partial` until it is whole), adding the bytes it reads
/// from the lake to `read`. Called in a worker process.
async fn execute(
    lake: &lake::Lake,
    memory_limit: usize,
    sql: &str,
    path: &Path,
    read: Arc<AtomicU64>,
) -> Result<(), String> {
    let ctx = EmbeddedEngine::counted_session(lake, memory_limit, read).await?;
    let frame = ctx.sql_with_options(sql, EmbeddedEngine::query_options()).await.map_err(|e| e.to_string())?;
    let plan = frame.create_physical_plan().await.map_err(|e| e.to_string())?;
    let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx()).map_err(|e| e.to_string())?;
    let partial = worker::partial_path(path);
    let file = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    let mut writer = FileWriter::try_new(std::io::BufWriter::new(file), &stream.schema()).map_err(|e| e.to_string())?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    std::fs::rename(&partial, path).map_err(|e| e.to_string())?;
    Ok(())
}

#[async_trait]
impl Engine for EmbeddedEngine {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn start(&self, sql: &str) -> Result<String, EngineError> {
        let id = uuid::Uuid::new_v4().to_string();
        let submitted = Utc::now();
        let queued = Execution {
            state: State::Queued,
            submitted_at: Some(submitted),
            completed_at: None,
            bytes_scanned: None,
            run_time_ms: None,
            failure: None,
        };
        let (tx, rx) = watch::channel(queued.clone());
        let (slots, timeout) = (self.slots.clone(), self.settings.timeout);
        let (result, state_file) = (self.file(&id, "arrow")?, self.file(&id, "json")?);
        let job = worker::Job {
            sql: sql.to_owned(),
            lake_url: self.lake.url().to_owned(),
            result,
            memory_limit: self.settings.memory_limit,
            parent: std::process::id(),
        };
        let command = self.worker.clone();
        let query = id.clone();
        let mut runs = self.runs.lock().map_err(|_| unavailable("runs lock poisoned"))?;
        let task = tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let started = Instant::now();
            tx.send_modify(|e| e.state = State::Running);
            // Aborting this task (a cancel) drops the worker's future, which kills the worker.
            let outcome = worker::run_job(&command, &job, timeout).await;
            let mut end = queued;
            end.completed_at = Some(Utc::now());
            end.run_time_ms = Some(started.elapsed().as_millis() as u64);
            match outcome {
                worker::Ended::Succeeded { bytes_scanned } => {
                    end.state = State::Succeeded;
                    end.bytes_scanned = Some(bytes_scanned);
                }
                worker::Ended::Failed(reason) => {
                    end.state = State::Failed;
                    end.failure = Some(reason);
                }
            }
            if let Err(e) = tokio::fs::write(&state_file, to_json(&end)).await {
                tracing::error!(query = %query, error = %e, "could not keep the query's final state");
            }
            tracing::info!(query = %query, state = end.state.as_str(), run_time_ms = end.run_time_ms, "query ended");
            tx.send_replace(end);
        });
        runs.insert(id.clone(), Run { state: rx, task: task.abort_handle() });
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<Execution, EngineError> {
        self.status_now(id)
    }

    async fn results(&self, id: &str, token: Option<&str>, max: u32) -> Result<Page, EngineError> {
        let path = self.succeeded_file(id)?;
        let offset: usize = match token {
            None => 0,
            Some(t) => t.parse().map_err(|_| EngineError::BadToken)?,
        };
        let max = max as usize;
        tokio::task::spawn_blocking(move || -> Result<Page, EngineError> {
            let file = std::fs::File::open(&path).map_err(unavailable)?;
            let reader = FileReader::try_new(std::io::BufReader::new(file), None).map_err(unavailable)?;
            let columns = columns(&reader.schema());
            let mut rows = Vec::with_capacity(max.min(1_000));
            let (mut seen, mut total) = (0usize, 0usize);
            for batch in reader {
                let batch = batch.map_err(unavailable)?;
                let n = batch.num_rows();
                let (from, to) = (offset.saturating_sub(seen).min(n), (offset + max).saturating_sub(seen).min(n));
                if from < to {
                    rows.extend(json_rows(&batch, from, to)?);
                }
                seen += n;
                total = seen;
            }
            if offset > total {
                return Err(EngineError::BadToken);
            }
            let next = (offset + max < total).then(|| (offset + max).to_string());
            Ok(Page { columns, rows, next })
        })
        .await
        .map_err(unavailable)?
    }

    async fn download(&self, id: &str, _lifetime: Duration) -> Result<Download, EngineError> {
        let path = self.succeeded_file(id)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            let send = |chunk: Result<Vec<u8>, String>| {
                tx.blocking_send(chunk.map(bytes::Bytes::from).map_err(std::io::Error::other)).is_ok()
            };
            let reader = match std::fs::File::open(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| FileReader::try_new(std::io::BufReader::new(f), None).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    send(Err(e));
                    return;
                }
            };
            let mut header = true;
            for batch in reader {
                let chunk = batch.map_err(|e| e.to_string()).and_then(|b| {
                    let mut out = Vec::new();
                    let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(header).build(&mut out);
                    w.write(&b).map_err(|e| e.to_string())?;
                    drop(w);
                    Ok(out)
                });
                header = false;
                if !send(chunk) {
                    return;
                }
            }
        });
        let stream = tokio_stream(rx);
        Ok(Download::Csv(axum_body(stream)))
    }

    async fn cancel(&self, id: &str) -> Result<(), EngineError> {
        let state_file = self.file(id, "json")?;
        let run = {
            let runs = self.runs.lock().map_err(|_| unavailable("runs lock poisoned"))?;
            runs.get(id).map(|r| (r.task.clone(), r.state.borrow().clone()))
        };
        let Some((task, current)) = run else {
            return self.finished_state(id)?.map(|_| ()).ok_or(EngineError::NotFound);
        };
        if current.state.is_final() {
            return Ok(());
        }
        task.abort();
        let mut end = current;
        end.state = State::Cancelled;
        end.completed_at = Some(Utc::now());
        std::fs::write(&state_file, to_json(&end)).map_err(unavailable)?;
        let _ = std::fs::remove_file(self.file(id, "arrow.partial")?);
        let mut runs = self.runs.lock().map_err(|_| unavailable("runs lock poisoned"))?;
        if let Some(run) = runs.remove(id) {
            // Keep a finished receiver so waiters see the cancel.
            let (tx, rx) = watch::channel(end);
            drop(tx);
            runs.insert(id.to_owned(), Run { state: rx, task: run.task });
        }
        Ok(())
    }

    async fn wait(&self, id: &str) -> Option<Execution> {
        let mut rx = self.runs.lock().ok()?.get(id)?.state.clone();
        loop {
            let now = rx.borrow_and_update().clone();
            if now.state.is_final() {
                return Some(now);
            }
            if rx.changed().await.is_err() {
                // The run was aborted (cancelled): its final state is on disk.
                return self.finished_state(id).ok().flatten();
            }
        }
    }
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn axum_body(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
) -> axum::body::Body {
    axum::body::Body::from_stream(stream)
}

/// Column names and their types in SQL words.
fn columns(schema: &SchemaRef) -> Vec<Column> {
    schema.fields().iter().map(|f| Column { name: f.name().clone(), kind: sql_type(f.data_type()) }).collect()
}

fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Dictionary(_, v) => sql_type(v),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// Rows `from..to` of `batch` as typed JSON values.
fn json_rows(batch: &RecordBatch, from: usize, to: usize) -> Result<Vec<Vec<Value>>, EngineError> {
    let columns: Vec<Vec<Value>> =
        batch.columns().iter().map(|a| column_values(a, from, to)).collect::<Result<_, _>>()?;
    Ok((0..to - from).map(|i| columns.iter().map(|c| c[i].clone()).collect()).collect())
}

/// Values `from..to` of one column: integers and floats as numbers, booleans as booleans, everything else
/// (decimals included, so they stay exact) as its text.
fn column_values(array: &ArrayRef, from: usize, to: usize) -> Result<Vec<Value>, EngineError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes as t;
    macro_rules! numbers {
        ($ty:ty) => {{
            let a = array.as_primitive::<$ty>();
            (from..to).map(|i| if a.is_null(i) { Value::Null } else { Value::from(a.value(i)) }).collect()
        }};
    }
    Ok(match array.data_type() {
        DataType::Int8 => numbers!(t::Int8Type),
        DataType::Int16 => numbers!(t::Int16Type),
        DataType::Int32 => numbers!(t::Int32Type),
        DataType::Int64 => numbers!(t::Int64Type),
        DataType::UInt8 => numbers!(t::UInt8Type),
        DataType::UInt16 => numbers!(t::UInt16Type),
        DataType::UInt32 => numbers!(t::UInt32Type),
        DataType::UInt64 => numbers!(t::UInt64Type),
        DataType::Float32 | DataType::Float64 => {
            let cast = datafusion::arrow::compute::cast(array, &DataType::Float64).map_err(unavailable)?;
            let a = cast.as_primitive::<t::Float64Type>();
            (from..to)
                .map(|i| {
                    if a.is_null(i) {
                        return Value::Null;
                    }
                    let x = a.value(i);
                    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or_else(|| Value::String(x.to_string()))
                })
                .collect()
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            (from..to).map(|i| if a.is_null(i) { Value::Null } else { Value::Bool(a.value(i)) }).collect()
        }
        _ => {
            let options = FormatOptions::default();
            let f = ArrayFormatter::try_new(array.as_ref(), &options).map_err(unavailable)?;
            (from..to)
                .map(|i| if array.is_null(i) { Value::Null } else { Value::String(f.value(i).to_string()) })
                .collect()
        }
    })
}
