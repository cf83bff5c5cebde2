//! `orders-bench projector`: order lines/s into PostgreSQL and MariaDB for (a) this projector, batches of 1,000
//! stream records; (b) what the sample did: one record at a time, one INSERT per line, autocommit; (c)
//! PostgreSQL COPY of the same lines into a bare table; and (d) the same COPY into a table with `orderitems`' key
//! and index, the ceiling for writing the lines alone. All in one run, on fresh databases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{Duration, TimeZone, Utc};
use domain::change::Sequence;
use domain::{
    ChangeKind, ItemId, Lines, Order, OrderChange, OrderId, OrderLine, OrderStatus, Position, Quantity, UnitPrice,
    Version,
};
use read_model::ReadModel;
use rust_decimal::Decimal;
use sqlx::{AnyConnection, Connection, Executor};

#[derive(clap::Args, Debug, Clone)]
pub struct ProjectorArgs {
    /// Orders to project with this projector (about 3 lines each).
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    /// Orders for the one-INSERT-per-line baseline (it is slow; its rate is what is compared).
    #[arg(long, default_value_t = 10_000)]
    pub baseline_orders: usize,
    /// Stream records per projector batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    #[arg(long, env = "TEST_MYSQL_URL", default_value = "mysql://root@127.0.0.1:3306")]
    pub mysql: String,
    /// Consumers applying batches at once for the second (a) figure, as template.yaml's `ProjectorParallelization`
    /// (Lambda's `ParallelizationFactor`) deploys the projector; the first is always one consumer.
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Network round trip to add between this process and the databases, in milliseconds (0: loopback as is).
    /// Every measurement of the run goes through the same delaying proxy.
    #[arg(long, default_value_t = 0.0)]
    pub rtt_ms: f64,
    /// The longest statement the projector sends to MariaDB, as `READ_MODEL_MAX_STATEMENT_BYTES` sets it (default
    /// 16,000: what RDS Proxy passes without pinning the session).
    #[arg(long, default_value_t = read_model::dialect::MYSQL_STATEMENT_LIMIT)]
    pub max_statement_bytes: usize,
}

