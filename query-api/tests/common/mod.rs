//! What the query API's test binaries share: a fresh read model on each backend with the sample's orders, and
//! requests through the Router (no socket).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::testkit::{change, order};
use domain::{ChangeKind, Order};
use http_body_util::BodyExt;
use query_api::{Settings, app};
use read_model::ReadModel;
use serde_json::Value;
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub fn error_code(&self) -> &str {
        assert_eq!(self.header("content-type"), "application/json", "errors are JSON");
        assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.body);
        self.body["error"]["code"].as_str().expect("error has a code")
    }
}

pub async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("bodies are JSON") };
    Reply { status, headers, body }
}

pub struct Fixture {
    pub model: Arc<ReadModel>,
    pub app: Router,
    pub _dir: tempfile::TempDir,
    pub orders: Vec<Order>,
    /// The server database to drop afterwards: (admin URL, name).
    pub server: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

/// Every test runs on each backend with the same expectations; the server ones must be running (a test that
/// cannot reach them fails and says what to start).
pub const BACKENDS: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MariaDb];

impl Fixture {
    pub async fn done(self) {
        self.model.close().await;
        if let Some((admin, name)) = self.server {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.unwrap();
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).await.unwrap();
        }
    }
}

/// A fresh, empty, migrated read model on `backend`.
pub async fn fresh(backend: Backend, dir: &tempfile::TempDir) -> (ReadModel, Option<(String, String)>) {
    static N: AtomicU32 = AtomicU32::new(0);
    let env = |var: &str, default: &str| std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or(default.into());
    let (base, admin_db, hint) = match backend {
        Backend::Sqlite => {
            let model = ReadModel::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("rm.db").display()));
            let model = model.unwrap();
            model.migrate().await.unwrap();
            return (model, None);
        }
        Backend::Postgres => (
            env("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
            "postgres",
            "start PostgreSQL on 127.0.0.1:5432 with trust auth, or set TEST_POSTGRES_URL",
        ),
        Backend::MariaDb => (
            env("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
            "test",
            "start MariaDB/MySQL on 127.0.0.1:3306 (root, no password), or set TEST_MYSQL_URL",
        ),
    };
    sqlx::any::install_default_drivers();
    let name = format!("qa_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = format!("{base}/{admin_db}");
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {admin} ({e}): {hint}"));
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let model = ReadModel::connect(&format!("{base}/{name}")).unwrap();
    model.migrate().await.unwrap();
    (model, Some((admin, name)))
}

pub fn settings() -> Settings {
    Settings {
        consistency_wait: Duration::from_millis(300),
        poll_every: Duration::from_millis(5),
        cache_entries: 8,
        ..Settings::default()
    }
}

/// The sample's example (orders 6119 and 6120), an order across the year boundary, a cancelled and a removed one.
pub async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (model, server) = fresh(backend, &dir).await;
    let o = |json: &str| order(json, "2026-11-21T09:00:00Z");
    let orders = vec![
        o(
            r#"{"orderId":"6119","orderDate":"2022-10-13T09:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"2.50"},{"itemid":"z4444","quantity":3}]}"#,
        ),
        o(
            r#"{"orderId":"6120","orderDate":"2022-11-02T00:00:00Z","items":[{"itemid":"z3333","quantity":6,"unitPrice":"0.0001"}]}"#,
        ),
        o(r#"{"orderId":"6121","orderDate":"2021-12-31T23:59:59.999Z","items":[{"itemid":"z3333","quantity":2}]}"#),
        o(r#"{"orderId":"6122","orderDate":"2023-01-05T00:00:00Z","items":[{"itemid":"z3333","quantity":50}]}"#),
        o(r#"{"orderId":"6123","orderDate":"2023-02-05T00:00:00Z","items":[{"itemid":"z5555","quantity":7}]}"#),
    ];
    let mut changes: Vec<_> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| change(ChangeKind::Insert, None, Some(o), "embedded", i as u64 + 1))
        .collect();
    let cancelled =
        Order { status: domain::OrderStatus::Cancelled, version: orders[3].version.next(), ..orders[3].clone() };
    changes.push(change(ChangeKind::Modify, Some(&orders[3]), Some(&cancelled), "embedded", 6));
    changes.push(change(ChangeKind::Remove, Some(&orders[4]), None, "embedded", 7));
    model.apply(&changes).await.unwrap();
    let model = Arc::new(model);
    Fixture { app: app(model.clone(), settings()), model, _dir: dir, orders, server }
}
