//! The embedded write store: SQLite in the data directory. Every command writes the order and appends its change
//! (kind, before/after images, a strictly increasing position) to `order_changes` in the same transaction: the
//! local equivalent of a DynamoDB table with its stream, durable across restarts.
//!
//! One writer thread owns the write connection and commits concurrent commands together (group commit): each
//! command runs in its own savepoint, the batch is made durable by one fsync, and no caller hears success before
//! that commit returns. Reads use separate connections (WAL), so they never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::change::Sequence;
use domain::{
    ChangeKind, CommandError, CreateDecision, Decision, Fingerprint, Order, OrderChange, OrderCommand, OrderDraft,
    OrderId, Position, decide_create,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::{Created, Executed, OrderStore, StoreError};

mod schema;
mod snapshot;

pub use schema::{EmbeddedOptions, SCHEMA};
use schema::{connect, migrate};
pub use snapshot::{SnapshotHead, SnapshotStream};

/// The change feed's source name in `Position`s.
pub const SOURCE: &str = "embedded";
const MAX_BATCH: usize = 512;

enum Job {
    Create {
        draft: OrderDraft,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<Created, StoreError>>,
    },
    Execute {
        id: OrderId,
        command: OrderCommand,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<Executed, StoreError>>,
    },
}

pub struct EmbeddedStore {
    committed: Arc<tokio::sync::Notify>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
}

struct Readers {
    path: PathBuf,
    options: EmbeddedOptions,
    idle: Mutex<Vec<Connection>>,
}

fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLite integers are i64; versions and positions never come near its limit.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_json(order: &Order) -> Result<String, StoreError> {
    serde_json::to_string(order).map_err(|e| StoreError::Internal(format!("cannot encode order: {e}")))
}

fn from_json(raw: &str) -> Result<Order, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Internal(format!("stored order does not decode: {e}")))
}

fn load(conn: &Connection, id: &OrderId) -> Result<Option<(Order, Fingerprint)>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT image, create_hash FROM orders WHERE order_id = ?1")
        .and_then(|mut st| st.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(classify)?;
    row.map(|(image, hash)| Ok((from_json(&image)?, Fingerprint::from_stored(hash)))).transpose()
}

fn append_change(
    conn: &Connection,
    id: &OrderId,
    kind: ChangeKind,
    before: Option<&Order>,
    after: Option<&Order>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let old = before.map(to_json).transpose()?;
    let new = after.map(to_json).transpose()?;
    conn.prepare_cached(
        "INSERT INTO order_changes (order_id, kind, old_image, new_image, changed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| st.execute(params![id.as_str(), kind.as_str(), old, new, domain::order::format_time(&now)]))
    .map_err(classify)?;
    Ok(())
}

fn apply_create(conn: &Connection, draft: OrderDraft, now: DateTime<Utc>) -> Result<Created, StoreError> {
    let fingerprint = draft.fingerprint();
    let existing = load(conn, &draft.order_id)?;
    match decide_create(draft, existing.as_ref().map(|(o, f)| (o, f)), now)? {
        CreateDecision::Replay(order) => Ok(Created { order, replayed: true }),
        CreateDecision::Create(order) => {
            let image = to_json(&order)?;
            conn.prepare_cached("INSERT INTO orders (order_id, version, create_hash, image) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut st| {
                    st.execute(params![order.order_id.as_str(), int(order.version.get()), fingerprint.as_str(), image])
                })
                .map_err(classify)?;
            append_change(conn, &order.order_id, ChangeKind::Insert, None, Some(&order), now)?;
            Ok(Created { order, replayed: false })
        }
    }
}

