//! The running system against hostile input: ad-hoc SQL built to exhaust a stack, a processor or memory, with
//! `/health` and order writes watched all along; dates and strings at the edges of what the write side accepts,
//! on every read-model backend and in the lake; and a change a backend refuses, set aside and applied again by
//! an operator. Run against `ORDERS_BIN` when set: `./scripts/test` runs this file again on a release-like build,
//! where frames (and so stack depths) differ from a debug build's.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{command, get, interrupt, post, signal_and_wait, start};

/// `n` copies of `item` joined by `sep`.
fn chain(item: &str, sep: &str, n: usize) -> String {
    vec![item; n].join(sep)
}

fn ctes(n: usize) -> String {
    let mut sql = String::from("WITH c1 AS (SELECT 1 AS x)");
    for i in 2..=n {
        sql.push_str(&format!(", c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1));
    }
    sql + &format!(" SELECT x FROM c{n}")
}

/// Submits `sql`; the answer's status and body.
async fn submit(query_url: &str, sql: &str) -> (u16, Value) {
    let r =
        reqwest::Client::new().post(format!("{query_url}/queries")).json(&json!({"sql": sql})).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Waits for query `id` to end (bounded); its final status.
async fn ended(query_url: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, body) = get(query_url, &format!("/queries/{id}")).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&body["state"].as_str().unwrap_or_default()) {
            return body;
        }
        assert!(Instant::now() < deadline, "query {id} did not end within {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Probes `/health` of both APIs and writes an order, every 50 ms until `stop`; the slowest answer seen, in µs.
fn watch_health(
    urls: (String, String),
    stop: Arc<AtomicBool>,
    slowest: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let mut probes = 0;
        while !stop.load(Ordering::Relaxed) {
            for url in [&urls.0, &urls.1] {
                let asked = Instant::now();
                let r = http.get(format!("{url}/health")).send().await;
                let took = asked.elapsed().as_micros() as u64;
                assert!(r.is_ok_and(|r| r.status().is_success()), "{url}/health did not answer");
                slowest.fetch_max(took, Ordering::Relaxed);
            }
            let asked = Instant::now();
            let body = json!({"orderId": format!("probe-{probes}"), "items": [{"itemid": "z3333", "quantity": 1}]});
            let r = http.post(format!("{}/orders", urls.0)).json(&body).send().await;
            assert!(r.is_ok_and(|r| r.status().as_u16() == 201), "an order write failed while queries ran");
            slowest.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
            probes += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        probes
    })
}

// Multi-threaded: the health probes run while the test waits on the runner synchronously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_worst_queries_then_the_process_lives_limits_hold_and_health_answers_within_100_ms() {
    eprintln!("binary under test: {}", support::binary().display());
    let cwd = tempfile::tempdir().unwrap();
    let mut running = start(cwd.path(), &[("QUERY_TIMEOUT_SECS", "4"), ("QUERY_MEMORY_MB", "1024")]);
    let q = running.query_url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let watcher = watch_health((running.url.clone(), q.clone()), stop.clone(), slowest.clone());
    let limits = adhoc::guard::Limits::DEFAULT;

    // Given statements that took the whole runner down: each is refused, naming why
    for (sql, code) in [
        (format!("SELECT {}", chain("1", "+", 1_000)), "sql_too_deep"),
        (format!("SELECT 1 FROM order_lines WHERE {}", chain("1=1", " AND ", 2_000)), "sql_too_deep"),
        (chain("SELECT 1", " UNION ALL ", 1_000), "sql_too_complex"),
        (ctes(300), "sql_too_complex"),
        (format!("SELECT {}", chain("1", "+", 30_000)), "sql_too_deep"),
    ] {
        let (status, body) = submit(&q, &sql).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{}", &sql[..40]);
    }

    // And the deepest the guard lets through runs to the end
    for sql in [
        format!("SELECT {} AS n", chain("1", "+", limits.expression_depth)),
        format!("SELECT COUNT(*) AS n FROM ({}) AS u", chain("SELECT 1 AS x", " UNION ALL ", limits.set_operands - 1)),
        ctes(limits.ctes),
    ] {
        let (status, body) = submit(&q, &sql).await;
        assert_eq!(status, 202, "{body}");
        let end = ended(&q, body["queryId"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(end["state"], "SUCCEEDED", "{}: {end}", &sql[..40]);
    }

    // When queries that compute for long (inside one function call, or in a loop of the engine's), or build values
    // past the memory limit, run two at a time
    let slow = "SELECT length(regexp_replace(repeat('ab', 30000000), '(a|b)', 'xyz', 'g'))";
    let looping =
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 1000000000) SELECT SUM(n) FROM t";
    let huge = [
        "SELECT length(repeat('x', 1500000000))",
        "SELECT length(lpad('x', 2147483647))",
        "SELECT length(repeat(repeat('ab', 50000), 20000))",
    ];
    let mut started = Vec::new();
    for sql in [slow, looping, huge[0], huge[1], huge[2]] {
        let (status, body) = submit(&q, sql).await;
        assert_eq!(status, 202, "{body}");
        started.push((sql, body["queryId"].as_str().unwrap().to_owned()));
    }

    // Then each ends FAILED at its limit: time within 2 s of it, memory at once
    for (sql, id) in &started {
        let end = ended(&q, id, Duration::from_secs(40)).await;
        let reason = end["failureReason"].as_str().unwrap_or_default();
        assert_eq!(end["state"], "FAILED", "{sql}: {end}");
        if *sql == slow || *sql == looping {
            assert_eq!(reason, "the query reached its time limit of 4 s", "{sql}");
            let ran = end["runTimeMs"].as_u64().unwrap();
            assert!((4_000..6_000).contains(&ran), "{sql}: ran {ran} ms against a 4 s limit");
        } else {
            assert_eq!(reason, "the query needed more memory than its limit of 1024 MB (QUERY_MEMORY_MB)", "{sql}");
        }
    }

    // And a running query that is cancelled stops working (its worker is gone), not just its record
    let (_, body) = submit(&q, slow).await;
    let id = body["queryId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = reqwest::Client::new().delete(format!("{q}/queries/{id}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(ended(&q, &id, Duration::from_secs(5)).await["state"], "CANCELLED");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !workers(running.pid()).is_empty() {
        assert!(Instant::now() < deadline, "a worker still runs after the cancel: {:?}", workers(running.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Throughout: the process lived, and both APIs answered health and writes within 100 ms
    stop.store(true, Ordering::Relaxed);
    let probes = watcher.await.unwrap();
    assert!(running.child.try_wait().unwrap().is_none(), "the runner is alive");
    let worst = slowest.load(Ordering::Relaxed);
    eprintln!("{probes} probes; slowest health or write answer {worst} µs");
    assert!(probes > 50, "only {probes} probes");
    assert!(worst < 100_000, "an answer took {worst} µs while queries ran");

    // And SIGTERM stops the runner within its documented shutdown time (15 s) with queries running
    for _ in 0..2 {
        assert_eq!(submit(&q, slow).await.0, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!workers(running.pid()).is_empty(), "the queries run in workers");
    let pid = running.pid();
    let asked = Instant::now();
    let status = signal_and_wait(&mut running, "TERM", Duration::from_secs(15));
    assert!(status.success(), "{status}");
    eprintln!("stopped {:?} after SIGTERM", asked.elapsed());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !workers_of_gone(pid).is_empty() {
        assert!(Instant::now() < deadline, "workers outlived the runner: {:?}", workers_of_gone(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `sql` in a query worker of the binary under test directly (past the guard); the outcome it reports.
fn run_in_worker(sql: &str) -> Value {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let job = json!({
        "sql": sql,
        "lakeUrl": dir.path().join("lake").display().to_string(),
        "result": dir.path().join("result.arrow").display().to_string(),
        "memoryLimit": 1u64 << 30,
        "parent": std::process::id(),
    });
    let mut child = std::process::Command::new(support::binary())
        .arg("adhoc-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| json!({"died": out.status.to_string(), "stderr": String::from_utf8_lossy(&out.stderr)}))
}

#[test]
fn given_statements_four_times_past_the_guards_limits_then_the_engine_still_plans_and_runs_them() {
    // The room the limits leave, on the build under test: each chain at four times its limit, past the guard.
    let limits = adhoc::guard::Limits::DEFAULT;
    let cases = [
        format!("SELECT {} AS n", chain("1", "+", 4 * limits.expression_depth)),
        format!("SELECT 1 AS n WHERE {}", chain("1 = 1", " AND ", 2 * limits.expression_depth)),
        format!("SELECT COUNT(*) AS n FROM ({}) AS u", chain("SELECT 1 AS x", " UNION ALL ", 4 * limits.set_operands)),
        ctes(4 * limits.ctes),
    ];
    for sql in cases {
        let outcome = run_in_worker(&sql);
        assert_eq!(outcome["outcome"], "succeeded", "{}: {outcome}", &sql[..50]);
    }
}

/// Processes whose parent is `pid` and that run as `orders adhoc-worker`.
fn workers(pid: u32) -> Vec<u32> {
    processes().into_iter().filter(|(_, ppid, cmd)| *ppid == pid && cmd.contains("adhoc-worker")).map(|p| p.0).collect()
}

/// Workers left over from a runner that is gone: reparented, so found by their command line and data directory.
fn workers_of_gone(_pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, _, cmd)| cmd.contains("adhoc-worker") && cmd.contains(&support::binary().display().to_string()))
        .map(|p| p.0)
        .collect()
}

/// (pid, parent pid, command line) of every process.
fn processes() -> Vec<(u32, u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

fn server(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A fresh database on `base`'s server, created through its admin database `admin`.
async fn fresh_database(base: &str, admin: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("hostile_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{base}/{admin}"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach {base}/{admin} ({e}): start PostgreSQL and MariaDB (see README)"));
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    format!("{base}/{name}")
}

/// Orders at the edges of what the write side accepts, and what it must refuse.
const EDGES: &[(&str, u16)] = &[
    (r#"{"orderId":"leap","orderDate":"2016-12-31T23:59:60Z","items":[{"itemid":"edge","quantity":1}]}"#, 201),
    (
        r#"{"orderId":"leap-offset","orderDate":"2017-01-01T04:59:60.5+05:00","items":[{"itemid":"edge","quantity":2}]}"#,
        201,
    ),
    (r#"{"orderId":"earliest","orderDate":"1900-01-01","items":[{"itemid":"edge","quantity":4}]}"#, 201),
    (r#"{"orderId":"dayend","orderDate":"2022-12-31T23:59:59.9999Z","items":[{"itemid":"edge","quantity":8}]}"#, 201),
    (
        r#"{"orderId":"max-price","items":[{"itemid":"edge","quantity":1000000,"unitPrice":"99999999999999.9999"}]}"#,
        201,
    ),
    (r#"{"orderId":"too-early","orderDate":"1899-12-31T23:59:59Z","items":[{"itemid":"edge","quantity":1}]}"#, 422),
    (r#"{"orderId":"year-zero","orderDate":"0000-01-01","items":[{"itemid":"edge","quantity":1}]}"#, 422),
    (r#"{"orderId":"too-dear","items":[{"itemid":"edge","quantity":1,"unitPrice":"100000000000000"}]}"#, 422),
    (r#"{"orderId":"\ud800","items":[{"itemid":"edge","quantity":1}]}"#, 422),
    (r#"{"orderId":"surrogate-date","orderDate":"\udfff","items":[{"itemid":"edge","quantity":1}]}"#, 422),
    (r#"{"orderId":"surrogate-price","items":[{"itemid":"edge","quantity":1,"unitPrice":"\ud83d"}]}"#, 422),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_dates_and_strings_at_the_edges_then_each_is_refused_or_projected_alike_on_every_backend_and_the_lake() {
    let backends = [
        ("sqlite", None),
        (
            "postgres",
            Some(fresh_database(&server("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"), "postgres").await),
        ),
        ("mariadb", Some(fresh_database(&server("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"), "test").await)),
    ];
    let mut answers: Vec<(&str, Value, Value)> = Vec::new();
    for (name, url) in backends {
        let cwd = tempfile::tempdir().unwrap();
        let mut env = vec![("LAKE_FLUSH_MS", "100")];
        if let Some(url) = &url {
            env.push(("READ_MODEL_URL", url.as_str()));
        }
        let running = start(cwd.path(), &env);
        for (body, expected) in EDGES {
            let (status, _, answer) = post(&running.url, body).await;
            assert_eq!(status, *expected, "{name}: {body}: {answer}");
        }
        let (_, report) = get(&running.query_url, "/itemSalesReport?consistentWith=max-price:1").await;
        let (_, months) = get(&running.query_url, "/monthlySalesByItem/edge").await;
        let (_, status) = get(&running.query_url, "/projection/status").await;
        assert_eq!(status["deadLetters"]["count"], 0, "{name}: nothing set aside: {status}");
        // The lake holds them with the same UTC days.
        let deadline = Instant::now() + Duration::from_secs(20);
        let lake = loop {
            let (id, end) =
                support::adhoc(&running.query_url, "SELECT orderid, dt FROM order_lines ORDER BY orderid", false).await;
            assert_eq!(end["state"], "SUCCEEDED", "{end}");
            let (_, page) = get(&running.query_url, &format!("/queries/{id}/results")).await;
            if page["rows"].as_array().is_some_and(|r| r.len() == 5) {
                break page["rows"].clone();
            }
            assert!(Instant::now() < deadline, "{name}: the lake did not catch up: {page}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            lake,
            json!([
                ["dayend", "2022-12-31"],
                ["earliest", "1900-01-01"],
                ["leap", "2016-12-31"],
                ["leap-offset", "2016-12-31"],
                ["max-price", lake[4][1].clone()]
            ]),
            "{name}: a leap second stays in its day"
        );
        interrupt(running);
        answers.push((name, report, months));
    }
    // Then every backend gives the same reports: the leap seconds in December 2016, the last millisecond of 2022
    // in December 2022, 1900 kept, and the largest price exact.
    let (_, report, months) = &answers[0];
    assert_eq!(
        months,
        &json!([
            {"monthyear": months[0]["monthyear"].clone(), "month": months[0]["month"].clone(), "monthlyordered": 1000000},
            {"monthyear": "December 2022", "month": "2022-12", "monthlyordered": 8},
            {"monthyear": "December 2016", "month": "2016-12", "monthlyordered": 3},
            {"monthyear": "January 1900", "month": "1900-01", "monthlyordered": 4}
        ])
    );
    assert_eq!(report[0]["totalrevenue"], "99999999999999999900", "1,000,000 × the largest price, exact");
    for (name, other_report, other_months) in &answers[1..] {
        assert_eq!(other_report, report, "{name}'s item report");
        assert_eq!(other_months, months, "{name}'s monthly report");
    }
}

#[tokio::test]
async fn given_a_change_the_read_model_refuses_then_it_is_set_aside_health_degrades_and_an_operator_applies_it_again() {
    // Given a read model that refuses one order (a trigger, as a backend refuses a value it cannot hold)
    let cwd = tempfile::tempdir().unwrap();
    let running = start(cwd.path(), &[]);
    interrupt(running);
    let db = cwd.path().join("data/readmodel.db");
    let trigger = "CREATE TRIGGER refuse BEFORE INSERT ON orders WHEN NEW.orderid = 'refused' \
                   BEGIN SELECT RAISE(ABORT, 'refused by the backend'); END";
    sqlite(&db, trigger).await;
    let running = start(cwd.path(), &[]);

    // When it is posted between two others
    for id in ["before", "refused", "after"] {
        let body = format!(r#"{{"orderId":"{id}","items":[{{"itemid":"z3333","quantity":1}}]}}"#);
        assert_eq!(post(&running.url, &body).await.0, 201);
    }

    // Then the others are projected, and health and status say a change is set aside, and which
    let (status, report) = get(&running.query_url, "/itemSalesReport?consistentWith=after:1").await;
    assert_eq!((status, &report[0]["ordercount"]), (200, &json!(2)), "{report}");
    let (_, health) = get(&running.query_url, "/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["reasons"][0]["code"], "changes_set_aside");
    let (_, status) = get(&running.query_url, "/projection/status").await;
    assert_eq!(status["deadLetters"]["newest"][0]["orderId"], "refused", "{status}");
    assert!(status["deadLetters"]["newest"][0]["reason"].as_str().unwrap().contains("refused by the backend"));
    interrupt(running);

    // When the operator lists them, then mends the backend and applies them again
    let out = command(cwd.path(), &[]).arg("dead-letters").output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("1 change(s) set aside") && listed.contains("order refused"),
        "{listed}"
    );
    sqlite(&db, "DROP TRIGGER refuse").await;
    let out = command(cwd.path(), &[]).args(["dead-letters", "--retry"]).output().unwrap();
    let retried = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && retried.contains("0 change(s) still set aside"), "{retried}");

    // Then the order counts, and health is ok again
    let running = start(cwd.path(), &[]);
    let (_, report) = get(&running.query_url, "/itemSalesReport").await;
    assert_eq!(report[0]["ordercount"], 3, "{report}");
    let (_, health) = get(&running.query_url, "/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    interrupt(running);
}

async fn sqlite(path: &std::path::Path, sql: &'static str) {
    let url = format!("sqlite://{}", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
}
