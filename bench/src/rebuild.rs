//! `orders-bench rebuild`: lines/s into PostgreSQL and MariaDB, fresh databases, the same orders of one embedded
//! store, for (r) `orders rebuild` (in a child process, which reports its peak RSS); (a) the incremental projector
//! over the same orders, batches of 1,000, one consumer; and (f) the floor: the same `orders` and `orderitems` rows
//! through the database's own bulk path (`COPY` / `LOAD DATA INFILE`) with the indexes in place and with them
//! built after the load (the faster counts), plus one `INSERT ... SELECT ... GROUP BY` per report table. Also the
//! time the snapshot read alone takes (its share of (r)).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use domain::{Order, OrderDraft};
use read_model::ReadModel;
use sqlx::{AnyConnection, Connection, Executor};
use write_store::OrderStore;
use write_store::embedded::{EmbeddedOptions, EmbeddedStore};

use crate::projector::{fresh_database, inserts, orders};

#[derive(clap::Args, Debug, Clone)]
pub struct RebuildArgs {
    /// Orders in the store (about 3 lines each).
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// A smaller store, rebuilt too, to show that the rebuild's peak memory does not grow with the order count.
    #[arg(long, default_value_t = 100_000)]
    pub small: usize,
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    #[arg(long, env = "TEST_MYSQL_URL", default_value = "mysql://root@127.0.0.1:3306")]
    pub mysql: String,
}

/// What the rebuild in a child process reported.
struct Child {
    lines: u64,
    seconds: f64,
    peak_rss_mb: f64,
}

/// The hidden `rebuild-child`: `orders rebuild` as the runner's settings say, then one line of figures.
pub async fn child(args: &orders::RunnerArgs) -> anyhow::Result<()> {
    let settings = orders::Settings::from_args(args)?;
    let summary =
        orders::rebuild(settings, orders::RebuildArgs { scan_segments: None }, std::future::pending()).await?;
    // The peak of this process image (`getrusage`'s maxrss would also count the parent's memory at fork time,
    // which Linux carries across exec).
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let peak_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM in /proc/self/status")?;
    println!("{} {} {}", summary.rebuilt.lines, summary.elapsed.as_secs_f64(), peak_kb);
    Ok(())
}

