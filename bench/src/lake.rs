//! `orders-bench lake`: the lake writer's rows/s, then the item-sales and monthly questions as ad-hoc SQL over
//! `order_lines_current` on the embedded engine (DataFusion, as `/queries` runs it: a fresh session per query, the
//! engine's memory limit), next to DuckDB over the same Parquet files with the same view text and the same limits,
//! in the same run. Both engines' answers are compared row by row before any time is printed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Duration, TimeZone, Utc};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use domain::change::Sequence;
use domain::{
    ChangeKind, ItemId, Lines, Order, OrderChange, OrderId, OrderLine, OrderStatus, Position, Quantity, UnitPrice,
    Version,
};
use rust_decimal::Decimal;

#[derive(clap::Args, Debug, Clone)]
pub struct LakeArgs {
    /// Lake rows to write (one per order line, one per removal), about 3.6 per order.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: usize,
    /// Changes per lake write: the local writer's largest batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Timed runs of each question on each engine (after one untimed run); the median is compared.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The item the monthly question asks about.
    #[arg(long, default_value = "item-42")]
    pub item: String,
    /// Memory each engine may use per query, in MiB (the embedded engine's default limit).
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: usize,
    /// A Python with `duckdb` installed (`scripts/bench-lake` makes one in .venv-bench).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    pub python: PathBuf,
    /// Where to write the lake (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also print DataFusion's `EXPLAIN ANALYZE` of each question (one extra, untimed run each).
    #[arg(long)]
    pub explain: bool,
}

