//! The one loop that follows the embedded store's change log into a sink: resumes after the sink's stored position,
//! wakes on every commit (and at least every `idle_poll`), lets a batch fill for `linger` after a wake-up (the lake
//! writes fewer, larger files that way), retries a batch that did not go through with back-off (never skipping it),
//! and on stop takes what is left in the log before it returns.

use std::sync::Arc;
use std::time::Duration;

use domain::OrderChange;
use tokio::sync::{Notify, watch};
use write_store::embedded::EmbeddedStore;

use crate::Sink;

/// The embedded store's change log as a source.
#[derive(Clone)]
pub struct EmbeddedLog(pub Arc<EmbeddedStore>);

impl EmbeddedLog {
    /// The source name its changes carry.
    pub const SOURCE: &'static str = write_store::embedded::SOURCE;

    async fn after(&self, position: u64, limit: u32) -> Result<Vec<OrderChange>, String> {
        self.0.changes_after(position, limit).await.map_err(|e| e.to_string())
    }

    fn committed(&self) -> Arc<Notify> {
        self.0.committed()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailSettings {
    /// The most changes handed to the sink at once.
    pub batch: u32,
    /// How long to let a batch fill after a commit wakes the tail (0: at once).
    pub linger: Duration,
    /// How long to wait for a commit before looking anyway.
    pub idle_poll: Duration,
}

impl TailSettings {
    /// At once, 1,000 at a time: the read model.
    pub const PROMPT: TailSettings =
        TailSettings { batch: 1_000, linger: Duration::ZERO, idle_poll: Duration::from_secs(1) };

    /// Every `every` (or at once when `batch` wait), never one write per change: the lake.
    pub fn every(every: Duration, batch: u32) -> TailSettings {
        TailSettings { batch, linger: every, idle_poll: every }
    }
}

/// Follows `log` into `sink` until `stop` turns true, then takes what is left and returns.
pub async fn tail<S: Sink + ?Sized>(
    sink: &S,
    log: &EmbeddedLog,
    settings: TailSettings,
    mut stop: watch::Receiver<bool>,
) {
    let source = EmbeddedLog::SOURCE;
    let committed = log.committed();
    let mut backoff = Duration::from_millis(100);
    let mut after: Option<u64> = None;
    loop {
        let stopping = *stop.borrow();
        let woken = committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let step: Result<usize, String> = async {
            let from = match after {
                Some(p) => p,
                None => match sink.position(source).await? {
                    Some(seq) => seq.as_str().parse::<u64>().map_err(|e| format!("position {seq:?}: {e}"))?,
                    None => 0,
                },
            };
            after = Some(from);
            let batch = log.after(from, settings.batch).await?;
            let Some(last) = batch.last() else { return Ok(0) };
            let next = last.position().sequence.as_str().parse::<u64>().map_err(|e| e.to_string())?;
            let n = batch.len();
            let consumed = sink.consume(batch.into_iter().map(Ok).collect()).await;
            tracing::debug!(
                sink = sink.name(),
                from,
                applied = consumed.applied,
                set_aside = consumed.set_aside,
                "tailed"
            );
            if let Some((index, reason)) = consumed.failure {
                // What went through is kept; the rest is fetched again from the stored position.
                after = None;
                return Err(format!("change {} of the batch after {from}: {reason}", index + 1));
            }
            after = Some(next);
            Ok(n)
        }
        .await;
        match step {
            Ok(n) if n == settings.batch as usize => backoff = Duration::from_millis(100),
            Ok(_) if stopping => return,
            Ok(_) => {
                backoff = Duration::from_millis(100);
                tokio::select! {
                    () = &mut woken => {
                        if !settings.linger.is_zero() {
                            tokio::select! {
                                () = tokio::time::sleep(settings.linger) => {}
                                _ = stop.changed() => {}
                            }
                        }
                    }
                    () = tokio::time::sleep(settings.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) if stopping => {
                tracing::error!(sink = sink.name(), %error, position = ?after, "failed while stopping; the changes stay in the log for the next start");
                return;
            }
            Err(error) => {
                tracing::warn!(sink = sink.name(), %error, position = ?after, retry_in = ?backoff, "failed; retrying the same changes");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
