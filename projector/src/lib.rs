//! The projector: turns the write model's changes (DynamoDB Streams, or the embedded change log) into the
//! relational read model on PostgreSQL, MySQL or SQLite.
//!
//! Built so far: the read model and its batch writer (`read_model`), exact and idempotent on every backend; the
//! batch rule every input shares and the embedded tail (`feed`), which the local runner drives; the Lambda
//! handler for DynamoDB Streams events (`stream`); the DynamoDB Streams poller (`poller`).

pub mod db;
pub mod dialect;
pub mod feed;
pub mod poller;
pub mod rds;
pub mod read_model;
pub mod sockets;
pub mod stream;

pub use dialect::Dialect;
pub use read_model::{
    Applied, Backlog, DbRole, DeadLetter, DeadLetters, LoginAuth, ProjectionError, ReadModel, Snapshot,
};
