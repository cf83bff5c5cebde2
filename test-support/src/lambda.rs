//! A local Lambda Runtime API (the `2018-06-01` interface the Lambda service gives a function's process): runs a
//! Lambda binary as a child process, hands it the given events one by one through `invocation/next`, and collects
//! what it posts back (`response`, `error`, or `init/error`). The binary is the one `sam build` ships, run exactly
//! as Lambda runs it, minus the sandbox. Tests only.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::Notify;

/// The sample event `events/<name>` of the workspace, as JSON.
pub fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the function posted for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

impl Outcome {
    /// The response, or a panic naming the error the function reported.
    pub fn response(&self) -> &Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("the function reported an error: {e}"),
        }
    }
}

/// One run of a binary over a list of events.
#[derive(Debug)]
pub struct Run {
    pub outcomes: Vec<Outcome>,
    /// What the function posted to `init/error`, if it could not start.
    pub init_error: Option<Value>,
    /// The function's logs (stdout and stderr).
    pub logs: String,
}

#[derive(Default)]
struct Runtime {
    pending: Mutex<VecDeque<(String, Value)>>,
    outcomes: Mutex<Vec<(String, Outcome)>>,
    init_error: Mutex<Option<Value>>,
    changed: Notify,
}

type Shared = Arc<Runtime>;

async fn next(State(rt): State<Shared>) -> (StatusCode, HeaderMap, String) {
    loop {
        if let Some((id, event)) = rt.pending.lock().unwrap().pop_front() {
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(120);
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:harness".parse().unwrap(),
            );
            headers.insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".parse().unwrap());
            return (StatusCode::OK, headers, event.to_string());
        }
        // No more events: the long poll waits, as Lambda's does, until the process is stopped.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}

async fn response(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.outcomes.lock().unwrap().push((id, Outcome::Response(json(&body))));
    rt.changed.notify_one();
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.outcomes.lock().unwrap().push((id, Outcome::Error(json(&body))));
    rt.changed.notify_one();
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Shared>, body: String) -> StatusCode {
    *rt.init_error.lock().unwrap() = Some(json(&body));
    rt.changed.notify_one();
    StatusCode::ACCEPTED
}

/// Runs `binary` with `env` (and the variables Lambda sets; nothing else from this process but `PATH` and
/// `HOME`), gives it `events` in order, and returns once it has answered all of them, posted an init error,
/// exited, or `timeout` has passed (then the outcomes so far).
pub async fn run(binary: &str, env: &[(&str, String)], events: Vec<Value>, timeout: Duration) -> Run {
    let rt: Shared = Arc::default();
    let ids: Vec<String> = (0..events.len()).map(|i| format!("request-{i}")).collect();
    rt.pending.lock().unwrap().extend(ids.iter().cloned().zip(events));
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "harness")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/harness")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "harness")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "harness")
        .env("AWS_SECRET_ACCESS_KEY", "harness")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err))
    });

    let wait = async {
        loop {
            let done = rt.outcomes.lock().unwrap().len() == ids.len() || rt.init_error.lock().unwrap().is_some();
            if done {
                return;
            }
            tokio::select! {
                _ = rt.changed.notified() => {}
                _ = child.wait() => return,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, wait).await;
    let _ = child.kill().await;
    server.abort();
    let logs = logs.await.unwrap_or_default();

    let outcomes = rt.outcomes.lock().unwrap().clone();
    let ordered = ids.iter().filter_map(|id| outcomes.iter().find(|(i, _)| i == id).map(|(_, o)| o.clone())).collect();
    let init_error = rt.init_error.lock().unwrap().clone();
    Run { outcomes: ordered, init_error, logs }
}