/// Runs `orders rebuild` from the store in `data_dir` into `url` in a child process.
async fn rebuild_in_child(data_dir: &Path, url: &str) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = tokio::process::Command::new(exe)
        .arg("rebuild-child")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("READ_MODEL_URL", url)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("cannot run the rebuild")?;
    if !out.status.success() {
        bail!("the rebuild failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [lines, seconds, kb] = fields[..] else { bail!("unexpected rebuild output: {text}") };
    Ok(Child { lines: lines.parse()?, seconds: seconds.parse()?, peak_rss_mb: kb.parse::<f64>()? / 1024.0 })
}

/// A store in `dir` holding `orders`, written through the store's own API.
async fn fill_store(dir: &Path, orders: &[Order]) -> anyhow::Result<()> {
    let store = Arc::new(EmbeddedStore::open(&dir.join("orders.db"), EmbeddedOptions::default())?);
    for chunk in orders.chunks(2_000) {
        let mut creates = tokio::task::JoinSet::new();
        for o in chunk {
            let draft =
                OrderDraft { order_id: o.order_id.clone(), lines: o.items.clone(), order_date: Some(o.order_date) };
            let store = store.clone();
            creates.spawn(async move { store.create(draft, chrono::Utc::now()).await.map(|_| ()) });
        }
        for created in creates.join_all().await {
            created?;
        }
    }
    Ok(())
}

/// Seconds to read the whole snapshot of the store in `dir`, as the rebuild reads it, doing nothing with it.
async fn snapshot_read(dir: &Path) -> anyhow::Result<f64> {
    let store = EmbeddedStore::open(&dir.join("orders.db"), EmbeddedOptions::default())?;
    let start = Instant::now();
    let mut stream = store.snapshot_stream(10_000).await?;
    while let Some(chunk) = stream.next().await {
        std::hint::black_box(chunk?);
    }
    Ok(start.elapsed().as_secs_f64())
}

/// (a): the incremental projector over the same orders as insert changes, 1,000 to a batch, one consumer.
async fn incremental(url: &str, orders: &[Order]) -> anyhow::Result<f64> {
    let model = ReadModel::connect(url)?;
    model.migrate().await?;
    let changes = inserts(orders)?;
    let start = Instant::now();
    for batch in changes.chunks(1_000) {
        model.apply(batch).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    model.close().await;
    Ok(seconds)
}

/// The `orders` and `orderitems` rows of `orders` as CSV (NULL as an unquoted empty field, `\N` on MySQL).
fn csv_rows(orders: &[Order], mysql: bool) -> (Vec<u8>, Vec<u8>) {
    let time = |at: &chrono::DateTime<chrono::Utc>| {
        if mysql { at.format("%Y-%m-%d %H:%M:%S%.3f").to_string() } else { at.to_rfc3339() }
    };
    let now = time(&chrono::Utc::now());
    let (mut o_rows, mut l_rows) = (Vec::new(), Vec::new());
    for o in orders {
        let month = domain::projection::SaleMonth::of(o.order_date);
        let _ = writeln!(
            o_rows,
            "{},{},{},{},{},{},{},{now}",
            o.order_id,
            o.status.as_str(),
            time(&o.order_date),
            month.as_str(),
            o.version.get(),
            time(&o.created_at),
            time(&o.updated_at)
        );
        for l in o.items.as_slice() {
            let null = if mysql { "\\N" } else { "" };
            let price = l.unit_price.map(|p| p.get().to_string()).unwrap_or_else(|| null.to_owned());
            let _ = writeln!(l_rows, "{},{},{},{price}", o.order_id, l.itemid, l.quantity.get());
        }
    }
    (o_rows, l_rows)
}

const ORDER_COLUMNS: &str =
    "orderid, orderstatus, orderdate, sale_month, version, created_at, updated_at, projected_at";
/// The floor's load on PostgreSQL: both tables by COPY, into a migrated database, its keys and index in place or
/// (`after`) dropped first and built after the load. Seconds.
async fn pg_load(url: &str, rows: &(Vec<u8>, Vec<u8>), after: bool) -> anyhow::Result<f64> {
    ReadModel::connect(url)?.migrate().await?;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    read_model::sockets::set_on_tcp_sockets();
    let start = Instant::now();
    conn.execute("SET maintenance_work_mem = '256MB'").await?;
    if after {
        for sql in [
            "DROP INDEX orderitems_itemid",
            "ALTER TABLE orderitems DROP CONSTRAINT orderitems_pkey",
            "ALTER TABLE orders DROP CONSTRAINT orders_pkey",
        ] {
            conn.execute(sql).await?;
        }
    }
    let statement = format!("COPY orders ({ORDER_COLUMNS}) FROM STDIN WITH (FORMAT csv)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(rows.0.as_slice()).await?;
    copy.finish().await?;
    let mut copy =
        conn.copy_in_raw("COPY orderitems (orderid, itemid, quantity, unitprice) FROM STDIN WITH (FORMAT csv)").await?;
    copy.send(rows.1.as_slice()).await?;
    copy.finish().await?;
    if after {
        for sql in [
            "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (orderid)",
            "ALTER TABLE orderitems ADD CONSTRAINT orderitems_pkey PRIMARY KEY (orderid, itemid)",
            "CREATE INDEX orderitems_itemid ON orderitems (itemid)",
        ] {
            conn.execute(sql).await?;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The floor's load on MariaDB: both tables by `LOAD DATA INFILE` (the server reads the files), with the itemid
/// index in place or (`after`) built after the load (InnoDB keeps rows in primary key order: the key stays).
async fn mysql_load(url: &str, files: &(std::path::PathBuf, std::path::PathBuf), after: bool) -> anyhow::Result<f64> {
    ReadModel::connect(url)?.migrate().await?;
    let mut conn = sqlx::MySqlConnection::connect(url).await?;
    let start = Instant::now();
    if after {
        conn.execute("ALTER TABLE orderitems DROP INDEX orderitems_itemid").await?;
    }
    let load = |file: &Path, table: &str, columns: &str| {
        format!(
            "LOAD DATA INFILE '{}' INTO TABLE {table} FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' ({columns})",
            file.display()
        )
    };
    conn.execute(sqlx::AssertSqlSafe(load(&files.0, "orders", ORDER_COLUMNS))).await?;
    conn.execute(sqlx::AssertSqlSafe(load(&files.1, "orderitems", "orderid, itemid, quantity, unitprice"))).await?;
    if after {
        conn.execute("CREATE INDEX orderitems_itemid ON orderitems (itemid)").await?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The floor's aggregates: one `INSERT ... SELECT ... GROUP BY` per report table over the loaded rows. Seconds.
async fn group_by(url: &str, mysql: bool) -> anyhow::Result<f64> {
    let mut conn = AnyConnection::connect(url).await?;
    // The rebuild's own statements; on MariaDB with its temporary tables in memory, on PostgreSQL with its work_mem.
    if mysql {
        conn.execute("SET SESSION tmp_table_size = 268435456, max_heap_table_size = 268435456").await?;
    } else {
        conn.execute("SET work_mem = '256MB'").await?;
    }
    let dialect = if mysql { read_model::Dialect::MySql } else { read_model::Dialect::Postgres };
    let start = Instant::now();
    for sql in read_model::model::report_inserts(dialect) {
        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn lines_of(orders: &[Order]) -> usize {
    orders.iter().map(|o| o.items.as_slice().len()).sum()
}

pub async fn run(args: RebuildArgs) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let all = orders(args.orders)?;
    let small = &all[..args.small.min(all.len())];
    let total = lines_of(&all) as f64;
    let (big_dir, small_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let start = Instant::now();
    fill_store(big_dir.path(), &all).await?;
    fill_store(small_dir.path(), small).await?;
    println!(
        "rebuild: {} orders, {} lines in an embedded store (written in {:.0} s); a store of {} orders for memory",
        all.len(),
        total,
        start.elapsed().as_secs_f64(),
        small.len()
    );
    let read = snapshot_read(big_dir.path()).await?;
    // The bulk files the server reads (a directory it may enter).
    let files_dir =
        tempfile::Builder::new().permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755)).tempdir()?;
    let name = format!("bench_rebuild_{}", std::process::id());
    let mut met = true;
    for (label, server, admin, mysql) in
        [("PostgreSQL", &args.postgres, "postgres", false), ("MariaDB", &args.mysql, "test", true)]
    {
        let r_small = rebuild_in_child(small_dir.path(), &fresh_database(server, admin, &name).await?).await?;
        let r = rebuild_in_child(big_dir.path(), &fresh_database(server, admin, &name).await?).await?;
        if r.lines as f64 != total {
            bail!("{label}: the rebuild wrote {} lines of {total}", r.lines);
        }
        let a = incremental(&fresh_database(server, admin, &name).await?, &all).await?;
        let rows = csv_rows(&all, mysql);
        let (in_place, after, url) = if mysql {
            let files = (files_dir.path().join("orders.csv"), files_dir.path().join("lines.csv"));
            for (path, data) in [(&files.0, &rows.0), (&files.1, &rows.1)] {
                std::fs::write(path, data)?;
                std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            }
            let in_place = mysql_load(&fresh_database(server, admin, &name).await?, &files, false).await?;
            let url = fresh_database(server, admin, &name).await?;
            (in_place, mysql_load(&url, &files, true).await?, url)
        } else {
            let in_place = pg_load(&fresh_database(server, admin, &name).await?, &rows, false).await?;
            let url = fresh_database(server, admin, &name).await?;
            (in_place, pg_load(&url, &rows, true).await?, url)
        };
        let grouped = group_by(&url, mysql).await?;
        let floor = in_place.min(after) + grouped;
        let rate = |seconds: f64| total / seconds;
        println!("{label}:");
        println!(
            "  (r) orders rebuild             {:>10.0} lines/s  {:>6.1} s   (r)/(a) = {:.1}x (goal >= 4x)",
            rate(r.seconds),
            r.seconds,
            a / r.seconds
        );
        println!("  (a) incremental projector      {:>10.0} lines/s  {a:>6.1} s", rate(a));
        let goal = if mysql { "" } else { " (goal >= 60 %)" };
        println!(
            "  (f) bulk path + GROUP BYs      {:>10.0} lines/s  {floor:>6.1} s   (r)/(f) = {:.0} %{goal}",
            rate(floor),
            100.0 * floor / r.seconds
        );
        let bulk = if mysql { "LOAD DATA INFILE" } else { "COPY" };
        println!("      {bulk}: indexes in place {in_place:.1} s, built after {after:.1} s; GROUP BYs {grouped:.1} s");
        println!(
            "  snapshot read alone {read:.1} s = {:.0} % of (r); peak RSS {:.0} MB at {} orders, {:.0} MB at {}",
            100.0 * read / r.seconds,
            r_small.peak_rss_mb,
            small.len(),
            r.peak_rss_mb,
            all.len()
        );
        met &= a / r.seconds >= 4.0 && (mysql || floor / r.seconds >= 0.6);
        let mut conn = AnyConnection::connect(&format!("{server}/{admin}")).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await?;
    }
    println!("goals: {}", if met { "met" } else { "NOT met" });
    Ok(())
}
