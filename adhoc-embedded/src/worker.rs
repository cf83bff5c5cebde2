//! Each embedded query runs in a process of its own, so that nothing it does can reach the APIs: a scalar
//! function that computes for minutes cannot be interrupted inside DataFusion, a value it builds is not counted by
//! DataFusion's memory pool, and a plan deep enough to overflow a stack aborts its process. A process can be
//! killed at its time limit or on cancel whatever it is doing, held to a memory limit by the kernel, run at a
//! lower priority than the APIs, and when it dies, only its query fails.
//!
//! The parent writes a [`Job`] as JSON to the worker's stdin; the worker writes the result file and one
//! [`Outcome`] as JSON to its stdout. [`run_job`] is the parent's side, [`main`] the worker's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to start a worker: a program and its arguments (the local runner runs itself as `orders adhoc-worker`).
/// Workers inherit this process's environment (`AWS_*` for a lake in S3), plus `envs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl WorkerCommand {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> WorkerCommand {
        WorkerCommand { program: program.into(), args: args.iter().map(|a| (*a).to_owned()).collect(), envs: vec![] }
    }

    pub fn env(mut self, name: &str, value: &str) -> WorkerCommand {
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// This process's own executable with `args`.
    pub fn this_executable(args: &[&str]) -> std::io::Result<WorkerCommand> {
        Ok(WorkerCommand::new(std::env::current_exe()?, args))
    }
}

/// One query for a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub sql: String,
    /// The lake, as `lake::Lake::open` takes it.
    pub lake_url: String,
    /// Where the result goes (Arrow IPC), written as `<result>.partial` first.
    pub result: PathBuf,
    /// Bytes the query may hold: DataFusion's pool, and with [`OVERHEAD`] the kernel's limit on the process.
    pub memory_limit: usize,
    /// The process that started the worker: when it is gone, so is the worker.
    pub parent: u32,
}

/// What a worker reports on its stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    Succeeded { bytes_scanned: u64 },
    Failed { reason: String },
}

/// Threads of a worker's runtime. Each has [`STACK`]: DataFusion plans and evaluates by recursion, and the guard's
/// limits are set so that a debug build plans them with room to spare on this much.
const THREADS: usize = 2;
const BLOCKING_THREADS: usize = 4;
const STACK: usize = 16 << 20;

/// What a worker holds beyond its query's memory: the executable's data, allocator slack and its threads'
/// stacks, which the kernel counts whole toward the data limit.
pub const OVERHEAD: usize = (256 << 20) + (THREADS + BLOCKING_THREADS + 2) * STACK;

/// Lower than the APIs: a worker computing flat out leaves them the processor whenever they want it.
const NICENESS: i32 = 10;

/// How the parent saw a worker end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Succeeded { bytes_scanned: u64 },
    Failed(String),
}

