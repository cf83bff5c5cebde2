//! What a feed holds beyond what is applied from it: the embedded change log itself in the local runner, what
//! stream consumers recorded when a batch did not go through otherwise.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::change::Sequence;
use read_model::{PositionRow, ReadModel};

/// What a feed holds beyond what is applied from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedBacklog {
    pub source: String,
    /// The newest change the feed holds (as far as known), and when it was made.
    pub head: Option<(Sequence, DateTime<Utc>)>,
    /// Changes not yet applied: exact, or (`at_least`) a lower bound.
    pub behind: u64,
    pub at_least: bool,
    /// When the oldest change not yet applied was made; `None` when none waits.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// Where the query side learns what the feed holds.
#[async_trait]
pub trait FeedWatch: Send + Sync {
    /// The backlog of each source the watch knows, given the applied positions.
    async fn backlogs(&self, applied: &[PositionRow]) -> Result<Vec<FeedBacklog>, String>;
}

/// What stream consumers recorded in the read model when a batch did not go through (the Lambda projector, the
/// poller): a source whose position has passed the recorded head is not behind.
pub struct RecordedBacklogs(pub Arc<ReadModel>);

#[async_trait]
impl FeedWatch for RecordedBacklogs {
    async fn backlogs(&self, applied: &[PositionRow]) -> Result<Vec<FeedBacklog>, String> {
        let recorded = self.0.backlogs().await.map_err(|e| e.to_string())?;
        Ok(recorded
            .into_iter()
            .filter(|b| applied.iter().find(|p| p.source == b.source).is_none_or(|p| p.sequence < b.head_sequence))
            .map(|b| FeedBacklog {
                source: b.source,
                head: Some((b.head_sequence, b.head_changed_at)),
                behind: b.pending,
                at_least: true,
                oldest_pending: Some(b.pending_since),
            })
            .collect())
    }
}
