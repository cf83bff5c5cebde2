//! `orders-bench reports`: with 1,000,000 generated orders (~3 lines, 5,000 items, 36 months) projected into
//! PostgreSQL, p50/p99 of both reports over HTTP, next to the raw SQL of our own reports and the sample's
//! GROUP BY over every line, on the same database in the same run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use read_model::ReadModel;
use sqlx::{Connection, Executor, PgConnection};

#[derive(clap::Args, Debug, Clone)]
pub struct ReportsArgs {
    /// Orders in the read model (generated like `bench projector`'s, then projected by this projector).
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Timed requests per endpoint (HTTP and raw SQL).
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Timed runs of the sample's GROUP BY (each reads every line).
    #[arg(long, default_value_t = 10)]
    pub grouped_runs: usize,
    /// Start from a fresh database even if one from an earlier run with the same `--orders` exists.
    #[arg(long)]
    pub fresh: bool,
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
}

/// Latencies in nanoseconds → (p50, p99) in milliseconds.
fn p50_p99(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let ms = |p| crate::post::percentile(&ns, p) / 1_000_000.0;
    (ms(0.5), ms(0.99))
}

/// Times several requests in turn: after 20 warm-up rounds, `$n` rounds in each of which every `$body` (an
/// expression that may `.await` and `?`, with `$i` the round) runs once, timed on its own; then binds each `$name`
/// to its (p50, p99). Measured in turn rather than one after the other, a slow spell of the machine (another
/// tenant, a vacuum) falls on all of them alike, so that their ratios hold while the absolute times drift.
macro_rules! timed_in_turn {
    ($n:expr, |$i:ident| { $($name:ident => $body:expr),+ $(,)? }) => {
        $( let mut $name: Vec<u64> = Vec::new(); )+
        {
            let n: usize = $n;
            let warm = n.min(20);
            for $i in 0..warm + n {
                $(
                    let started = Instant::now();
                    $body;
                    if $i >= warm {
                        $name.push(started.elapsed().as_nanos() as u64);
                    }
                )+
            }
        }
        $( let $name = p50_p99($name); )+
    };
}

