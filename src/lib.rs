//! The local runner: with no configuration, the whole system in one process with its state under `./data`.
//! Each part is chosen by configuration (the same variables the Lambdas read); see the README's table.

pub mod rebuild;
pub mod settings;
pub mod tools;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use read_model::ReadModel;
use write_store::settings::{OpenError, Opened, StoreSettings};

pub use rebuild::{RebuildArgs, Summary, rebuild};
pub use settings::{QueryEngine, RunnerArgs, Settings};
pub use tools::{Source, dead_letters, project};

/// Connects to the read model and applies its migrations (`orders migrate`, and every start of the runner).
pub async fn migrate(settings: &Settings) -> Result<ReadModel, RunError> {
    if settings.read_model_url.starts_with("sqlite:") {
        let dir = &settings.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::ReadModel(format!("cannot create {}: {e}", dir.display())))?;
    }
    let model =
        settings.read_model.open(&settings.read_model_url).await.map_err(|e| RunError::ReadModel(e.to_string()))?;
    model.migrate().await.map_err(|e| RunError::ReadModel(format!("{e} (READ_MODEL_URL)")))?;
    Ok(model)
}

/// `migrate`, refusing a read model an interrupted rebuild left unfinished: serving or projecting into it would
/// present part of the orders as all of them.
pub async fn migrate_finished(settings: &Settings) -> Result<ReadModel, RunError> {
    let model = migrate(settings).await?;
    if let read_model::Target::Unfinished { source, started_at } =
        model.rebuild_target().await.map_err(|e| RunError::ReadModel(e.to_string()))?
    {
        return Err(RunError::ReadModel(format!(
            "READ_MODEL_URL holds a rebuild from {source} started {} that did not finish; run `orders rebuild` \
             again (it starts it clean), or point READ_MODEL_URL at the read model in use",
            domain::order::format_time(&started_at)
        )));
    }
    Ok(model)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Settings(#[from] clap::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {addr} ({var}): {source}")]
    Bind { var: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("read model: {0}")]
    ReadModel(String),
    #[error("lake: {0}")]
    Lake(String),
    #[error("ad-hoc SQL: {0}")]
    Adhoc(String),
}

/// The hidden subcommand that runs one embedded query (`adhoc_embedded::worker`).
pub const ADHOC_WORKER: &str = "adhoc-worker";

/// The `/queries` service for this process: the embedded engine over `lake` with records in
/// `DATA_DIR/queries.db` and notices in `DATA_DIR/outbox`, or Athena (`QUERY_ENGINE=athena`) configured as the
/// Lambda is.
pub async fn adhoc_queries(
    settings: &Settings,
    lake: &lake::Lake,
    query_addr: SocketAddr,
) -> Result<adhoc::http::Queries, RunError> {
    let identify = adhoc::http::fixed_identity(settings.dev_identity.clone());
    let service = match &settings.query_engine {
        QueryEngine::Athena(athena) => {
            let config = aws_config::load_from_env().await;
            adhoc::athena_service(&config, athena, None)
        }
        QueryEngine::Embedded => {
            let common = &settings.adhoc;
            // Each query runs in this executable, started again as `orders adhoc-worker`.
            let worker = adhoc_embedded::worker::WorkerCommand::this_executable(&[ADHOC_WORKER])
                .map_err(|e| RunError::Adhoc(format!("cannot find this executable to run queries in: {e}")))?;
            let engine = adhoc_embedded::EmbeddedEngine::new(
                lake.clone(),
                settings.data_dir.join("query-results"),
                settings.embedded_engine.clone(),
                worker,
            )
            .map_err(RunError::Adhoc)?;
            let records = adhoc::records::SqliteRecords::open(&settings.data_dir.join("queries.db"))
                .map_err(|e| RunError::Adhoc(e.to_string()))?;
            let lost = records
                .fail_unfinished("the local process stopped while the query ran; submit it again")
                .await
                .map_err(|e| RunError::Adhoc(e.to_string()))?;
            if lost > 0 {
                tracing::warn!(queries = lost, "queries left unfinished by an earlier run are marked FAILED");
            }
            let (engine, records) = (Arc::new(engine), Arc::new(records));
            let retention = chrono::Duration::from_std(common.retention).unwrap_or(chrono::Duration::days(7));
            tokio::spawn(prune_queries(engine.clone(), records.clone(), retention));
            let outbox = adhoc::notice::Outbox::new(settings.data_dir.join("outbox"), "orders@localhost".into());
            Arc::new(adhoc::Service::new(
                engine,
                records,
                Some(Arc::new(outbox)),
                adhoc::ServiceSettings {
                    guard: adhoc::guard::GuardConfig::lake(common.database.clone()),
                    link_lifetime: common.link_lifetime,
                    link_base: Some(format!("http://{query_addr}")),
                },
            ))
        }
    };
    Ok(adhoc::http::Queries { service: Some(service), identify })
}

/// Local query records and their results past `RESULT_RETENTION_DAYS`, as DynamoDB's TTL and the results
/// bucket's lifecycle remove them in AWS: at start, then every hour.
async fn prune_queries(
    engine: Arc<adhoc_embedded::EmbeddedEngine>,
    records: Arc<adhoc::records::SqliteRecords>,
    retention: chrono::Duration,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match records.prune(chrono::Utc::now() - retention).await {
            Ok(ids) => {
                for id in &ids {
                    if let Err(error) = engine.forget(id) {
                        tracing::warn!(%error, query = %id, "cannot delete an expired query's result");
                    }
                }
                if !ids.is_empty() {
                    tracing::info!(queries = ids.len(), "expired queries and their results deleted");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot prune expired queries"),
        }
    }
}

/// Follows the embedded store's change log into the lake until `stop` turns true.
async fn tail_lake(
    lake: lake::Lake,
    store: Arc<write_store::embedded::EmbeddedStore>,
    flush_every: std::time::Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let sink = lake::sink::LakeSink { lake, positions: true };
    let settings = change_feed::TailSettings::every(flush_every, 10_000);
    change_feed::tail(&sink, &change_feed::EmbeddedLog(store), settings, stop).await;
}

/// How long, after the servers have stopped, the projector and the lake writer get to finish what they hold. With
/// the servers' own grace (`web::ServeSettings::shutdown_grace`, 10 s), a shutdown takes at most 15 s.
pub const BACKGROUND_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until `shutdown` resolves, then finishes in-flight requests and closes the store.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    let opened = settings.store.open_typed().await?;
    let store = opened.store();
    let kind = store.kind();
    let model = Arc::new(migrate_finished(&settings).await?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let projector = match &opened {
        Opened::Embedded(embedded) => {
            tracing::info!(
                read_model = model.dialect().name(),
                "projecting the embedded change log into the read model"
            );
            Some(tokio::spawn(tail_embedded(model.clone(), embedded.clone(), stopped.clone())))
        }
        Opened::DynamoDb(_) => {
            tracing::warn!(
                "ORDERS_STORE=dynamodb: this process does not project; the table's stream feeds the projector"
            );
            None
        }
    };
    let lake = lake::Lake::open(&settings.lake_url).map_err(|e| RunError::Lake(e.to_string()))?;
    let lake_writer = match &opened {
        Opened::Embedded(embedded) => {
            tracing::info!(lake = lake.url(), "writing the embedded change log to the lake");
            Some(tokio::spawn(tail_lake(lake.clone(), embedded.clone(), settings.lake_flush, stopped.clone())))
        }
        Opened::DynamoDb(_) => None,
    };
    let bind = |var: &'static str, addr: SocketAddr| async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Bind { var, addr, source })?;
        let local = listener.local_addr().map_err(RunError::Serve)?;
        Ok::<_, RunError>((listener, local))
    };
    let (commands, command_addr) = bind("COMMAND_API_ADDR", settings.command_api_addr).await?;
    let (queries, query_addr) = bind("QUERY_API_ADDR", settings.query_api_addr).await?;
    // On stdout, one line per listener: people read it, and tests use it to find a port chosen by the OS.
    println!("command API listening on http://{command_addr} (store: {kind})");
    println!("query API listening on http://{query_addr} (read model: {})", model.dialect().name());
    if let StoreSettings::Embedded { data_dir } = &settings.store {
        tracing::info!(data_dir = %data_dir.display(), "embedded store: orders and change log in {}/orders.db", data_dir.display());
    }
    // One shutdown signal, both servers.
    let (quit, quitting) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = quit.send(true);
    });
    let signal = move || {
        let mut quitting = quitting.clone();
        async move {
            let _ = quitting.wait_for(|q| *q).await;
        }
    };
    let reader = match &settings.read_model_reader_url {
        Some(url) => Arc::new(
            settings
                .read_model
                .open(url)
                .await
                .map_err(|e| RunError::ReadModel(format!("{e} (READ_MODEL_READER_URL)")))?,
        ),
        None => model.clone(),
    };
    let adhoc = adhoc_queries(&settings, &lake, query_addr).await?;
    let mut query_settings = settings.query_api.clone();
    // The dashboard calls the command API this process serves, unless told otherwise; the command API lets the
    // query API's own origin call it, unless told which origins may.
    query_settings.dashboard.command_api.get_or_insert_with(|| format!("http://{}", browsable(command_addr)));
    let origins = match settings.dashboard_origins.is_empty() {
        true => own_origins(query_addr),
        false => settings.dashboard_origins.clone(),
    };
    let query_app = match &opened {
        Opened::Embedded(embedded) => {
            let feed = Arc::new(EmbeddedFeed(embedded.clone()));
            query_api::app_watching(reader, query_settings, adhoc, feed)
        }
        Opened::DynamoDb(_) => query_api::app_with_queries(reader, query_settings, adhoc),
    };
    let serving = web::ServeSettings::default();
    let (served, queried) = tokio::join!(
        web::serve(commands, command_api::app_with_origins(store, &origins), signal(), serving),
        web::serve(queries, query_app, signal(), serving),
    );
    // The projector finishes the batch in hand, then the store's writer drains as the last handle drops. A batch
    // that cannot finish (a database gone silent) is abandoned after `BACKGROUND_GRACE`: it was one transaction,
    // so nothing of it is kept, and the next start applies it again.
    let _ = stop.send(true);
    for (name, task) in [("projector", projector), ("lake writer", lake_writer)] {
        let Some(mut task) = task else { continue };
        if tokio::time::timeout(BACKGROUND_GRACE, &mut task).await.is_err() {
            tracing::warn!(task = name, grace_secs = BACKGROUND_GRACE.as_secs(), "did not stop in time; abandoned");
            task.abort();
        }
    }
    drop(opened);
    served.map_err(RunError::Serve)?;
    queried.map_err(RunError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// `addr` as a browser on this machine reaches it: an unspecified address (0.0.0.0, ::) as loopback.
fn browsable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The origins a browser on this machine gives the query API listening on `addr`: its address, and `localhost`
/// when that address is loopback or unspecified.
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let shown = browsable(addr);
    let mut origins = vec![format!("http://{shown}")];
    if shown.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", addr.port()));
    }
    origins
}

