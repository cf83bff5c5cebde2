//! `orders-bench post`: POST /orders throughput and latency on the embedded store, with load from this process and
//! the server in a child process, next to raw SQLite inserts of the same rows measured in the same run.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of unmeasured warm-up load before it.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Concurrent keep-alive connections, each sending its next order as soon as the last is answered.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
}

/// A deterministic order body: three lines over 5,000 items, some priced.
fn body(worker: usize, n: u64) -> String {
    let mut x = (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = || {
        x ^= x >> 31;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x
    };
    let base = next() % 5_000;
    let lines: Vec<String> = (0..3)
        .map(|i| {
            let item = (base + i * 1_667) % 5_000;
            let qty = next() % 20 + 1;
            if i == 0 {
                format!(r#"{{"itemid":"item-{item}","quantity":{qty},"unitPrice":"{}.99"}}"#, next() % 100)
            } else {
                format!(r#"{{"itemid":"item-{item}","quantity":{qty}}}"#)
            }
        })
        .collect();
    format!(r#"{{"orderId":"bench-{worker}-{n}","items":[{}]}}"#, lines.join(","))
}

struct Server {
    child: tokio::process::Child,
    url: String,
}

async fn start_server(data_dir: &Path) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("COMMAND_API_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the server process")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("server did not start within 30 s")??
        .context("server exited before listening")?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .with_context(|| format!("unexpected server output: {line}"))?
        .to_owned();
    Ok(Server { child, url })
}

async fn stop_server(mut server: Server) -> anyhow::Result<()> {
    if let Some(pid) = server.child.id() {
        std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().context("kill -INT")?;
    }
    let status =
        tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await.context("server did not stop")??;
    if !status.success() {
        bail!("server exited with {status}");
    }
    Ok(())
}

struct Load {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

async fn load(url: &str, connections: usize, warmup: Duration, measure: Duration) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + measure;
    let url = Arc::new(format!("{url}/orders"));
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let (client, url) = (client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut n = 0u64;
            while Instant::now() < until {
                let body = body(worker, n);
                n += 1;
                let sent = Instant::now();
                let ok = match client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status() == reqwest::StatusCode::CREATED && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if sent >= measure_from && Instant::now() <= until {
                    if ok {
                        latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Load { latencies_us: Vec::new(), errors: 0, elapsed: measure };
    for w in workers {
        let (l, e) = w.await?;
        all.latencies_us.extend(l);
        all.errors += e;
    }
    all.latencies_us.sort_unstable();
    Ok(all)
}

/// The `p` quantile of sorted samples, in their own unit (NaN for none).
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Index arithmetic on a percentile; a float here is a statistic, not money.
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64
}

/// The rows the store writes for `count` orders: (order_id, create_hash, image) per order.
fn rows(count: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let now = Utc::now();
    (0..count)
        .map(|i| {
            let draft = domain::parse_create(body(usize::MAX - 1, i as u64).as_bytes(), now)
                .map_err(|e| anyhow::anyhow!("bench body invalid: {e}"))?;
            let fp = draft.fingerprint().as_str().to_owned();
            let order = draft.into_order(now);
            Ok((order.order_id.to_string(), fp, serde_json::to_string(&order)?))
        })
        .collect()
}

/// Raw SQLite: the same tables and pragmas as the store, `per_commit` orders per transaction. Orders/s.
fn raw_insert_rate(dir: &Path, rows: &[(String, String, String)], per_commit: usize) -> anyhow::Result<f64> {
    let path = dir.join(format!("raw-{per_commit}.db"));
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(write_store::embedded::SCHEMA)?;
    let changed_at = domain::order::format_time(&Utc::now());
    let start = Instant::now();
    for chunk in rows.chunks(per_commit) {
        let tx = conn.transaction()?;
        {
            let mut order =
                tx.prepare_cached("INSERT INTO orders (order_id, version, create_hash, image) VALUES (?1, 1, ?2, ?3)")?;
            let mut change = tx.prepare_cached(
                "INSERT INTO order_changes (order_id, kind, old_image, new_image, changed_at) VALUES (?1, 'INSERT', NULL, ?2, ?3)",
            )?;
            for (id, fp, image) in chunk {
                order.execute(rusqlite::params![id, fp, image])?;
                change.execute(rusqlite::params![id, image, changed_at])?;
            }
        }
        tx.commit()?;
    }
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start_server(dir.path()).await?;
    println!(
        "POST /orders on the embedded store: server in a child process, {} connections from this one, {} s measured after {} s warm-up",
        args.connections, args.seconds, args.warmup_seconds
    );
    let result = load(
        &server.url,
        args.connections,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
    )
    .await;
    stop_server(server).await?;
    let load = result?;
    let done = load.latencies_us.len();
    let throughput = done as f64 / load.elapsed.as_secs_f64();
    let ms = |p| percentile(&load.latencies_us, p) / 1_000.0;
    let (p50, p99) = (ms(0.50), ms(0.99));
    println!("  throughput       {throughput:>10.0} orders/s  ({done} orders, {} errors)", load.errors);
    println!("  latency          p50 {p50:.2} ms   p99 {p99:.2} ms   max {:.2} ms", ms(1.0));

    let rows = rows(done.max(1_000))?;
    println!(
        "raw SQLite inserts of the same rows ({} orders + their change records; WAL, synchronous=FULL):",
        rows.len()
    );
    let batched = tokio::task::block_in_place(|| raw_insert_rate(dir.path(), &rows, 512))?;
    let single_rows = &rows[..rows.len().min(5_000)];
    let single = tokio::task::block_in_place(|| raw_insert_rate(dir.path(), single_rows, 1))?;
    println!(
        "  512 orders per commit (ceiling) {batched:>10.0} orders/s   HTTP reaches {:.2}x of it",
        throughput / batched
    );
    println!(
        "  1 order per commit              {single:>10.0} orders/s   HTTP is {:.2}x of it (over {} orders)",
        throughput / single,
        single_rows.len()
    );
    let met = throughput >= 3_000.0 && p99 <= 20.0 && load.errors == 0;
    println!("goal (>= 3000 orders/s, p99 <= 20 ms, no errors): {}", if met { "met" } else { "NOT met" });
    Ok(())
}