fn apply_command(
    conn: &Connection,
    id: &OrderId,
    command: &OrderCommand,
    now: DateTime<Utc>,
) -> Result<Executed, StoreError> {
    let current = load(conn, id)?.map(|(o, _)| o);
    let decision = command.decide(current.as_ref(), id, now)?;
    let Some(current) = current else {
        return Err(CommandError::NotFound(id.clone()).into());
    };
    match decision {
        Decision::Unchanged => Ok(Executed::Unchanged(current)),
        Decision::Replace(next) => {
            let image = to_json(&next)?;
            conn.prepare_cached("UPDATE orders SET version = ?2, image = ?3 WHERE order_id = ?1")
                .and_then(|mut st| st.execute(params![id.as_str(), int(next.version.get()), image]))
                .map_err(classify)?;
            append_change(conn, id, ChangeKind::Modify, Some(&current), Some(&next), now)?;
            Ok(Executed::Replaced(next))
        }
        Decision::Remove => {
            conn.prepare_cached("DELETE FROM orders WHERE order_id = ?1")
                .and_then(|mut st| st.execute([id.as_str()]))
                .map_err(classify)?;
            append_change(conn, id, ChangeKind::Remove, Some(&current), None, now)?;
            Ok(Executed::Removed(current))
        }
    }
}

/// Runs one job inside its own savepoint so that a failing job leaves the rest of the batch intact.
fn run_job<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let sp = tx.savepoint().map_err(classify)?;
    let result = f(&sp);
    if result.is_ok() {
        sp.commit().map_err(classify)?;
    } // else: dropping the savepoint rolls it back.
    result
}

enum Outcome {
    Create(oneshot::Sender<Result<Created, StoreError>>, Result<Created, StoreError>),
    Execute(oneshot::Sender<Result<Executed, StoreError>>, Result<Executed, StoreError>),
}

/// Commits one batch; true when something may have been appended to the change log.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>) -> bool {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(error = %reason, "embedded store: cannot begin a write transaction");
            // Busy, locked or failing storage alike: nothing was written, the caller may retry.
            let err = || StoreError::Unavailable(format!("cannot begin a write: {reason}"));
            for job in batch {
                match job {
                    Job::Create { reply, .. } => drop(reply.send(Err(err()))),
                    Job::Execute { reply, .. } => drop(reply.send(Err(err()))),
                }
            }
            return false;
        }
    };
    for job in batch {
        outcomes.push(match job {
            Job::Create { draft, now, reply } => {
                Outcome::Create(reply, run_job(&mut tx, |c| apply_create(c, draft, now)))
            }
            Job::Execute { id, command, now, reply } => {
                Outcome::Execute(reply, run_job(&mut tx, |c| apply_command(c, &id, &command, now)))
            }
        });
    }
    // Success is only reported once the commit is durable; if it fails, every write in the batch is undone.
    let commit_error = tx.commit().err().map(|e| {
        tracing::error!(error = %e, "embedded store: commit failed; the batch was rolled back");
        e
    });
    let committed = commit_error.is_none();
    for outcome in outcomes {
        let fail = |e: &rusqlite::Error| StoreError::Unavailable(format!("commit failed: {e}"));
        match outcome {
            Outcome::Create(reply, r) => drop(reply.send(match (&commit_error, r) {
                (Some(e), Ok(_)) => Err(fail(e)),
                (_, r) => r,
            })),
            Outcome::Execute(reply, r) => drop(reply.send(match (&commit_error, r) {
                (Some(e), Ok(_)) => Err(fail(e)),
                (_, r) => r,
            })),
        }
    }
    committed
}

fn writer_loop(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, committed: &tokio::sync::Notify) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if commit_batch(&mut conn, batch) {
            committed.notify_waiters();
        }
    }
}

