//! What a consumer of the feed implements once: the read model (`projector`) and the lake (`lake`).

use async_trait::async_trait;
use domain::change::Sequence;

use crate::Decoded;

/// What a sink did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Records that took effect (a change older than what the sink holds takes effect as nothing).
    pub applied: usize,
    /// Records the sink set aside because it can never take them (see the sink's own rule).
    pub set_aside: usize,
    /// Index of the first record that did not take effect, and why; `None` when all of them did. Everything
    /// before it took effect or was set aside; nothing at or after it did.
    pub failure: Option<(usize, String)>,
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// What this sink is called in logs.
    fn name(&self) -> &'static str;

    /// The last position applied from `source` (the next batch starts after it).
    async fn position(&self, source: &str) -> Result<Option<Sequence>, String>;

    /// Takes `records` in feed order, with their positions, so that a batch delivered again changes nothing.
    async fn consume(&self, records: Vec<Decoded>) -> Consumed;

    /// After a batch from a stream did not wholly go through: what is known to wait (from `failed_at` on), so that
    /// lag can be reported against the feed. Nothing by default.
    async fn record_backlog(&self, _records: &[Decoded], _failed_at: usize) {}
}
