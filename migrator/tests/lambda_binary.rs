//! The `migrate-lambda` binary as Lambda runs it: started against a local Lambda Runtime API (`test_support::lambda`),
//! handed the sample CloudFormation events of `events/` with their `ResponseURL` pointed at a local listener, the
//! owner's secret in Secrets Manager on moto (`MOTO_ENDPOINT`) and the read model on PostgreSQL.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::{Connection, Executor};

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run ./scripts/test (it starts moto), or start `moto_server -H 127.0.0.1 -p 5000` \
             and set MOTO_ENDPOINT"
        )
    })
}

fn postgres() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or("postgres://postgres@127.0.0.1:5432".into())
}

fn event(kind: &str, response_url: &str) -> Value {
    let mut e = test_support::lambda::event(&format!("cloudformation-migrations-{kind}.json"));
    e["ResponseURL"] = response_url.into();
    e
}

#[tokio::test]
async fn given_the_sample_custom_resource_events_when_the_binary_runs_them_then_cloudformation_hears_each_outcome() {
    static N: AtomicU32 = AtomicU32::new(0);
    let suffix = format!("{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let (db, writer, reader) = (format!("migbin_{suffix}"), format!("wb_{suffix}"), format!("rb_{suffix}"));
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres()))
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL ({e}): start it on 127.0.0.1:5432 with trust auth"));
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await.unwrap();
    for user in [&writer, &reader] {
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {user} LOGIN"))).await.unwrap();
    }

    // The owner's secret, as RDS keeps it.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "harness", "harness", None, None, "test",
        ))
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let owner = url::Url::parse(&postgres()).unwrap();
    let secret = secrets
        .create_secret()
        .name(format!("rds-owner-{suffix}"))
        .secret_string(serde_json::json!({"username": owner.username(), "password": ""}).to_string())
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_owned();

    let (url, seen) = common::response_url(axum::http::StatusCode::OK).await;
    let host = owner.host_str().unwrap().to_owned();
    let port = owner.port().unwrap_or(5432);
    let env = |secret_arn: &str| {
        vec![
            ("READ_MODEL_ADMIN_URL", format!("postgres://{host}:{port}/{db}")),
            ("READ_MODEL_ADMIN_SECRET_ARN", secret_arn.to_owned()),
            ("READ_MODEL_WRITER_USER", writer.clone()),
            ("READ_MODEL_READER_USER", reader.clone()),
            ("READ_MODEL_LOGINS", "existing".to_owned()),
            ("AWS_ENDPOINT_URL", moto()),
        ]
    };
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_migrate-lambda"),
        &env(&arn),
        vec![event("create", &url), event("update", &url), event("delete", &url)],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(run.outcomes.len(), 3, "{:?}\n{}", run.init_error, run.logs);
    let sent = seen.lock().unwrap().clone();
    let statuses: Vec<&str> = sent.iter().map(|b| b["Status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["SUCCESS", "SUCCESS", "SUCCESS"], "{sent:?}\n{}", run.logs);
    assert_eq!(sent[0]["Data"]["WriterUser"], writer.as_str());
    for (outcome, body) in run.outcomes.iter().zip(&sent) {
        assert_eq!(outcome.response(), body, "the invocation returns what CloudFormation received");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut sqlx::PgConnection::connect(&format!("{}/{db}", postgres())).await.unwrap())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/postgres")).unwrap().count();
    assert_eq!(applied as usize, files, "every migration, once");

    // A secret that does not exist: FAILED, saying which, and the invocation itself succeeds (it was reported).
    let missing = format!("{arn}-gone");
    let run = test_support::lambda::run(
        env!("CARGO_BIN_EXE_migrate-lambda"),
        &env(&missing),
        vec![event("update", &url)],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(run.outcomes.len(), 1, "{}", run.logs);
    let body = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains(&missing), "{body}");

    admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).await.unwrap();
    for user in [&writer, &reader] {
        admin.execute(sqlx::AssertSqlSafe(format!("DROP ROLE {user}"))).await.unwrap();
    }
}
