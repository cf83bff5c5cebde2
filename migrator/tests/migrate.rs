//! The migrations function's work against real servers, and its custom resource answers against a local
//! `ResponseURL`. PostgreSQL (127.0.0.1:5432, trust auth, or TEST_POSTGRES_URL) and MariaDB (127.0.0.1:3306, root
//! without password, or TEST_MYSQL_URL) must be running; a test that cannot reach them fails and says so.
//!
//! PostgreSQL here is not RDS: the tests create the cluster role `rds_iam` (NOLOGIN, no privileges) that RDS
//! provides, so the IAM path runs as it does on Aurora, up to the token check that only RDS does.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use common::response_url;
use domain::ChangeKind;
use domain::testkit::order;
use migrator::custom_resource::{self, Status};
use migrator::{MigratorError, migrate};
use read_model::{LoginAuth, ReadModel};
use sqlx::{Connection, Executor};

fn server(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn postgres() -> String {
    server("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
}

fn mysql() -> String {
    server("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn admin(url: &str, hint: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await.unwrap_or_else(|e| panic!("cannot reach {url} ({e}): {hint}"))
}

async fn pg_admin() -> sqlx::AnyConnection {
    admin(&format!("{}/postgres", postgres()), "start PostgreSQL on 127.0.0.1:5432 with trust auth").await
}

async fn my_admin() -> sqlx::AnyConnection {
    admin(&format!("{}/test", mysql()), "start MariaDB on 127.0.0.1:3306 (root, no password)").await
}

async fn run(conn: &mut sqlx::AnyConnection, sql: String) {
    conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `base` (scheme://user@host:port) as `user`, in `db`.
fn as_user(base: &str, user: &str, db: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}@{host}/{db}")
}

fn insert(id: &str) -> domain::OrderChange {
    let o =
        order(&format!(r#"{{"orderId":"{id}","items":[{{"itemid":"z3333","quantity":6}}]}}"#), "2026-11-21T09:00:00Z");
    domain::testkit::change(ChangeKind::Insert, None, Some(&o), "shard-1", 1)
}

/// The projector's work as the writer login, and the query side's as the reader login.
async fn check_least_privilege(writer_url: &str, reader_url: &str, what: &str) {
    let writer = ReadModel::connect(writer_url).unwrap();
    let applied = writer.apply(&[insert("6119")]).await.unwrap_or_else(|e| panic!("{what}: the writer projects: {e}"));
    assert_eq!(applied.applied, 1, "{what}");
    let err = writer.migrate().await.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("denied") || err.contains("permission"), "{what}: the writer changes no schema: {err}");
    writer.close().await;

    let reader = ReadModel::connect(reader_url).unwrap();
    let snapshot = reader.snapshot().await.unwrap_or_else(|e| panic!("{what}: the reader reads: {e}"));
    assert_eq!(snapshot.orders.len(), 1, "{what}: the reader sees the writer's order");
    let err = reader.apply(&[insert("6120")]).await.unwrap_err().to_string();
    assert!(err.contains("denied") || err.contains("permission"), "{what}: the reader cannot write: {err}");
    reader.close().await;
}

#[tokio::test]
async fn given_aurora_postgresql_when_migrated_twice_then_iam_logins_hold_exactly_their_roles() {
    let mut conn = pg_admin().await;
    // What RDS provides; `IF NOT EXISTS` by hand, as other tests may race to create it.
    run(&mut conn, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN CREATE ROLE rds_iam NOLOGIN; END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$".into()).await;
    let db = unique("mig");
    let (writer, reader) = (unique("w"), unique("r"));
    run(&mut conn, format!("CREATE DATABASE {db}")).await;
    let owner = format!("{}/{db}", postgres());

    let first = migrate(&owner, &writer, &reader, LoginAuth::RdsIam).await.unwrap();
    assert_eq!(first.dialect, "postgres");
    migrate(&owner, &writer, &reader, LoginAuth::RdsIam).await.expect("a second run (an Update) changes nothing");

    for (user, role) in [(&writer, "orders_writer"), (&reader, "orders_reader")] {
        let sql = format!(
            "SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{user}' ORDER BY 1"
        );
        let rows = conn.fetch_all(sqlx::AssertSqlSafe(sql)).await.unwrap();
        let roles: Vec<String> = rows.iter().map(|r| sqlx::Row::get(r, 0)).collect();
        let mut expected = vec![role.to_owned(), "rds_iam".to_owned()];
        expected.sort();
        assert_eq!(roles, expected, "{user}: its role and rds_iam, nothing else");
    }
    check_least_privilege(&as_user(&postgres(), &writer, &db), &as_user(&postgres(), &reader, &db), "postgres").await;

    run(&mut conn, format!("DROP DATABASE {db} WITH (FORCE)")).await;
    run(&mut conn, format!("DROP ROLE {writer}")).await;
    run(&mut conn, format!("DROP ROLE {reader}")).await;
}

#[tokio::test]
async fn given_mariadb_with_existing_logins_when_migrated_then_each_holds_its_role_by_default() {
    let mut conn = my_admin().await;
    let db = unique("mig");
    let (writer, reader) = (unique("w"), unique("r"));
    run(&mut conn, format!("CREATE DATABASE {db}")).await;
    for user in [&writer, &reader] {
        run(&mut conn, format!("CREATE USER '{user}'@'%'")).await;
    }
    let owner = format!("{}/{db}", mysql());

    migrate(&owner, &writer, &reader, LoginAuth::Existing).await.unwrap();
    migrate(&owner, &writer, &reader, LoginAuth::Existing).await.expect("a second run changes nothing");
    check_least_privilege(&as_user(&mysql(), &writer, &db), &as_user(&mysql(), &reader, &db), "mariadb").await;

    run(&mut conn, format!("DROP DATABASE {db}")).await;
    for user in [&writer, &reader] {
        run(&mut conn, format!("DROP USER '{user}'@'%'")).await;
    }
}

#[tokio::test]
async fn given_a_server_that_is_not_rds_when_iam_logins_are_asked_for_then_the_run_fails_saying_why() {
    let mut conn = my_admin().await;
    let db = unique("mig");
    run(&mut conn, format!("CREATE DATABASE {db}")).await;

    let err = migrate(&format!("{}/{db}", mysql()), "orders_projector", "orders_query", LoginAuth::RdsIam)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AWSAuthenticationPlugin") && err.contains("RDS"), "{err}");

    run(&mut conn, format!("DROP DATABASE {db}")).await;
}

fn request(kind: &str, url: &str) -> aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest {
    let mut event = test_support::lambda::event(&format!("cloudformation-migrations-{}.json", kind.to_lowercase()));
    event["ResponseURL"] = url.into();
    migrator::request(event).unwrap()
}

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn given_each_request_then_cloudformation_receives_the_works_real_outcome() {
    let http = reqwest::Client::new();
    let (url, seen) = response_url(StatusCode::OK).await;
    let margin = Duration::from_secs(1);

    // Create: the migrations on a fresh PostgreSQL database, reported with their Data.
    let mut conn = pg_admin().await;
    let db = unique("mig");
    run(&mut conn, format!("CREATE DATABASE {db}")).await;
    let owner = format!("{}/{db}", postgres());
    let (writer, reader) = (unique("w"), unique("r"));
    for user in [&writer, &reader] {
        run(&mut conn, format!("CREATE ROLE {user} LOGIN")).await;
    }
    let work = || async { Ok(migrate(&owner, &writer, &reader, LoginAuth::Existing).await?.data()) };
    let sent = custom_resource::handle(&request("Create", &url), in_a_minute(), margin, &http, work).await.unwrap();
    assert_eq!(sent.status, Status::Success);
    let body = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], custom_resource::PHYSICAL_ID);
    assert_eq!(body["Data"]["WriterUser"], writer.as_str());

    // Update whose work fails: FAILED, with the error as the reason.
    let failing = || async { Err(MigratorError::Config("READ_MODEL_WRITER_USER is not set".into())) };
    custom_resource::handle(&request("Update", &url), in_a_minute(), margin, &http, failing).await.unwrap();
    let body = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains("READ_MODEL_WRITER_USER is not set"), "{body}");

    // Work that would outlast the function: FAILED before the deadline, not silence.
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(BTreeMap::new())
    };
    let deadline = SystemTime::now() + Duration::from_secs(2);
    custom_resource::handle(&request("Update", &url), deadline, margin, &http, slow).await.unwrap();
    assert!(SystemTime::now() < deadline, "answered before the deadline");
    let body = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains("did not finish"), "{body}");

    // Delete: nothing runs, the database stays.
    let untouched = || async { panic!("Delete runs no work") };
    let sent =
        custom_resource::handle(&request("Delete", &url), in_a_minute(), margin, &http, untouched).await.unwrap();
    assert_eq!(sent.status, Status::Success);
    assert_eq!(seen.lock().unwrap().len(), 4, "one response per request");

    run(&mut conn, format!("DROP DATABASE {db} WITH (FORCE)")).await;
    for user in [&writer, &reader] {
        run(&mut conn, format!("DROP ROLE {user}")).await;
    }
}

#[tokio::test]
async fn given_a_response_url_that_refuses_then_the_invocation_fails_after_three_tries() {
    let (url, seen) = response_url(StatusCode::FORBIDDEN).await;
    let ok = || async { Ok(BTreeMap::new()) };
    let err = custom_resource::handle(
        &request("Create", &url),
        in_a_minute(),
        Duration::from_secs(1),
        &reqwest::Client::new(),
        ok,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MigratorError::Respond(_)), "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}
