//! A record of a feed as a consumer receives it: the change, or why it does not decode.

use chrono::{DateTime, Utc};
use domain::{OrderChange, Position};

/// A record as decoded from its feed: the change, or why it could not be read.
pub type Decoded = Result<OrderChange, Undecodable>;

/// A record that does not decode into a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub reason: String,
    /// Where it sits in its feed, when the record says (one that does not cannot be set aside).
    pub position: Option<Position>,
    /// When it was written, when the record says.
    pub written_at: Option<DateTime<Utc>>,
    /// The record as delivered, kept with its dead letter.
    pub record: String,
}

impl Undecodable {
    /// A record with nothing known of it but why it did not decode.
    pub fn reason(reason: impl Into<String>) -> Undecodable {
        Undecodable { reason: reason.into(), position: None, written_at: None, record: String::new() }
    }
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "undecodable record: {}", self.reason)
    }
}