/// The embedded change log as the query side's view of the feed: exactly what waits after the applied position.
struct EmbeddedFeed(Arc<write_store::embedded::EmbeddedStore>);

#[async_trait::async_trait]
impl query_api::FeedWatch for EmbeddedFeed {
    async fn backlogs(&self, applied: &[read_model::PositionRow]) -> Result<Vec<query_api::FeedBacklog>, String> {
        let source = write_store::embedded::SOURCE;
        let after = applied
            .iter()
            .find(|p| p.source == source)
            .map(|p| p.sequence.as_str().parse::<u64>().map_err(|e| format!("position {:?}: {e}", p.sequence)))
            .transpose()?
            .unwrap_or(0);
        let backlog = self.0.backlog_after(after).await.map_err(|e| e.to_string())?;
        Ok(vec![query_api::FeedBacklog {
            source: source.to_owned(),
            head: backlog.head.map(|(seq, at)| (domain::change::Sequence::from(seq), at)),
            behind: backlog.behind,
            at_least: false,
            oldest_pending: backlog.oldest_pending,
        }])
    }
}

/// Follows the embedded store's change log into `model` until `stop` turns true.
pub(crate) async fn tail_embedded(
    model: Arc<ReadModel>,
    store: Arc<write_store::embedded::EmbeddedStore>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let sink = projector::ReadModelSink(model);
    change_feed::tail(&sink, &change_feed::EmbeddedLog(store), change_feed::TailSettings::PROMPT, stop).await;
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// signal that arrives between "listening" and the first poll would otherwise take the
/// default action and kill the process instead of shutting it down cleanly. Call it inside
/// the runtime, before announcing the listeners.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, signal = name, "cannot listen for the signal");
            None
        }
    };
    let interrupt = install(SignalKind::interrupt(), "SIGINT");
    let terminate = install(SignalKind::terminate(), "SIGTERM");
    async move {
        async fn recv(s: Option<tokio::signal::unix::Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(interrupt) => {},
            () = recv(terminate) => {},
        }
        tracing::info!("shutting down");
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}
