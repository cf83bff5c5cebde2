//! The read model as a sink of the change feed, and its batch rule (`project`), the one every input uses (Lambda,
//! the embedded tail, the DynamoDB Streams poller): apply the records in order, as one transaction; when that fails
//! for a reason that retrying cannot mend (a value the backend refuses, a record that does not decode), find the
//! record that causes it by halving the batch, set it aside as a dead letter with its reason, and go on with the
//! rest. A failure retrying can mend (the database unreachable, a deadlock) names the first record that did not
//! take effect, so that the caller retries from there. Nothing is ever skipped silently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use change_feed::{Consumed, Decoded, Sink, Undecodable};
use chrono::{DateTime, Utc};
use domain::change::Sequence;
use domain::{OrderChange, Position};

use read_model::{Applied, Backlog, DeadLetter, ProjectionError, ReadModel};

/// The read model as the feed's sink.
#[derive(Clone)]
pub struct ReadModelSink(pub Arc<ReadModel>);

#[async_trait]
impl Sink for ReadModelSink {
    fn name(&self) -> &'static str {
        "read model"
    }

    async fn position(&self, source: &str) -> Result<Option<Sequence>, String> {
        Ok(self.0.position(source).await.map_err(|e| e.to_string())?.map(|(sequence, _)| sequence))
    }

    async fn consume(&self, records: Vec<Decoded>) -> Consumed {
        let outcome = project(&self.0, records).await;
        Consumed { applied: outcome.applied.applied, set_aside: outcome.set_aside, failure: outcome.failure }
    }

    async fn record_backlog(&self, records: &[Decoded], failed_at: usize) {
        record_backlog(&self.0, records, failed_at).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub applied: Applied,
    /// Records set aside as dead letters.
    pub set_aside: usize,
    /// Index of the first record that did not take effect, and why; `None` when all of them did (applied or set
    /// aside).
    pub failure: Option<(usize, String)>,
}

/// Whether retrying `e` later could make it go through. A value a backend refuses, a constraint broken, data the
/// projection cannot explain: no. A connection lost, a time limit, a deadlock, a pool exhausted, and anything
/// not known to be permanent (a bug in a statement must stall the feed loudly, not discard it): yes.
pub fn is_permanent(e: &ProjectionError) -> bool {
    match e {
        ProjectionError::Corrupt(_) => true,
        ProjectionError::Database(sqlx::Error::Database(db)) => {
            use sqlx::error::ErrorKind;
            if matches!(
                db.kind(),
                ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
            ) {
                return true;
            }
            let code = db.code().unwrap_or_default();
            // SQLSTATE (PostgreSQL, MySQL): class 22 data exception, class 23 integrity constraint violation.
            // SQLite's primary result codes: 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH, 25 RANGE.
            code.starts_with("22")
                || code.starts_with("23")
                || code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 18 | 19 | 20 | 25) && code.len() <= 4)
        }
        ProjectionError::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => true,
        _ => false,
    }
}

/// Applies `records` in order: runs of decodable changes in one transaction each, each undecodable record (and
/// each change a permanent failure isolates) set aside. Stops at the first failure that retrying may mend.
pub async fn project(model: &ReadModel, records: Vec<Decoded>) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut run: Vec<OrderChange> = Vec::new();
    let mut run_start = 0;
    let mut records = records.into_iter().enumerate();
    loop {
        let next = records.next();
        let flush = match &next {
            None | Some((_, Err(_))) => !run.is_empty(),
            Some((_, Ok(_))) => false,
        };
        if flush {
            match apply_isolating(model, &run).await {
                Ok((applied, set_aside)) => {
                    outcome.applied.received += applied.received;
                    outcome.applied.applied += applied.applied;
                    outcome.set_aside += set_aside;
                }
                Err((index, reason)) => {
                    outcome.failure = Some((run_start + index, reason));
                    return outcome;
                }
            }
            run.clear();
        }
        match next {
            None => break,
            Some((i, Ok(change))) => {
                if run.is_empty() {
                    run_start = i;
                }
                run.push(change);
            }
            Some((i, Err(undecodable))) => match set_aside_undecodable(model, &undecodable).await {
                Ok(()) => outcome.set_aside += 1,
                Err(reason) => {
                    outcome.failure = Some((i, reason));
                    return outcome;
                }
            },
        }
    }
    outcome
}