/// A database holding `orders` projected orders: reused from an earlier run unless `fresh`.
async fn prepare(args: &ReportsArgs) -> anyhow::Result<String> {
    let name = format!("bench_reports_{}", args.orders);
    let url = format!("{}/{name}", args.postgres);
    let admin = format!("{}/postgres", args.postgres);
    let mut conn = PgConnection::connect(&admin).await.with_context(|| format!("cannot reach {admin}"))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if exists && !args.fresh {
        let mut db = PgConnection::connect(&url).await?;
        let done: Option<String> =
            sqlx::query_scalar("SELECT sequence FROM projection_positions WHERE source = 'bench'")
                .fetch_optional(&mut db)
                .await
                .unwrap_or(None);
        if done.as_deref() == Some(args.orders.to_string().as_str()) {
            println!("reusing {name} (all {} orders projected; --fresh to rebuild)", args.orders);
            return Ok(url);
        }
    }
    drop(conn);
    sqlx::any::install_default_drivers();
    let url = crate::projector::fresh_database(&args.postgres, "postgres", &name).await?;
    let model = ReadModel::connect(&url)?;
    model.migrate().await?;
    let all = crate::projector::orders(args.orders)?;
    let changes = crate::projector::inserts(&all)?;
    let started = Instant::now();
    for (n, chunk) in changes.chunks(5_000).enumerate() {
        model.apply(chunk).await?;
        if n % 20 == 19 {
            println!(
                "  projected {} of {} orders ({:.0} s)",
                (n + 1) * 5_000,
                all.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    model.close().await;
    let mut db = PgConnection::connect(&url).await?;
    db.execute("VACUUM ANALYZE").await?;
    println!("projected {} orders in {:.0} s", all.len(), started.elapsed().as_secs_f64());
    Ok(url)
}

pub async fn run(args: ReportsArgs) -> anyhow::Result<()> {
    let url = prepare(&args).await?;
    let model = Arc::new(ReadModel::connect(&url)?);
    model.migrate().await?; // a database from an earlier run may predate a migration
    let items: Vec<String> = (0..args.requests).map(|i| format!("item-{}", (i * 7_919) % 5_000)).collect();

    // Our reports over HTTP: the query API's Router on a local socket, one keep-alive client.
    // Two instances: as configured (answers kept per read-model epoch), and computing every answer.
    let serve = |settings: query_api::Settings| {
        let model = model.clone();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let app = query_api::app(model, settings);
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok::<_, anyhow::Error>(format!("http://{addr}"))
        }
    };
    // The floor: one HTTP exchange with the same client and server stack, a handler that answers `[]` at once.
    let floor = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/floor", axum::routing::get(|| async { axum::Json([0u8; 0]) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/floor")
    };
    let base = serve(query_api::Settings::default()).await?;
    let uncached = serve(query_api::Settings { cache_entries: 0, ..query_api::Settings::default() }).await?;
    let client = reqwest::Client::new();
    let full = client.get(format!("{base}/itemSalesReport")).send().await?.error_for_status()?.text().await?;
    let item_count = serde_json::from_str::<serde_json::Value>(&full)?.as_array().map(Vec::len).unwrap_or(0);
    println!("reports: {} orders; the item report has {item_count} items ({} KB)", args.orders, full.len() / 1024);

    // The read model's own calls (the SQL plus decoding into rows), without HTTP and JSON.
    let whole =
        read_model::ItemQuery { sort: read_model::ItemSort::ItemId, descending: false, limit: None, after: None };
    // The raw SQL of our reports, on one connection of its own.
    let mut db = PgConnection::connect(&url).await?;
    read_model::sockets::set_on_tcp_sockets();
    let raw_items_sql = "SELECT itemid, totalordered, totalrevenue, pricedordered, ordercount, lastorderdate \
                         FROM item_sales WHERE ordercount > 0 ORDER BY itemid COLLATE \"C\"";
    let raw_month_sql = "SELECT sale_month, monthlyordered FROM item_monthly_sales \
                         WHERE itemid = $1 AND monthlyordered > 0 ORDER BY sale_month DESC";
    // The sample's SQL: a GROUP BY over every line per request (with no status, as it was; its monthly
    // query grouped by a formatted month and ordered by the raw date, which PostgreSQL and MySQL's
    // ONLY_FULL_GROUP_BY refuse, so the nearest query that runs orders by the group's latest date).
    let old_items_sql = "SELECT i.itemid, SUM(i.quantity) AS totalordered, MAX(o.orderdate) AS lastorderdate \
                         FROM orderitems i JOIN orders o ON o.orderid = i.orderid GROUP BY i.itemid";
    let old_month_sql = "SELECT to_char(o.orderdate, 'FMMonth YYYY') AS monthyear, SUM(i.quantity) AS monthlyordered \
                         FROM orders o JOIN orderitems i ON o.orderid = i.orderid WHERE i.itemid = $1 \
                         GROUP BY to_char(o.orderdate, 'FMMonth YYYY') ORDER BY MAX(o.orderdate) DESC";

    // Each report's ways of asking in turn, round after round (see `timed_in_turn`).
    timed_in_turn!(args.requests, |i| {
        http_items => client.get(format!("{uncached}/itemSalesReport")).send().await?.error_for_status()?.bytes().await?,
        kept_items => client.get(format!("{base}/itemSalesReport")).send().await?.error_for_status()?.bytes().await?,
        call_items => model.item_report(&whole).await?,
        raw_items => sqlx::query(raw_items_sql).fetch_all(&mut db).await?,
    });
    timed_in_turn!(args.requests, |i| {
        http_month => {
            let uri = format!("{uncached}/monthlySalesByItem/{}", items[i % items.len()]);
            client.get(uri).send().await?.error_for_status()?.bytes().await?
        },
        // The same 20 items in turn: each answer is computed once, then kept (no writes meanwhile).
        kept_month => {
            let uri = format!("{base}/monthlySalesByItem/{}", items[i % 20]);
            client.get(uri).send().await?.error_for_status()?.bytes().await?
        },
        call_month => model.monthly_report(&domain::ItemId::parse(&items[i % items.len()])?).await?,
        raw_month => sqlx::query(raw_month_sql).bind(&items[i % items.len()]).fetch_all(&mut db).await?,
        http_floor => client.get(&floor).send().await?.error_for_status()?.bytes().await?,
        // The least any answer read from the database per request takes: one round trip doing nothing.
        round_trip => sqlx::query("SELECT 1").fetch_all(&mut db).await?,
    });
    // The sample's SQL on its own: a request just after one of its ~9 ms queries took twice as long to wake
    // (monthly over HTTP: 0.96-1.18 ms in turn with it, 0.54-0.59 ms without), which would be its doing, not ours.
    timed_in_turn!(args.requests, |i| {
        old_month => sqlx::query(old_month_sql).bind(&items[i % items.len()]).fetch_all(&mut db).await?,
    });
    // About a second each: on their own too, last.
    timed_in_turn!(args.grouped_runs, |_i| {
        old_items => sqlx::query(old_items_sql).fetch_all(&mut db).await?,
    });

    let row = |label: &str, (p50, p99): (f64, f64)| println!("  {label:<44} p50 {p50:>9.3} ms   p99 {p99:>9.3} ms");
    println!("GET /itemSalesReport (all {item_count} items):");
    row("HTTP, computed per request", http_items);
    row("HTTP, kept answer for the current epoch", kept_items);
    row("read model call (SQL + decoding)", call_items);
    row("raw SQL of this report", raw_items);
    row("sample SQL (GROUP BY over every line)", old_items);
    println!("GET /monthlySalesByItem/{{itemid}}:");
    row("HTTP, computed per request", http_month);
    row("HTTP, kept answer for the current epoch", kept_month);
    row("read model call (SQL + decoding)", call_month);
    row("raw SQL of this report", raw_month);
    row("sample SQL (GROUP BY over the item's lines)", old_month);
    println!("one HTTP exchange with no database work (same client and server stack):");
    row("GET answering [] at once", http_floor);
    println!("one PostgreSQL round trip with no work (the raw SQL's connection):");
    row("SELECT 1", round_trip);
    let check = |label: &str, value: f64, goal: &str, met: bool| {
        println!("  {label:<52} {value:>8.1}   goal {goal:<8} {}", if met { "met" } else { "NOT met" });
        met
    };
    println!("ratios (p50, answers computed per request; kept answers only add to the margin):");
    let mut met = true;
    met &= check(
        "item report: sample SQL / HTTP",
        old_items.0 / http_items.0,
        ">= 100x",
        old_items.0 / http_items.0 >= 100.0,
    );
    met &=
        check("monthly: sample SQL / HTTP", old_month.0 / http_month.0, ">= 100x", old_month.0 / http_month.0 >= 100.0);
    met &= check("item report over HTTP, ms", http_items.0, "<= 10", http_items.0 <= 10.0);
    met &= check("monthly over HTTP, ms", http_month.0, "<= 5", http_month.0 <= 5.0);
    met &= check("item report: HTTP / raw SQL", http_items.0 / raw_items.0, "<= 2x", http_items.0 / raw_items.0 <= 2.0);
    met &= check("monthly: HTTP / raw SQL", http_month.0 / raw_month.0, "<= 2x", http_month.0 / raw_month.0 <= 2.0);
    println!("goals: {}", if met { "met" } else { "NOT met" });
    println!(
        "  (the least a monthly answer over HTTP could take: one bare exchange + its raw SQL = {:.1}x the raw SQL)",
        (http_floor.0 + raw_month.0) / raw_month.0
    );
    println!(
        "  (the most a report that reads the database per request could gain on the sample's monthly SQL, even with \
         no HTTP and no work: sample SQL / SELECT 1 = {:.1}x)",
        old_month.0 / round_trip.0
    );
    Ok(())
}
