//! The running system under faults, with clients writing all along: the runner killed with SIGKILL at several
//! points, and its read model's connections cut or its database peer gone silent (PostgreSQL and MariaDB). The
//! process stays up through the database faults; nothing acknowledged is lost; afterwards the reports (and the
//! lake) equal a recomputation from the write model.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::load::{self, Ledger};
use support::{get, interrupt, kill9, start};
use test_support::FaultProxy;

#[tokio::test]
async fn given_clients_writing_when_the_runner_is_killed_at_several_points_then_nothing_acknowledged_is_lost() {
    let cwd = tempfile::tempdir().unwrap();
    let env = [("LAKE_FLUSH_MS", "200")];
    let mut ledgers: Vec<Ledger> = vec![Ledger::new(); 4];
    // Killed at several points: early, mid-load, and at once after a restart (during recovery).
    for (round, run_ms) in [(1u64, 700u64), (2, 1_300), (3, 50), (4, 900)] {
        let running = start(cwd.path(), &env);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = ledgers
            .drain(..)
            .enumerate()
            .map(|(i, ledger)| {
                tokio::spawn(load::client(
                    running.url.clone(),
                    format!("c{i}"),
                    round * 10 + i as u64,
                    stop.clone(),
                    ledger,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        kill9(running);
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            ledgers.push(t.await.unwrap());
        }
    }

    // Then, after a last restart: every acknowledged write reads back, and the reports and the lake equal a
    // recomputation from the write model.
    let running = start(cwd.path(), &env);
    let all: Ledger = ledgers.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    let checked = load::assert_nothing_acknowledged_was_lost(&running.url, &all).await;
    assert!(checked > 50, "only {checked} acknowledged orders: the load proves little");
    load::await_caught_up(&running.query_url, Duration::from_secs(20)).await;
    interrupt(running);
    let orders = load::write_model(&cwd.path().join("data")).await;
    let running = start(cwd.path(), &env);
    load::await_caught_up(&running.query_url, Duration::from_secs(20)).await;
    load::assert_reports_equal_a_recomputation(&running.query_url, &orders).await;
    assert_lake_equals(&running.query_url, &orders).await;
    interrupt(running);
}

/// The lake's current view holds exactly the lines of the orders that count.
async fn assert_lake_equals(query_url: &str, orders: &[domain::Order]) {
    let mut expected: Vec<(String, String, i64)> = orders
        .iter()
        .filter(|o| o.status == domain::OrderStatus::Created)
        .flat_map(|o| {
            o.items
                .as_slice()
                .iter()
                .map(|l| (o.order_id.to_string(), l.itemid.to_string(), i64::from(l.quantity.get())))
        })
        .collect();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (id, status) = support::adhoc(
            query_url,
            "SELECT orderid, itemid, quantity FROM order_lines_current ORDER BY orderid, itemid",
            false,
        )
        .await;
        assert_eq!(status["state"], "SUCCEEDED", "{status}");
        let mut got = Vec::new();
        let mut path = format!("/queries/{id}/results");
        loop {
            let (_, page) = get(query_url, &path).await;
            for row in page["rows"].as_array().unwrap() {
                got.push((
                    row[0].as_str().unwrap().to_owned(),
                    row[1].as_str().unwrap().to_owned(),
                    row[2].as_i64().unwrap(),
                ));
            }
            match page["nextToken"].as_str() {
                Some(token) => path = format!("/queries/{id}/results?nextToken={token}"),
                None => break,
            }
        }
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the lake does not equal the write model: {} vs {} lines",
            got.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A fresh database on the server of `base` (its admin database `admin`), reached through a fault proxy: the
/// runner's READ_MODEL_URL, and the proxy.
async fn database_behind_a_proxy(base: &str, admin: &str) -> (String, FaultProxy, String) {
    sqlx::any::install_default_drivers();
    let name = format!("faults_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{base}/{admin}"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach {base}/{admin} ({e}): start PostgreSQL and MariaDB (see README)"));
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let mut url = url::Url::parse(&format!("{base}/{name}")).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()).parse().unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    (url.to_string(), proxy, name)
}

async fn cut_and_silent_peer(base: &str, admin: &str) {
    // Given the runner projecting into a database behind a proxy, with 3 s statement limits, and clients writing
    let (url, proxy, _name) = database_behind_a_proxy(base, admin).await;
    let cwd = tempfile::tempdir().unwrap();
    let mut running = start(cwd.path(), &[("READ_MODEL_URL", &url), ("READ_MODEL_STATEMENT_TIMEOUT_SECS", "3")]);
    let command_url = running.url.clone();
    let query_url = running.query_url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|i| tokio::spawn(load::client(command_url.clone(), format!("w{i}"), 70 + i, stop.clone(), Ledger::new())))
        .collect();

    // When every connection is cut, again and again
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        proxy.cut();
    }
    // and then the database peer goes silent (no reset, no data) for 10 s
    proxy.go_silent();
    let silent = Instant::now();
    // Then the query side answers 503 within its limits while the command side goes on
    let asked = Instant::now();
    let r = reqwest::get(format!("{query_url}/itemSalesReport")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "{:?}", r.text().await);
    assert!(asked.elapsed() < Duration::from_secs(15), "a report waited {:?}", asked.elapsed());
    let (status, _) = get(&command_url, "/health").await;
    assert_eq!(status, 200, "the command side does not depend on the read model");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(silent.elapsed())).await;
    assert!(running.child.try_wait().unwrap().is_none(), "the process stays up");
    proxy.heal();

    // And once the network heals, the projector catches up within seconds, and nothing diverges
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ledger = Ledger::new();
    for w in writers {
        ledger.extend(w.await.unwrap());
    }
    assert!(load::assert_nothing_acknowledged_was_lost(&command_url, &ledger).await > 20);
    let healed = Instant::now();
    load::await_caught_up(&query_url, Duration::from_secs(30)).await;
    eprintln!("caught up {:?} after the network healed", healed.elapsed());
    assert!(running.child.try_wait().unwrap().is_none(), "the process stayed up");
    interrupt(running);
    let orders = load::write_model(&cwd.path().join("data")).await;
    let running = start(cwd.path(), &[("READ_MODEL_URL", &url)]);
    load::await_caught_up(&running.query_url, Duration::from_secs(20)).await;
    load::assert_reports_equal_a_recomputation(&running.query_url, &orders).await;
    let (_, status) = get(&running.query_url, "/projection/status").await;
    assert_eq!(status["deadLetters"]["count"], 0, "nothing was set aside: every failure was one retrying mends");
    interrupt(running);
}

fn server(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

// Multi-threaded: the fault proxy's tasks must run while the test waits on the runner synchronously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_postgres_connections_cut_and_then_a_silent_peer_under_load_then_the_runner_stays_up_and_converges() {
    cut_and_silent_peer(&server("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"), "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_mariadb_connections_cut_and_then_a_silent_peer_under_load_then_the_runner_stays_up_and_converges() {
    cut_and_silent_peer(&server("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"), "test").await;
}