type Isolated<'a> = Pin<Box<dyn Future<Output = Result<(Applied, usize), (usize, String)>> + Send + 'a>>;

/// `changes` applied, halving on a permanent failure down to the one change that causes it, which is set aside.
/// `Ok((applied, set aside))`, or the index of the first change that did not take effect and why.
fn apply_isolating<'a>(model: &'a ReadModel, changes: &'a [OrderChange]) -> Isolated<'a> {
    Box::pin(async move {
        if changes.is_empty() {
            return Ok((Applied::default(), 0));
        }
        let error = match model.apply(changes).await {
            Ok(applied) => return Ok((applied, 0)),
            Err(e) if !is_permanent(&e) => return Err((0, e.to_string())),
            Err(e) => e,
        };
        if let [change] = changes {
            let letter = DeadLetter {
                source: change.position().source.clone(),
                sequence: change.position().sequence.clone(),
                order_id: Some(change.order_id().as_str().to_owned()),
                reason: error.to_string(),
                record: serde_json::to_string(change).unwrap_or_default(),
                changed_at: change.changed_at(),
                failed_at: Utc::now(),
            };
            model.set_aside(&letter).await.map_err(|e| (0, format!("{error}; and it could not be set aside: {e}")))?;
            return Ok((Applied { received: 1, applied: 0 }, 1));
        }
        let (left, right) = changes.split_at(changes.len() / 2);
        let (a, x) = apply_isolating(model, left).await?;
        let (b, y) = apply_isolating(model, right).await.map_err(|(i, reason)| (left.len() + i, reason))?;
        Ok((Applied { received: a.received + b.received, applied: a.applied + b.applied }, x + y))
    })
}

async fn set_aside_undecodable(model: &ReadModel, record: &Undecodable) -> Result<(), String> {
    let Some(position) = &record.position else {
        return Err(format!("{record}; it names no sequence number, so it cannot be set aside"));
    };
    let now = Utc::now();
    let letter = DeadLetter {
        source: position.source.clone(),
        sequence: position.sequence.clone(),
        order_id: None,
        reason: record.to_string(),
        record: record.record.clone(),
        changed_at: record.written_at.unwrap_or(now),
        failed_at: now,
    };
    model.set_aside(&letter).await.map_err(|e| format!("{record}; and it could not be set aside: {e}"))
}

/// After a batch from a stream did not (wholly) go through: records what is known to wait on its source, so that
/// the query side reports honest lag. Best effort: when the database cannot take this either, it cannot serve
/// reports, which says as much.
pub async fn record_backlog(model: &ReadModel, records: &[Decoded], failed_at: usize) {
    let position_and_time = |r: &Decoded| match r {
        Ok(c) => Some((c.position().clone(), c.changed_at())),
        Err(u) => u.position.clone().zip(u.written_at),
    };
    let waiting: Vec<(Position, DateTime<Utc>)> =
        records[failed_at.min(records.len())..].iter().filter_map(position_and_time).collect();
    let (Some((first, since)), Some((head, head_at))) = (waiting.first(), waiting.last()) else { return };
    let backlog = Backlog {
        source: first.source.clone(),
        head_sequence: head.sequence.clone(),
        head_changed_at: *head_at,
        pending_since: *since,
        pending: waiting.len() as u64,
        recorded_at: Utc::now(),
    };
    if let Err(error) = model.record_backlog(&backlog).await {
        tracing::warn!(%error, source = %backlog.source, "cannot record the backlog");
    }
}