/// What the change log holds beyond a position (`EmbeddedStore::backlog_after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The newest change's position and when it was made; `None` for an empty log.
    pub head: Option<(u64, DateTime<Utc>)>,
    /// Changes after the position.
    pub behind: u64,
    /// When the first change after the position was made.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        let conn = connect(path, &options)?;
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let committed = Arc::new(tokio::sync::Notify::new());
        let notify = committed.clone();
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &notify))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            committed,
            jobs: Some(tx),
            writer: Some(writer),
            readers: Arc::new(Readers { path: path.to_owned(), options, idle: Mutex::new(Vec::new()) }),
        })
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(|| StoreError::Unavailable("store is closing".into()))?;
        jobs.send(job(reply)).await.map_err(|_| StoreError::Unavailable("store writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Internal("store writer dropped the command".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.idle.lock().map_err(|_| StoreError::Internal("reader pool poisoned".into()))?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = connect(&readers.path, &readers.options)?;
                    c.pragma_update(None, "query_only", true).map_err(classify)?;
                    c
                }
            };
            let result = f(&conn);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    /// The change log beyond position `after`: its newest change (position and time), how many changes come after
    /// `after`, and when the first of them was made.
    pub async fn backlog_after(&self, after: u64) -> Result<Backlog, StoreError> {
        self.read(move |conn| {
            let time = |raw: Option<String>| -> Result<Option<DateTime<Utc>>, StoreError> {
                raw.map(|at| {
                    domain::order::parse_time(&at).ok_or_else(|| StoreError::Internal(format!("bad change time {at}")))
                })
                .transpose()
            };
            let head: Option<(i64, String)> = conn
                .query_row("SELECT position, changed_at FROM order_changes ORDER BY position DESC LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(classify)?;
            let behind: i64 = conn
                .query_row("SELECT COUNT(*) FROM order_changes WHERE position > ?1", params![int(after)], |r| r.get(0))
                .map_err(classify)?;
            let oldest: Option<String> = conn
                .query_row(
                    "SELECT changed_at FROM order_changes WHERE position > ?1 ORDER BY position LIMIT 1",
                    params![int(after)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(classify)?;
            Ok(Backlog {
                head: match head {
                    Some((position, at)) => {
                        Some((u64::try_from(position).unwrap_or(0), time(Some(at))?.unwrap_or_default()))
                    }
                    None => None,
                },
                behind: u64::try_from(behind).unwrap_or(0),
                oldest_pending: time(oldest)?,
            })
        })
        .await
    }

    /// Woken after every commit, so a tail of the change log need not poll hard.
    pub fn committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// The change log after `after` (exclusive), oldest first, at most `limit` changes: the embedded change feed.
    pub async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<OrderChange>, StoreError> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT position, kind, old_image, new_image, changed_at FROM order_changes
                     WHERE position > ?1 ORDER BY position LIMIT ?2",
                )
                .map_err(classify)?;
            let rows = st
                .query_map(params![int(after), limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(classify)?;
            let mut out = Vec::new();
            for row in rows {
                let (position, kind, old, new, at) = row.map_err(classify)?;
                let kind = ChangeKind::parse(&kind)
                    .ok_or_else(|| StoreError::Internal(format!("unknown change kind {kind}")))?;
                let at = domain::order::parse_time(&at)
                    .ok_or_else(|| StoreError::Internal(format!("bad change time {at}")))?;
                let change = OrderChange::new(
                    kind,
                    old.as_deref().map(from_json).transpose()?,
                    new.as_deref().map(from_json).transpose()?,
                    Position { source: SOURCE.into(), sequence: Sequence::from(u64::try_from(position).unwrap_or(0)) },
                    at,
                )
                .map_err(|e| StoreError::Internal(format!("change {position} is inconsistent: {e}")))?;
                out.push(change);
            }
            Ok(out)
        })
        .await
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds and exit; joining makes shutdown wait for it.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl OrderStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    async fn create(&self, draft: OrderDraft, now: DateTime<Utc>) -> Result<Created, StoreError> {
        self.submit(|reply| Job::Create { draft, now, reply }).await
    }

    async fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let id = id.clone();
        self.read(move |conn| Ok(load(conn, &id)?.map(|(o, _)| o))).await
    }

    async fn execute(&self, id: &OrderId, command: OrderCommand, now: DateTime<Utc>) -> Result<Executed, StoreError> {
        let id = id.clone();
        self.submit(|reply| Job::Execute { id, command, now, reply }).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM order_changes WHERE position < 0", [], |_| Ok(())).map_err(classify)
        })
        .await
    }
}