/// The two questions, as an analyst would type them into `/queries`.
pub fn questions(item: &str) -> [(&'static str, String); 2] {
    [
        (
            "item sales",
            "SELECT itemid, SUM(quantity) AS totalordered, SUM(quantity * unitprice) AS totalrevenue, \
                    CAST(MAX(orderdate) AS DATE) AS lastorderdate, COUNT(DISTINCT orderid) AS ordercount \
             FROM order_lines_current GROUP BY itemid ORDER BY itemid"
                .to_owned(),
        ),
        (
            "monthly by item",
            format!(
                "SELECT CAST(date_trunc('month', orderdate) AS DATE) AS month, SUM(quantity) AS monthlyordered \
                 FROM order_lines_current WHERE itemid = '{item}' \
                 GROUP BY date_trunc('month', orderdate) ORDER BY month DESC"
            ),
        ),
    ]
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The change stream, produced batch by batch: orders in time order (1-5 lines over 5,000 items, 60 % priced,
/// dates over 36 months, as the stream delivers them: roughly by date), and for an order 500 places back, 10 %
/// amended (new quantities, next version), 10 % cancelled and 3 % removed.
struct Stream {
    rng: Rng,
    orders: usize,
    next_order: usize,
    sequence: u64,
    recent: std::collections::VecDeque<Order>,
}

impl Stream {
    const LAG: usize = 500;

    fn new(orders: usize) -> Stream {
        Stream {
            rng: Rng(0x2545_F491_4F6C_DD1D),
            orders,
            next_order: 0,
            sequence: 0,
            recent: std::collections::VecDeque::with_capacity(Self::LAG + 1),
        }
    }

    fn change(&mut self, kind: ChangeKind, before: Option<Order>, after: Option<Order>) -> anyhow::Result<OrderChange> {
        self.sequence += 1;
        let at = after.as_ref().or(before.as_ref()).map(|o| o.updated_at).context("an image")?;
        let position = Position { source: "bench".into(), sequence: Sequence::from(self.sequence) };
        Ok(OrderChange::new(kind, before, after, position, at)?)
    }

    fn order(&mut self, i: usize) -> anyhow::Result<Order> {
        let start = Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).single().context("date")?;
        let span_minutes = 36 * 30 * 24 * 60_i64;
        let rng = &mut self.rng;
        let n = 1 + (rng.next() % 5) as usize;
        let base = rng.next() % 5_000;
        let lines = (0..n)
            .map(|j| {
                Ok(OrderLine {
                    itemid: ItemId::parse(&format!("item-{}", (base + j as u64 * 997) % 5_000))?,
                    quantity: Quantity::new(1 + (rng.next() % 20) as u32).context("quantity")?,
                    unit_price: (rng.next() % 10 < 6)
                        .then(|| UnitPrice::new(Decimal::new((rng.next() % 100_000) as i64, 2)))
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let minute = span_minutes * i as i64 / self.orders.max(1) as i64;
        let date = start + Duration::minutes(minute) + Duration::seconds((rng.next() % 3_600) as i64);
        Ok(Order {
            order_id: OrderId::parse(&format!("bench-{i}"))?,
            items: Lines::new(lines)?,
            status: OrderStatus::Created,
            order_date: date,
            version: Version::FIRST,
            created_at: date,
            updated_at: date,
        })
    }

    /// The next `count` changes (fewer at the end).
    fn batch(&mut self, count: usize) -> anyhow::Result<Vec<OrderChange>> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count && self.next_order < self.orders {
            let order = self.order(self.next_order)?;
            self.next_order += 1;
            out.push(self.change(ChangeKind::Insert, None, Some(order.clone()))?);
            self.recent.push_back(order);
            if self.recent.len() > Self::LAG {
                let Some(old) = self.recent.pop_front() else { continue };
                let later = old.updated_at + Duration::minutes(30);
                match self.rng.next() % 100 {
                    0..=9 => {
                        let mut amended = old.clone();
                        let lines = old
                            .items
                            .as_slice()
                            .iter()
                            .map(|l| {
                                Ok(OrderLine {
                                    quantity: Quantity::new(l.quantity.get() % 20 + 1).context("q")?,
                                    ..l.clone()
                                })
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        amended.items = Lines::new(lines)?;
                        amended.version = old.version.next();
                        amended.updated_at = later;
                        out.push(self.change(ChangeKind::Modify, Some(old), Some(amended))?);
                    }
                    10..=19 => {
                        let mut cancelled = old.clone();
                        cancelled.status = OrderStatus::Cancelled;
                        cancelled.version = old.version.next();
                        cancelled.updated_at = later;
                        out.push(self.change(ChangeKind::Modify, Some(old), Some(cancelled))?);
                    }
                    20..=22 => {
                        let mut gone = old;
                        gone.updated_at = later;
                        out.push(self.change(ChangeKind::Remove, Some(gone), None)?);
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

/// A result as text cells, decimals normalised (DuckDB and DataFusion may pick different scales for a sum).
type Table = Vec<Vec<Option<String>>>;

fn normalise(cell: Option<String>) -> Option<String> {
    cell.map(|c| match c.parse::<Decimal>() {
        Ok(d) if c.contains('.') => d.normalize().to_string(),
        _ => c,
    })
}

fn table_of(batches: &[RecordBatch]) -> anyhow::Result<Table> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| normalise((!c.is_null(r)).then(|| f.value(r).to_string())))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

struct Timed {
    ms: Vec<f64>,
    answer: Table,
}

/// `sql` on the embedded engine as `/queries` runs it: a fresh session (listing the lake's files), the engine's
/// query options, and its time limit, so that a query that stops making progress fails the benchmark instead of
/// holding it forever.
async fn embedded(lake: &lake::Lake, args: &LakeArgs, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let ctx =
        adhoc_embedded::EmbeddedEngine::session(lake, args.memory_mb << 20).await.map_err(|e| anyhow::anyhow!(e))?;
    let limit = adhoc_embedded::EmbeddedSettings::default().timeout;
    let query =
        async { ctx.sql_with_options(sql, adhoc_embedded::EmbeddedEngine::query_options()).await?.collect().await };
    tokio::time::timeout(limit, query)
        .await
        .map_err(|_| anyhow::anyhow!("a DataFusion run passed the engine's time limit ({limit:?})"))?
        .map_err(Into::into)
}

/// Each question on the embedded engine, session creation included in each run's time.
async fn datafusion_runs(lake: &lake::Lake, args: &LakeArgs) -> anyhow::Result<Vec<Timed>> {
    let mut out = Vec::new();
    for (_, sql) in questions(&args.item) {
        let mut ms = Vec::with_capacity(args.runs);
        let mut answer = Vec::new();
        for run in 0..=args.runs {
            let started = Instant::now();
            let batches = embedded(lake, args, &sql).await?;
            if run > 0 {
                ms.push(started.elapsed().as_secs_f64() * 1e3);
            }
            answer = table_of(&batches)?;
        }
        if args.explain {
            for row in table_of(&embedded(lake, args, &format!("EXPLAIN ANALYZE {sql}")).await?)? {
                println!("{}", row.into_iter().flatten().collect::<Vec<_>>().join("\n"));
            }
        }
        out.push(Timed { ms, answer });
    }
    Ok(out)
}

/// The DuckDB side: one process, the same view text over the same files, UTC, the same memory and thread count.
const DUCKDB: &str = r#"
import json, sys, time, decimal
import duckdb
spec = json.loads(sys.argv[1])
con = duckdb.connect(config={"threads": spec["threads"], "memory_limit": f"{spec['memory_mb']}MB"})
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
glob = spec["lake"].rstrip("/") + "/order_lines/*/*.parquet"
con.execute(f"CREATE VIEW order_lines AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)")
con.execute("CREATE VIEW order_lines_current AS " + spec["view"])
out = {"version": duckdb.__version__, "questions": []}
for sql in spec["questions"]:
    ms, rows = [], []
    for run in range(spec["runs"] + 1):
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        if run > 0:
            ms.append((time.perf_counter() - started) * 1e3)
    cell = lambda v: None if v is None else str(v)
    out["questions"].append({"ms": ms, "rows": [[cell(v) for v in r] for r in rows]})
print(json.dumps(out))
"#;

async fn duckdb_runs(lake_dir: &Path, args: &LakeArgs, threads: usize) -> anyhow::Result<(String, Vec<Timed>)> {
    let spec = serde_json::json!({
        "lake": lake_dir.display().to_string(),
        "view": lake::current_view_query(lake::TABLE),
        "questions": questions(&args.item).iter().map(|(_, sql)| sql.clone()).collect::<Vec<_>>(),
        "runs": args.runs,
        "threads": threads,
        "memory_mb": args.memory_mb,
    });
    let output = tokio::process::Command::new(&args.python)
        .arg("-c")
        .arg(DUCKDB)
        .arg(spec.to_string())
        .output()
        .await
        .with_context(|| {
            format!("cannot run {} (scripts/bench-lake installs DuckDB into .venv-bench)", args.python.display())
        })?;
    if !output.status.success() {
        bail!(
            "DuckDB run failed (is duckdb installed in {}? scripts/bench-lake installs it): {}",
            args.python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).context("no JSON line in DuckDB's output")?;
    let v: serde_json::Value = serde_json::from_str(last).context("DuckDB's output")?;
    let version = v["version"].as_str().unwrap_or("?").to_owned();
    let timed = v["questions"]
        .as_array()
        .context("DuckDB's questions")?
        .iter()
        .map(|q| {
            let ms = q["ms"].as_array().map(|a| a.iter().filter_map(|m| m.as_f64()).collect()).unwrap_or_default();
            let answer = q["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            r.as_array()
                                .map(|cells| cells.iter().map(|c| normalise(c.as_str().map(str::to_owned))).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            Timed { ms, answer }
        })
        .collect();
    Ok((version, timed))
}

fn dir_size(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                let (b, f) = dir_size(&path);
                bytes += b;
                files += f;
            } else if path.extension().is_some_and(|x| x == "parquet") {
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                files += 1;
            }
        }
    }
    (bytes, files)
}

pub async fn run(args: LakeArgs) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().join("lake"));
    if dir.join(lake::TABLE).exists() {
        bail!("{} already holds a lake; give an empty --dir", dir.display());
    }
    let lake = lake::Lake::open(&dir.display().to_string())?;
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1);

    // 1. The writer: ~3.6 rows per order; generation is not timed, only `Lake::write`.
    let orders = args.rows * 10 / 36;
    let mut stream = Stream::new(orders);
    let (mut rows, mut changes, mut files) = (0usize, 0usize, 0usize);
    let mut writing = std::time::Duration::ZERO;
    loop {
        let batch = stream.batch(args.batch)?;
        if batch.is_empty() {
            break;
        }
        let started = Instant::now();
        let written = lake.write(&batch).await?;
        writing += started.elapsed();
        rows += written.rows;
        files += written.files;
        changes += batch.len();
    }
    let (bytes, on_disk) = dir_size(&dir);
    println!(
        "lake writer: {rows} rows from {changes} changes ({orders} orders) in {files} files, {:.0} MB, batches of {}",
        bytes as f64 / 1e6,
        args.batch
    );
    println!(
        "  {:.0} rows/s ({:.0} changes/s, {:.1} s writing; generation not timed)",
        rows as f64 / writing.as_secs_f64(),
        changes as f64 / writing.as_secs_f64(),
        writing.as_secs_f64()
    );
    if on_disk != files {
        bail!("{files} files written but {on_disk} on disk");
    }

    // 2. The questions on both engines, then the comparison.
    let ours = datafusion_runs(&lake, &args).await?;
    for ((name, _), t) in questions(&args.item).iter().zip(&ours) {
        println!("  DataFusion {name}: {:?} ms", t.ms.iter().map(|m| m.round()).collect::<Vec<_>>());
    }
    let (duck_version, theirs) = duckdb_runs(&dir, &args, threads).await?;
    for ((name, _), t) in questions(&args.item).iter().zip(&theirs) {
        println!("  DuckDB {name}: {:?} ms", t.ms.iter().map(|m| m.round()).collect::<Vec<_>>());
    }
    println!(
        "\nad-hoc questions over order_lines_current, {threads} threads, {} MiB per query, median of {} (after one untimed run):",
        args.memory_mb, args.runs
    );
    println!("{:<18} {:>14} {:>14} {:>8}   goal", "question", "DataFusion ms", "DuckDB ms", "ratio");
    let mut worst: f64 = 0.0;
    for (((name, _), ours), theirs) in questions(&args.item).iter().zip(&ours).zip(&theirs) {
        if ours.answer != theirs.answer {
            let first = ours.answer.iter().zip(&theirs.answer).position(|(a, b)| a != b);
            bail!(
                "{name}: the engines disagree ({} rows vs {}; first difference at row {first:?}: {:?} vs {:?})",
                ours.answer.len(),
                theirs.answer.len(),
                first.and_then(|i| ours.answer.get(i)),
                first.and_then(|i| theirs.answer.get(i)),
            );
        }
        if ours.answer.is_empty() {
            bail!("{name}: no rows; the benchmark would compare nothing");
        }
        let (a, b) = (median(ours.ms.clone()), median(theirs.ms.clone()));
        worst = worst.max(a / b);
        println!("{name:<18} {a:>14.0} {b:>14.0} {:>7.2}×   ≤ 1.50× ({} rows, equal)", a / b, ours.answer.len());
    }
    println!("DataFusion {} · DuckDB {duck_version}", datafusion::DATAFUSION_VERSION);
    println!("worst ratio {worst:.2}× (goal ≤ 1.50×)");
    drop(temp);
    Ok(())
}