/// Deterministic orders: ~3 lines (1-5) over 5,000 items, dates over 36 months, 60 % of lines priced.
pub fn orders(count: usize) -> anyhow::Result<Vec<Order>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single().context("date")?;
    let created = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().context("date")?;
    (0..count)
        .map(|i| {
            let n = 1 + (next() % 5) as usize;
            let base = next() % 5_000;
            let lines = (0..n)
                .map(|j| {
                    Ok(OrderLine {
                        itemid: ItemId::parse(&format!("item-{}", (base + j as u64 * 997) % 5_000))?,
                        quantity: Quantity::new(1 + (next() % 20) as u32).context("quantity")?,
                        unit_price: (next() % 10 < 6)
                            .then(|| UnitPrice::new(Decimal::new((next() % 100_000) as i64, 2)))
                            .transpose()
                            .map_err(|e| anyhow::anyhow!("{e}"))?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let at = created + Duration::milliseconds(i as i64);
            Ok(Order {
                order_id: OrderId::parse(&format!("bench-{i}"))?,
                items: Lines::new(lines)?,
                status: OrderStatus::Created,
                order_date: start + Duration::minutes((next() % (36 * 30 * 24 * 60)) as i64),
                version: Version::FIRST,
                created_at: at,
                updated_at: at,
            })
        })
        .collect()
}

pub(crate) fn inserts(orders: &[Order]) -> anyhow::Result<Vec<OrderChange>> {
    orders
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let position = Position { source: "bench".into(), sequence: Sequence::from(i as u64 + 1) };
            OrderChange::new(ChangeKind::Insert, None, Some(o.clone()), position, o.created_at).map_err(Into::into)
        })
        .collect()
}

pub(crate) async fn fresh_database(base: &str, admin_db: &str, name: &str) -> anyhow::Result<String> {
    let admin = format!("{base}/{admin_db}");
    let mut conn = AnyConnection::connect(&admin).await.with_context(|| format!("cannot reach {admin}"))?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    Ok(format!("{base}/{name}"))
}

fn lines(orders: &[Order]) -> usize {
    orders.iter().map(|o| o.items.as_slice().len()).sum()
}

/// (a): this projector, `batch` records per transaction, by `consumers` consumers at once: each takes the records
/// of its own orders (routed by order id, as Lambda's `ParallelizationFactor` routes a shard's records by key) in
/// stream order, one batch at a time.
async fn projector_rate(
    url: &str,
    changes: &[OrderChange],
    batch: usize,
    line_count: usize,
    consumers: usize,
    mysql_statement_limit: usize,
) -> anyhow::Result<f64> {
    let model = Arc::new(ReadModel::connect(url)?.with_mysql_statement_limit(mysql_statement_limit));
    model.migrate().await?;
    let mut lanes: Vec<Vec<OrderChange>> = vec![Vec::new(); consumers.max(1)];
    for c in changes {
        let lane = c.order_id().as_str().bytes().map(u64::from).sum::<u64>() % lanes.len() as u64;
        lanes[lane as usize].push(c.clone());
    }
    let start = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for lane in lanes {
        let model = model.clone();
        running.spawn(async move {
            for chunk in lane.chunks(batch) {
                model.apply(chunk).await?;
            }
            Ok::<_, read_model::ProjectionError>(())
        });
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    let rate = line_count as f64 / start.elapsed().as_secs_f64();
    model.close().await;
    Ok(rate)
}

/// (b): the sample: per record an INSERT for the order and one per line, each its own autocommit.
async fn baseline_rate(url: &str, orders: &[Order], mysql: bool) -> anyhow::Result<f64> {
    let mut conn = AnyConnection::connect(url).await?;
    // As the projector's pool does (sqlx 0.9.0 leaves Nagle on); single-segment statements gain nothing from it.
    read_model::sockets::set_on_tcp_sockets();
    conn.execute(
        "CREATE TABLE legacy_orders (orderid VARCHAR(64) PRIMARY KEY, orderstatus VARCHAR(16), orderdate VARCHAR(32))",
    )
    .await?;
    conn.execute(
        "CREATE TABLE legacy_orderitems (id VARCHAR(40) PRIMARY KEY, orderid VARCHAR(64), itemid VARCHAR(64), quantity INTEGER)",
    )
    .await?;
    let (o_sql, l_sql) = if mysql {
        (
            "INSERT INTO legacy_orders (orderid, orderstatus, orderdate) VALUES (?, ?, ?)",
            "INSERT INTO legacy_orderitems (id, orderid, itemid, quantity) VALUES (?, ?, ?, ?)",
        )
    } else {
        (
            "INSERT INTO legacy_orders (orderid, orderstatus, orderdate) VALUES ($1, $2, $3)",
            "INSERT INTO legacy_orderitems (id, orderid, itemid, quantity) VALUES ($1, $2, $3, $4)",
        )
    };
    let start = Instant::now();
    let mut n = 0u64;
    for o in orders {
        let date = domain::order::format_time(&o.order_date);
        sqlx::query(o_sql).bind(o.order_id.as_str()).bind("PENDING").bind(date.as_str()).execute(&mut conn).await?;
        for l in o.items.as_slice() {
            n += 1;
            // The sample keyed lines with a random id; a counter costs the database the same.
            let key = format!("{:040}", n);
            sqlx::query(l_sql)
                .bind(key.as_str())
                .bind(o.order_id.as_str())
                .bind(l.itemid.as_str())
                .bind(i64::from(l.quantity.get()))
                .execute(&mut conn)
                .await?;
        }
    }
    Ok(lines(orders) as f64 / start.elapsed().as_secs_f64())
}

/// (c): PostgreSQL COPY of the same lines into a bare table; with `indexed`, into a table with `orderitems`' key
/// and `itemid` index instead (what writing the lines alone costs, before orders, aggregates and positions).
async fn copy_rate(url: &str, orders: &[Order], indexed: bool) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    read_model::sockets::set_on_tcp_sockets();
    conn.execute(
        "CREATE TABLE copy_lines (orderid VARCHAR(64), itemid VARCHAR(64), quantity INTEGER, unitprice NUMERIC(19,4))",
    )
    .await?;
    if indexed {
        conn.execute("ALTER TABLE copy_lines ADD PRIMARY KEY (orderid, itemid)").await?;
        conn.execute("CREATE INDEX copy_lines_itemid ON copy_lines (itemid)").await?;
    }
    let mut text = String::with_capacity(lines(orders) * 40);
    for o in orders {
        for l in o.items.as_slice() {
            let price = l.unit_price.map(|p| p.get().to_string()).unwrap_or_else(|| "\\N".into());
            text.push_str(&format!("{}\t{}\t{}\t{}\n", o.order_id, l.itemid, l.quantity.get(), price));
        }
    }
    let start = Instant::now();
    let mut copy = conn.copy_in_raw("COPY copy_lines FROM STDIN").await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(lines(orders) as f64 / start.elapsed().as_secs_f64())
}

/// A TCP proxy to `target` that hands on every chunk `one_way` after it arrived, in both directions: a network
/// round trip of twice `one_way`, with order kept and throughput not limited. Plain threads and blocking sockets:
/// the async timer's 1 ms granularity would add more delay than asked for. Returns the address to connect to.
fn delaying_proxy(target: SocketAddr, one_way: StdDuration) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(target) else {
                continue;
            };
            for (from, to) in [(&client, &server), (&server, &client)] {
                if let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) {
                    pump(from, to, one_way);
                }
            }
        }
    });
    Ok(addr)
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, delay: StdDuration) {
    use std::io::{Read, Write};
    let _ = to.set_nodelay(true);
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        for (arrived, chunk) in rx {
            std::thread::sleep((arrived + delay).saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
}

/// `base` (a server URL without database), or the same server behind a proxy adding `rtt_ms` of round trip.
async fn via_rtt(base: &str, rtt_ms: f64) -> anyhow::Result<String> {
    if rtt_ms <= 0.0 {
        return Ok(base.to_owned());
    }
    let mut url = url::Url::parse(base).with_context(|| format!("server URL {base}"))?;
    let host = url.host_str().context("server URL without host")?.to_owned();
    let default_port = if url.scheme().starts_with("postgres") { 5432 } else { 3306 };
    let port = url.port().unwrap_or(default_port);
    let target = tokio::net::lookup_host((host.as_str(), port)).await?.next().context("host resolves to nothing")?;
    let proxy = delaying_proxy(target, StdDuration::from_secs_f64(rtt_ms / 2_000.0))?;
    url.set_host(Some(&proxy.ip().to_string()))?;
    url.set_port(Some(proxy.port())).map_err(|()| anyhow::anyhow!("cannot set the proxy port"))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

pub async fn run(args: ProjectorArgs) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let all = orders(args.orders)?;
    let changes = inserts(&all)?;
    let baseline = &all[..args.baseline_orders.min(all.len())];
    let total_lines = lines(&all);
    println!(
        "projector: {} orders, {} lines, {} records per batch; baseline over the first {} orders ({} lines)",
        all.len(),
        total_lines,
        args.batch,
        baseline.len(),
        lines(baseline)
    );
    if args.rtt_ms > 0.0 {
        println!("every connection goes through a proxy adding {} ms of round trip", args.rtt_ms);
    }
    println!("statements to MariaDB of at most {} bytes", args.max_statement_bytes);
    let name = format!("bench_projector_{}", std::process::id());
    let mut met = true;
    for (label, server, admin, mysql) in
        [("PostgreSQL", &args.postgres, "postgres", false), ("MariaDB", &args.mysql, "test", true)]
    {
        let base = &via_rtt(server, args.rtt_ms).await?;
        let limit = args.max_statement_bytes;
        let one =
            projector_rate(&fresh_database(base, admin, &name).await?, &changes, args.batch, total_lines, 1, limit)
                .await?;
        let (a, consumers) = match args.consumers {
            0 | 1 => (one, 1),
            n => (
                projector_rate(&fresh_database(base, admin, &name).await?, &changes, args.batch, total_lines, n, limit)
                    .await?,
                n,
            ),
        };
        let b = baseline_rate(&fresh_database(base, admin, &name).await?, baseline, mysql).await?;
        println!("{label}:");
        println!("  (a) this projector, 1 consumer {one:>10.0} lines/s   (a)/(b) = {:.1}x", one / b);
        if consumers > 1 {
            println!("  (a) {consumers} consumers at once     {a:>10.0} lines/s   ({:.2}x one consumer)", a / one);
        }
        println!(
            "  (b) one INSERT per line        {b:>10.0} lines/s   (a, {consumers} at once)/(b) = {:.1}x  (goal >= 20x)",
            a / b
        );
        met &= a / b >= 20.0;
        if !mysql {
            let c = copy_rate(&fresh_database(base, admin, &name).await?, &all, false).await?;
            println!(
                "  (c) COPY into a bare table     {c:>10.0} lines/s   (a)/(c) = {:.1} %  (goal >= 30 %)",
                100.0 * a / c
            );
            met &= a / c >= 0.3;
            let d = copy_rate(&fresh_database(base, admin, &name).await?, &all, true).await?;
            println!(
                "  (d) COPY, orderitems' indexes  {d:>10.0} lines/s   (d)/(c) = {:.1} %  (the lines alone, indexed)",
                100.0 * d / c
            );
        }
        let admin_url = format!("{base}/{admin}");
        let mut conn = AnyConnection::connect(&admin_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await?;
    }
    println!("goals: {}", if met { "met" } else { "NOT met" });
    Ok(())
}
