//! The write model: its port (`OrderStore`), the DynamoDB adapter and the embedded (SQLite) adapter, each running
//! the domain's decisions atomically (the rules themselves live in `domain::command`), the one codec of the
//! stored image (`codec`), and how a process chooses and opens its store (`settings`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use codec::ImageError;
use domain::{CommandError, Order, OrderCommand, OrderDraft, OrderId};

pub mod codec;
pub mod dynamodb;
pub mod embedded;
pub mod settings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The command was refused by the domain rules (absent, conflict, cancelled). Nothing was written.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store could not be reached or refused for load (throttled, locked, timed out). Retryable; nothing was
    /// written.
    #[error("order store unavailable: {0}")]
    Unavailable(String),
    /// What the store holds does not decode as an order.
    #[error(transparent)]
    Corrupt(#[from] ImageError),
    /// Anything else. Nothing was written, or the write's outcome is unknown; never reported as success.
    #[error("order store failure: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub order: Order,
    /// True when the same create had been accepted before: nothing was written this time.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// The order's new state was written.
    Replaced(Order),
    /// The order was erased; this was its last state.
    Removed(Order),
    /// The order was already as asked; nothing was written.
    Unchanged(Order),
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// A short name for logs and `/health` (`embedded`, `dynamodb`).
    fn kind(&self) -> &'static str;

    async fn create(&self, draft: OrderDraft, now: DateTime<Utc>) -> Result<Created, StoreError>;

    /// A strongly consistent read.
    async fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;

    async fn execute(&self, id: &OrderId, command: OrderCommand, now: DateTime<Utc>) -> Result<Executed, StoreError>;

    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
