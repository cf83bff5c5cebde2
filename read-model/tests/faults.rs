//! The read model behind a proxy that cuts connections or goes silent (no reset, no data), on PostgreSQL and
//! MariaDB: no call waits longer than its limits, and once the network heals the next batch goes through.

use std::time::{Duration, Instant};

use domain::testkit::{History, Rng};
use read_model::ReadModel;
use test_support::FaultProxy;
use test_support::databases::{Backend, assert_equals_recomputation, fresh};

/// The statement limit the model under test runs with: short, so that the test is.
const LIMIT: Duration = Duration::from_secs(2);

/// How long any call may take while the peer is silent: the statement limit, or the pool's wait for a connection
/// when the one it had was idle long enough to be pinged (and a new one cannot connect).
const LONGEST_CALL: Duration = Duration::from_secs(13);

async fn through_proxy(backend: Backend) -> (test_support::databases::Fresh, FaultProxy, ReadModel) {
    let db = fresh(backend).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()).parse().unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    let model = ReadModel::connect(url.as_str()).unwrap().with_statement_timeout(LIMIT);
    (db, proxy, model)
}

async fn silent_peer_then_heal(backend: Backend) {
    // Given a read model reached through a proxy, with part of a history applied
    let (db, proxy, model) = through_proxy(backend).await;
    let mut rng = Rng::new(11);
    let history = History::random(&mut rng, 40, 400);
    let batches: Vec<_> = history.changes.chunks(50).collect();
    model.apply(batches[0]).await.unwrap();

    for (round, batch) in batches[1..].iter().enumerate() {
        // When the peer goes silent (twice, so that nothing the first silence held up is still held)
        if round < 2 {
            proxy.go_silent();
            let started = Instant::now();
            let failed = model.apply(batch).await;
            assert!(failed.is_err(), "{backend:?}: a batch to a silent peer cannot succeed");
            assert!(started.elapsed() < LONGEST_CALL, "{backend:?}: apply waited {:?}", started.elapsed());
            let started = Instant::now();
            assert!(model.positions().await.is_err());
            assert!(started.elapsed() < LONGEST_CALL, "{backend:?}: a read waited {:?}", started.elapsed());
            proxy.heal();
        }
        // Then once healed, the same batch goes through within seconds
        let healed = Instant::now();
        loop {
            match model.apply(batch).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(healed.elapsed() < Duration::from_secs(10), "{backend:?}: no recovery after heal: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    assert_equals_recomputation(&model, &history, &format!("{backend:?} after silences")).await;
    model.close().await;
    db.drop_database().await;
}

async fn cut_mid_load(backend: Backend) {
    // Given batches applied while every connection is reset again and again
    let (db, proxy, model) = through_proxy(backend).await;
    let mut rng = Rng::new(12);
    let history = History::random(&mut rng, 60, 600);
    let cutter = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let cuts = std::sync::Arc::new(proxy);
        let c = cuts.clone();
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(13);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
                c.cut();
            }
        });
        (stop, task, cuts)
    };

    // When each batch is retried until it takes, and the whole history is applied again (replays change nothing)
    // until a cut has met a batch: a fast database can take a pass in less time than the cutter sleeps
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for batch in history.changes.chunks(40) {
            while model.apply(batch).await.is_err() {
                failures += 1;
                assert!(failures < 1_000, "{backend:?}: batches keep failing");
            }
        }
        if failures > 0 || Instant::now() > deadline {
            break;
        }
    }
    cutter.0.store(true, std::sync::atomic::Ordering::Relaxed);
    cutter.1.await.unwrap();
    // A connection the last cut broke is found broken when next used after a short idle: past the ping interval,
    // the pool replaces it first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // Then the model is what the history gives, and the cuts did hit batches
    assert!(failures > 0, "{backend:?}: no batch met a cut; the test proves nothing");
    assert_equals_recomputation(&model, &history, &format!("{backend:?} under cuts")).await;
    model.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn given_a_silent_postgres_peer_then_calls_end_within_their_limits_and_the_model_resumes_after_it_heals() {
    silent_peer_then_heal(Backend::Postgres).await;
}

#[tokio::test]
async fn given_a_silent_mariadb_peer_then_calls_end_within_their_limits_and_the_model_resumes_after_it_heals() {
    silent_peer_then_heal(Backend::MariaDb).await;
}

#[tokio::test]
async fn given_connections_cut_mid_load_on_postgres_then_retried_batches_equal_a_recomputation() {
    cut_mid_load(Backend::Postgres).await;
}

#[tokio::test]
async fn given_connections_cut_mid_load_on_mariadb_then_retried_batches_equal_a_recomputation() {
    cut_mid_load(Backend::MariaDb).await;
}
