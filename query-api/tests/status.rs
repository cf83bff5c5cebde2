//! The query API's projection status and health through its Router, on SQLite, PostgreSQL and MariaDB: each source
//! with its lag, and `degraded` with the reasons (a stalled source, a change set aside, an unfinished rebuild).

mod common;

use axum::http::StatusCode;

use common::*;

#[tokio::test]
async fn given_the_projection_then_status_reports_each_source_with_its_lag() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!((r.body["status"].as_str(), r.body["deadLetters"]["count"].as_u64()), (Some("ok"), Some(0)));
        let sources = r.body["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!((sources[0]["source"].as_str(), sources[0]["sequence"].as_str()), (Some("embedded"), Some("7")));
        assert_eq!((sources[0]["lagSeconds"].as_f64(), sources[0]["behind"].as_u64()), (Some(0.0), Some(0)));
        assert!(sources[0]["secondsSinceLastChange"].as_f64().unwrap() > 0.0);
        let health = get(&f.app, "/health", &[]).await;
        assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("ok")));
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_stalled_stream_or_a_change_set_aside_then_status_and_health_say_degraded_and_why() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        let now = chrono::Utc::now();
        let seq = |n: u64| domain::change::Sequence::from(n);

        // Given a consumer that recorded a backlog its position has already passed: nothing waits
        let passed = read_model::Backlog {
            source: "embedded".into(),
            head_sequence: seq(7),
            head_changed_at: now,
            pending_since: now - chrono::Duration::seconds(600),
            pending: 3,
            recorded_at: now,
        };
        f.model.record_backlog(&passed).await.unwrap();
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!((r.body["status"].as_str(), r.body["sources"][0]["lagSeconds"].as_f64()), (Some("ok"), Some(0.0)));

        // When a stream consumer records a batch that did not go through, its oldest record two minutes old
        let stalled = read_model::Backlog {
            source: "arn:aws:dynamodb:eu-west-1:1:table/orders/stream/x#shard-1".into(),
            head_sequence: seq(120),
            head_changed_at: now - chrono::Duration::seconds(10),
            pending_since: now - chrono::Duration::seconds(120),
            pending: 40,
            recorded_at: now,
        };
        f.model.record_backlog(&stalled).await.unwrap();

        // Then status shows it behind, lagging past the threshold, and health is degraded saying so
        let r = get(&f.app, "/projection/status", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let sources = r.body["sources"].as_array().unwrap();
        let shard = sources.iter().find(|s| s["source"] == stalled.source.as_str()).unwrap();
        assert_eq!((shard["behind"].as_u64(), shard["behindAtLeast"].as_bool()), (Some(40), Some(true)));
        assert_eq!((shard["headSequence"].as_str(), shard["sequence"].as_str()), (Some("120"), None));
        assert!(shard["lagSeconds"].as_f64().unwrap() >= 120.0, "{shard}");
        assert_eq!(r.body["status"], "degraded");
        assert_eq!(r.body["reasons"][0]["code"], "projection_lagging");
        let health = get(&f.app, "/health", &[]).await;
        assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("degraded")));

        // And a change set aside is a reason of its own, listed with its reason
        let letter = read_model::DeadLetter {
            source: "embedded".into(),
            sequence: seq(8),
            order_id: Some("6119".into()),
            reason: "read model database error: refused".into(),
            record: "{}".into(),
            changed_at: now,
            failed_at: now,
        };
        f.model.set_aside(&letter).await.unwrap();
        let r = get(&f.app, "/projection/status", &[]).await;
        let codes: Vec<&str> =
            r.body["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["projection_lagging", "changes_set_aside"]);
        assert_eq!(r.body["deadLetters"]["count"], 1);
        assert_eq!(r.body["deadLetters"]["newest"][0]["orderId"], "6119");
        let embedded =
            r.body["sources"].as_array().unwrap().iter().find(|s| s["source"] == "embedded").unwrap().clone();
        assert_eq!(embedded["sequence"], "8", "setting a change aside moves its source past it");
        f.done().await;
    }
}

#[tokio::test]
async fn given_a_read_model_whose_rebuild_did_not_finish_then_health_says_degraded_and_why() {
    for backend in BACKENDS {
        // Given a read model a rebuild began and never finished
        let f = fixture(backend).await;
        eprintln!("on {backend:?}"); // shown with a failure: which backend it was
        f.model.clear().await.unwrap();
        drop(f.model.start_rebuild("embedded").await.unwrap());

        // When asked for its health, then it answers degraded, naming the unfinished rebuild
        let r = get(&f.app, "/health", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["status"], "degraded");
        let codes: Vec<&str> =
            r.body["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["rebuild_unfinished"]);
        f.done().await;
    }
}
