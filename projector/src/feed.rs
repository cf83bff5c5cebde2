//! Driving the read model from a feed. `project` is the one batch rule every input uses (Lambda, the embedded
//! tail, the DynamoDB Streams poller): apply the records in order, as one transaction, up to the first record that
//! cannot be decoded, and name the first record that did not take effect. Nothing is ever skipped silently.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::OrderChange;
use tokio::sync::{Notify, watch};

use crate::read_model::{Applied, ReadModel};

/// A record as decoded from its feed: the change, or why it could not be read.
pub type Decoded = Result<OrderChange, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: Applied,
    /// Index of the first record that did not take effect, and why; `None` when all of them did.
    pub failure: Option<(usize, String)>,
}

/// The changes before the first undecodable record, and that record's index and reason (every consumer of a feed
/// takes the same prefix).
pub fn decodable_prefix(records: Vec<Decoded>) -> (Vec<OrderChange>, Option<(usize, String)>) {
    let mut prefix = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        match r {
            Ok(change) => prefix.push(change),
            Err(reason) => return (prefix, Some((i, format!("undecodable record: {reason}")))),
        }
    }
    (prefix, None)
}

/// Applies the decodable prefix of `records` in one transaction. If it fails, nothing was applied and the first
/// record is the failure; otherwise the first undecodable record (if any) is.
pub async fn project(model: &ReadModel, records: Vec<Decoded>) -> BatchOutcome {
    let (prefix, undecodable) = decodable_prefix(records);
    // An empty prefix is applied as a no-op, so a failure here always belongs to the prefix's first record.
    match model.apply(&prefix).await {
        Ok(applied) => BatchOutcome { applied, failure: undecodable },
        Err(e) => BatchOutcome { applied: Applied::default(), failure: Some((0, e.to_string())) },
    }
}

/// Tails the embedded store's change log into the read model until `stop` turns true. Resumes after the stored
/// position; wakes on every commit (`committed`), and at least once a second. A failing batch is retried with
/// back-off, never skipped.
pub async fn tail_embedded<F, Fut>(
    model: Arc<ReadModel>,
    source: &'static str,
    fetch: F,
    committed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<OrderChange>, String>>,
{
    const BATCH: u32 = 1_000;
    let mut backoff = Duration::from_millis(100);
    let mut after: Option<u64> = None;
    while !*stop.borrow() {
        let woken = committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let step: Result<usize, String> = async {
            let from = match after {
                Some(p) => p,
                None => {
                    let stored = model.position(source).await.map_err(|e| e.to_string())?;
                    stored
                        .map(|(seq, _)| seq.as_str().parse::<u64>().map_err(|e| e.to_string()))
                        .transpose()?
                        .unwrap_or(0)
                }
            };
            after = Some(from);
            let batch = fetch(from, BATCH).await?;
            let Some(last) = batch.last() else { return Ok(0) };
            let next = last.position().sequence.as_str().parse::<u64>().map_err(|e| e.to_string())?;
            let applied = model.apply(&batch).await.map_err(|e| e.to_string())?;
            tracing::debug!(from, to = next, received = applied.received, applied = applied.applied, "projected");
            after = Some(next);
            Ok(batch.len())
        }
        .await;
        match step {
            Ok(n) if n == BATCH as usize => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => {
                backoff = Duration::from_millis(100);
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, position = ?after, retry_in = ?backoff, "projection failed; retrying the same changes");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
