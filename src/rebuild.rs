//! `orders rebuild`: the read model again, in bulk, from a snapshot of the write model (the embedded store's
//! snapshot, or a parallel consistent Scan of the DynamoDB table), with a progress bar and a final summary. An
//! interrupted rebuild leaves its target marked unfinished (`read_model::Target::Unfinished`).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use read_model::{ReadModel, Rebuilt, SnapshotPosition, Target};
use write_store::settings::Opened;

use crate::{RunError, Settings, migrate};

/// Orders per chunk read from the embedded store's snapshot and loaded at once.
const CHUNK: usize = 10_000;

/// A rebuild's statements (a whole table's key, a GROUP BY over every line) take far longer than a batch's.
const STATEMENT_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Segments of the DynamoDB table's parallel Scan (ORDERS_STORE=dynamodb), each read by a task of its own.
    /// Default: eight per CPU, at most 64.
    #[arg(long, env = "REBUILD_SCAN_SEGMENTS", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub scan_segments: Option<u16>,
}

impl RebuildArgs {
    fn segments(&self) -> i32 {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        self.scan_segments.map(i32::from).unwrap_or_else(|| i32::try_from((cpus * 8).min(64)).unwrap_or(8))
    }
}

/// What a rebuild wrote and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub rebuilt: Rebuilt,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.rebuilt;
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "rebuilt the read model from {} orders: {} lines, {} items, {} item-months in {secs:.1} s ({:.0} lines/s)",
            r.orders,
            r.lines,
            r.items,
            r.months,
            r.lines as f64 / secs.max(1e-9)
        )
    }
}

fn failed(e: impl std::fmt::Display) -> RunError {
    RunError::ReadModel(e.to_string())
}

fn progress(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} orders, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {human_pos} orders, {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `orders rebuild` until done or until `shutdown` resolves: then the target stays marked unfinished.
pub async fn rebuild(
    settings: Settings,
    args: RebuildArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary, RunError> {
    let model = migrate(&settings).await?.with_statement_timeout(STATEMENT_LIMIT);
    match model.rebuild_target().await.map_err(failed)? {
        Target::Projected => {
            return Err(failed(
                "READ_MODEL_URL already holds a projection; rebuild fills an empty read model (point READ_MODEL_URL \
                 at a fresh database, then switch over)",
            ));
        }
        Target::Unfinished { source, started_at } => eprintln!(
            "READ_MODEL_URL holds an unfinished rebuild (from {source}, started {}): starting it clean",
            domain::order::format_time(&started_at)
        ),
        Target::Empty => {}
    }
    let started = Instant::now();
    let opened = settings.store.open_typed().await?;
    tokio::select! {
        rebuilt = load(&model, opened, &args) => Ok(Summary { rebuilt: rebuilt?, elapsed: started.elapsed() }),
        () = shutdown => Err(failed(
            "rebuild interrupted: READ_MODEL_URL is marked unfinished (the runner will not use it); run \
             `orders rebuild` again to start it clean",
        )),
    }
}

async fn load(model: &ReadModel, opened: Opened, args: &RebuildArgs) -> Result<Rebuilt, RunError> {
    match opened {
        Opened::Embedded(store) => {
            // One consistent snapshot; the live tail then continues from the position it reflects.
            let mut snapshot = store.snapshot_stream(CHUNK).await.map_err(failed)?;
            let head = snapshot.head;
            let bar = progress(Some(head.orders));
            let mut rebuild = model.start_rebuild(write_store::embedded::SOURCE).await.map_err(failed)?;
            while let Some(chunk) = snapshot.next().await {
                let chunk = chunk.map_err(failed)?;
                bar.inc(chunk.len() as u64);
                rebuild.load(chunk).await.map_err(failed)?;
            }
            bar.finish_and_clear();
            let positions: Vec<SnapshotPosition> = head
                .changed_at
                .map(|changed_at| SnapshotPosition {
                    source: write_store::embedded::SOURCE.into(),
                    sequence: domain::change::Sequence::from(head.position),
                    changed_at,
                })
                .into_iter()
                .collect();
            rebuild.finish(&positions).await.map_err(failed)
        }
        Opened::DynamoDb(store) => {
            // A parallel consistent Scan; the stream's projector follows afterwards from before the scan began,
            // and the version guard lets whichever holds the newer state of an order win (docs/operations.md).
            let scan_started = chrono::Utc::now();
            let segments = args.segments();
            let (pages, mut arrived) = tokio::sync::mpsc::channel(2 * segments as usize);
            for segment in 0..segments {
                let (store, pages) = (store.clone(), pages.clone());
                tokio::spawn(async move {
                    let mut start = None;
                    loop {
                        let page = store.scan_page(start, Some((segment, segments))).await;
                        let next = page.as_ref().ok().and_then(|(_, next)| next.clone());
                        if pages.send(page.map(|(orders, _)| orders)).await.is_err() || next.is_none() {
                            return;
                        }
                        start = next;
                    }
                });
            }
            drop(pages);
            let source = format!("rebuild:{}", store.table());
            let bar = progress(None);
            let mut rebuild = model.start_rebuild(&source).await.map_err(failed)?;
            let mut orders = 0u64;
            while let Some(page) = arrived.recv().await {
                let page = page.map_err(failed)?;
                orders += page.len() as u64;
                bar.inc(page.len() as u64);
                rebuild.load(page).await.map_err(failed)?;
            }
            bar.finish_and_clear();
            let at =
                SnapshotPosition { source, sequence: domain::change::Sequence::from(orders), changed_at: scan_started };
            rebuild.finish(&[at]).await.map_err(failed)
        }
    }
}
