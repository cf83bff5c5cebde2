//! What the end-to-end test binaries share: the real `orders` binary started on free ports with a temp data
//! directory, stopped with Ctrl-C or killed, and driven over HTTP.
#![allow(dead_code)]

pub mod browser;
pub mod load;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test: `ORDERS_BIN` (a release-like build, from `./scripts/test`), else the one cargo built
/// for this test run.
pub fn binary() -> PathBuf {
    match std::env::var_os("ORDERS_BIN").filter(|v| !v.is_empty()).map(PathBuf::from) {
        // Relative to the checkout (tests start the runner in a directory of their own).
        Some(path) if path.is_relative() => Path::new(env!("CARGO_MANIFEST_DIR")).join(path),
        Some(path) => path,
        None => PathBuf::from(env!("CARGO_BIN_EXE_orders")),
    }
}

pub struct Running {
    pub child: Child,
    pub url: String,
    pub query_url: String,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The variables that point the binary at `table` on moto at `endpoint` (`ORDERS_STORE=dynamodb`).
pub fn dynamodb_env<'a>(table: &'a str, endpoint: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("ORDERS_STORE", "dynamodb"),
        ("ORDERS_TABLE", table),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

pub fn command(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(cwd).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the binary and waits for its two "listening" lines (command API, then query API).
pub fn start(cwd: &Path, env: &[(&str, &str)]) -> Running {
    let mut env = env.to_vec();
    env.push(("COMMAND_API_ADDR", "127.0.0.1:0"));
    env.push(("QUERY_API_ADDR", "127.0.0.1:0"));
    let mut child = command(cwd, &env).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn orders");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = |expected: &str| {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        assert!(line.starts_with(expected), "expected {expected:?}, got {line:?}");
        line.split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned()
    };
    let url_commands = url("command API listening");
    let query_url = url("query API listening");
    Running { child, url: url_commands, query_url }
}

/// Sends `signal` (by name, as kill(1) takes it), then the process must exit within `within`; its exit status.
pub fn signal_and_wait(r: &mut Running, signal: &str, within: Duration) -> std::process::ExitStatus {
    let pid = r.child.id().to_string();
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = r.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not stop within {within:?} of SIG{signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C, then the process must exit 0 promptly.
pub fn interrupt(mut r: Running) {
    let status = signal_and_wait(&mut r, "INT", Duration::from_secs(10));
    assert!(status.success(), "clean shutdown exits 0, got {status}");
}

/// kill -9: no chance to finish anything.
pub fn kill9(mut r: Running) {
    let _ = r.child.kill();
    let _ = r.child.wait();
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn post(url: &str, body: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/orders"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), location, r.json().await.unwrap())
}

pub async fn get(url: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{url}{path}")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls the read model until `ready` holds, failing after `within`. Returns how long it took.
pub async fn await_read_model(
    model: &read_model::ReadModel,
    within: Duration,
    ready: impl Fn(&read_model::Snapshot) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let snap = model.snapshot().await.expect("read model readable");
        if ready(&snap) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "read model did not catch up within {within:?}: {snap:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Submits `sql` to the running system's `/queries` and waits (bounded) for it to end; returns its id and state.
pub async fn adhoc(query_url: &str, sql: &str, notify: bool) -> (String, Value) {
    let client = reqwest::Client::new();
    let r =
        client.post(format!("{query_url}/queries")).json(&json!({"sql": sql, "notify": notify})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = r.json::<Value>().await.unwrap()["queryId"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/queries/{id}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(query_url, &location).await;
        assert_eq!(status, 200, "{body}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&body["state"].as_str().unwrap_or_default()) {
            return (id, body);
        }
        assert!(Instant::now() < deadline, "query {id} did not end within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