/// Runs `job` in a worker started by `command`, killing it at `timeout`. Dropping the returned future (a
/// cancelled query, a runner shutting down) kills the worker too.
pub async fn run_job(command: &WorkerCommand, job: &Job, timeout: Duration) -> Ended {
    let partial = partial_path(&job.result);
    let ended = run_worker(command, job, timeout).await;
    if !matches!(ended, Ended::Succeeded { .. }) {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    ended
}

pub(crate) fn partial_path(result: &Path) -> PathBuf {
    let mut name = result.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The most of a worker's stderr kept for the failure's reason: its last lines say why it died.
const STDERR_KEPT: usize = 16 * 1024;

async fn run_worker(command: &WorkerCommand, job: &Job, timeout: Duration) -> Ended {
    let input = match serde_json::to_vec(job) {
        Ok(bytes) => bytes,
        Err(e) => return Ended::Failed(format!("the query could not be handed to the engine: {e}")),
    };
    let spawned = tokio::process::Command::new(&command.program)
        .args(&command.args)
        .envs(command.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(program = %command.program.display(), error = %e, "cannot start a query worker");
            return Ended::Failed(format!("the engine could not start: {e}"));
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ended::Failed("the engine could not start: no pipes".into());
    };
    let io = async {
        let write = async {
            // A worker that dies before reading its job closes the pipe; its exit says why.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let mut out = Vec::new();
        let read_out = async {
            let _ = (&mut stdout).take(1 << 20).read_to_end(&mut out).await;
        };
        let mut err = Vec::new();
        let read_err = async {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                err.extend_from_slice(&chunk[..n]);
                if err.len() > 2 * STDERR_KEPT {
                    err.drain(..err.len() - STDERR_KEPT);
                }
            }
        };
        tokio::join!(write, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(timeout, io).await {
        Ok(done) => done,
        Err(_) => {
            // `io` is dropped: it held only pipes. The child is killed here, not merely left to `kill_on_drop`,
            // and reaped, so that its memory is back before the next query starts.
            let _ = child.kill().await;
            return Ended::Failed(format!("the query reached its time limit of {} s", timeout.as_secs()));
        }
    };
    let stderr_text = String::from_utf8_lossy(&err[err.len().saturating_sub(STDERR_KEPT)..]).into_owned();
    let status = match status {
        Ok(status) => status,
        Err(e) => return Ended::Failed(format!("the engine's process could not be watched: {e}")),
    };
    match serde_json::from_slice::<Outcome>(&out) {
        Ok(Outcome::Succeeded { bytes_scanned }) if status.success() => Ended::Succeeded { bytes_scanned },
        Ok(Outcome::Failed { reason }) => Ended::Failed(reason),
        _ => {
            tracing::warn!(%status, stderr = %stderr_text.trim_end(), "a query worker died");
            Ended::Failed(why_it_died(status, &stderr_text, job.memory_limit))
        }
    }
}

/// The reason a worker that reported nothing died, in the caller's terms.
fn why_it_died(status: std::process::ExitStatus, stderr: &str, memory_limit: usize) -> String {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return format!("the query needed more memory than its limit of {} MB (QUERY_MEMORY_MB)", memory_limit >> 20);
    }
    if stderr.contains("has overflowed its stack") {
        return "the query is too deep for the engine (it ran out of stack); simplify it".into();
    }
    if let Some(line) = stderr.lines().find_map(|l| l.split_once("panicked at ").map(|_| l)) {
        let message = stderr.split(line).nth(1).and_then(|rest| rest.lines().nth(1)).unwrap_or("").trim();
        return format!("the engine failed on this query: {message}");
    }
    match status.signal() {
        Some(signal) => format!("the engine stopped while running the query (signal {signal})"),
        None => format!("the engine stopped while running the query ({status})"),
    }
}

/// The worker's side: reads a [`Job`] from stdin, runs it, writes the [`Outcome`] to stdout.
pub fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return report(Outcome::Failed { reason: format!("the engine could not read its query: {e}") });
    }
    let job: Job = match serde_json::from_slice(&input) {
        Ok(job) => job,
        Err(e) => return report(Outcome::Failed { reason: format!("the engine could not read its query: {e}") }),
    };
    follow_parent(job.parent);
    if let Err(e) = limit_self(job.memory_limit) {
        return report(Outcome::Failed { reason: format!("the engine could not limit itself: {e}") });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_stack_size(STACK)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => return report(Outcome::Failed { reason: format!("the engine could not start: {e}") }),
    };
    let outcome = runtime.block_on(async move {
        // On a worker thread of its own (with `STACK`), not this one.
        match tokio::spawn(async move { execute_job(&job).await }).await {
            Ok(Ok(bytes_scanned)) => Outcome::Succeeded { bytes_scanned },
            Ok(Err(reason)) => Outcome::Failed { reason },
            Err(e) => Outcome::Failed { reason: format!("the engine failed on this query: {e}") },
        }
    });
    let code = report(outcome);
    // Blocking tasks (file reads) may still be winding down; nothing more is wanted of them.
    runtime.shutdown_background();
    code
}

fn report(outcome: Outcome) -> ExitCode {
    let failed = matches!(outcome, Outcome::Failed { .. });
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &outcome);
    let _ = out.flush();
    if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

/// Ends this process as soon as its parent is gone (killed with -9, say): a worker nobody waits for must not
/// compute on. (`PR_SET_PDEATHSIG` would follow the parent's *thread*, which an async runtime may retire.)
fn follow_parent(parent: u32) {
    let watch = move || {
        loop {
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    if parent == std::os::unix::process::parent_id() {
        let _ = std::thread::Builder::new().name("follow-parent".into()).stack_size(64 << 10).spawn(watch);
    } else {
        std::process::exit(3);
    }
}

/// The kernel's limit on this process's data (heap, anonymous maps, thread stacks: what a query can grow), and a
/// lower priority.
fn limit_self(memory_limit: usize) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setpriority_process, setrlimit};
    let bytes = u64::try_from(memory_limit.saturating_add(OVERHEAD)).unwrap_or(u64::MAX);
    setrlimit(Resource::Data, Rlimit { current: Some(bytes), maximum: Some(bytes) })?;
    setpriority_process(None, NICENESS)?;
    Ok(())
}

/// Runs the job's query and writes its result; the bytes it read from the lake.
async fn execute_job(job: &Job) -> Result<u64, String> {
    let lake = lake::Lake::open(&job.lake_url).map_err(|e| format!("the lake cannot be opened: {e}"))?;
    let read = Arc::new(AtomicU64::new(0));
    crate::execute(&lake, job.memory_limit, &job.sql, &job.result, read.clone()).await?;
    Ok(read.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn given_how_a_worker_died_then_the_reason_names_it_in_the_callers_terms() {
        let killed = std::process::ExitStatus::from_raw(6);
        let overflow = "\nthread 'tokio-runtime-worker' has overflowed its stack\nfatal runtime error: stack overflow";
        assert!(why_it_died(killed, overflow, 1 << 30).contains("too deep"));
        let oom = "memory allocation of 2147483648 bytes failed\n";
        assert_eq!(
            why_it_died(killed, oom, 1 << 30),
            "the query needed more memory than its limit of 1024 MB (QUERY_MEMORY_MB)"
        );
        let panic = "\nthread 'x' (12) panicked at src/a.rs:1:2:\nindex out of bounds\nnote: run with RUST_BACKTRACE";
        assert_eq!(
            why_it_died(std::process::ExitStatus::from_raw(101 << 8), panic, 1),
            "the engine failed on this query: index out of bounds"
        );
        assert_eq!(
            why_it_died(std::process::ExitStatus::from_raw(9), "", 1),
            "the engine stopped while running the query (signal 9)"
        );
    }

    #[test]
    fn a_result_is_written_beside_itself_first() {
        assert_eq!(partial_path(Path::new("/r/q.arrow")), PathBuf::from("/r/q.arrow.partial"));
    }
}
