//! What the write model did to one order: the record the projector consumes, whether it came from DynamoDB
//! Streams or from the embedded store's change log.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::OrderId;
use crate::order::Order;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    /// The name DynamoDB Streams uses (`eventName`), which the embedded change log uses too.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Modify => "MODIFY",
            ChangeKind::Remove => "REMOVE",
        }
    }

    pub fn parse(raw: &str) -> Option<ChangeKind> {
        match raw {
            "INSERT" => Some(ChangeKind::Insert),
            "MODIFY" => Some(ChangeKind::Modify),
            "REMOVE" => Some(ChangeKind::Remove),
            _ => None,
        }
    }
}

/// A sequence number: decimal digits, compared as numbers. DynamoDB Streams sequence numbers are up to 40 digits,
/// beyond `u128`, so they are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sequence(String);

impl Sequence {
    pub fn parse(raw: &str) -> Option<Sequence> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = raw.trim_start_matches('0');
        Some(Sequence(if trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<u64> for Sequence {
    fn from(n: u64) -> Sequence {
        Sequence(n.to_string())
    }
}

impl TryFrom<String> for Sequence {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Sequence::parse(&raw).ok_or_else(|| format!("not a sequence number: {raw:?}"))
    }
}

impl From<Sequence> for String {
    fn from(s: Sequence) -> String {
        s.0
    }
}

impl Ord for Sequence {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Sequence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a change sits in its feed: the feed (`embedded`, or a DynamoDB stream shard) and its sequence there.
/// Positions are ordered within one source only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub source: String,
    pub sequence: Sequence,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.source, self.sequence.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0} change must carry {1}")]
    MissingImage(&'static str, &'static str),
    #[error("{0} change must not carry {1}")]
    UnexpectedImage(&'static str, &'static str),
    #[error("images name different orders ({0} and {1})")]
    MixedOrders(OrderId, OrderId),
}

/// One change to one order, with its images before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChange {
    kind: ChangeKind,
    order_id: OrderId,
    before: Option<Order>,
    after: Option<Order>,
    position: Position,
    changed_at: DateTime<Utc>,
}

impl OrderChange {
    /// Builds a change, checking that its images fit its kind: INSERT has only an after image, REMOVE only a
    /// before image, MODIFY both, and all images are of the same order.
    pub fn new(
        kind: ChangeKind,
        before: Option<Order>,
        after: Option<Order>,
        position: Position,
        changed_at: DateTime<Utc>,
    ) -> Result<OrderChange, ChangeError> {
        let name = kind.as_str();
        match (kind, &before, &after) {
            (ChangeKind::Insert, Some(_), _) | (ChangeKind::Modify | ChangeKind::Remove, None, _) => {
                return Err(if kind == ChangeKind::Insert {
                    ChangeError::UnexpectedImage(name, "an old image")
                } else {
                    ChangeError::MissingImage(name, "an old image")
                });
            }
            (ChangeKind::Remove, _, Some(_)) => return Err(ChangeError::UnexpectedImage(name, "a new image")),
            (ChangeKind::Insert | ChangeKind::Modify, _, None) => {
                return Err(ChangeError::MissingImage(name, "a new image"));
            }
            _ => {}
        }
        let order_id = match (&before, &after) {
            (Some(b), Some(a)) if b.order_id != a.order_id => {
                return Err(ChangeError::MixedOrders(b.order_id.clone(), a.order_id.clone()));
            }
            (Some(o), _) | (None, Some(o)) => o.order_id.clone(),
            (None, None) => unreachable!("checked above"),
        };
        Ok(OrderChange { kind, order_id, before, after, position, changed_at })
    }

    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    pub fn order_id(&self) -> &OrderId {
        &self.order_id
    }

    pub fn before(&self) -> Option<&Order> {
        self.before.as_ref()
    }

    pub fn after(&self) -> Option<&Order> {
        self.after.as_ref()
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn changed_at(&self) -> DateTime<Utc> {
        self.changed_at
    }

    /// The version this change brought the order to (for a REMOVE: the version that was erased).
    pub fn version(&self) -> crate::Version {
        self.after.as_ref().or(self.before.as_ref()).map(|o| o.version).expect("a change always has an image")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ItemId, Lines, OrderDraft, OrderLine, Quantity};

    fn order(id: &str) -> Order {
        OrderDraft {
            order_id: OrderId::parse(id).unwrap(),
            lines: Lines::new(vec![OrderLine {
                itemid: ItemId::parse("a").unwrap(),
                quantity: Quantity::new(1).unwrap(),
                unit_price: None,
            }])
            .unwrap(),
            order_date: None,
        }
        .into_order(Utc::now())
    }

    fn pos(n: u64) -> Position {
        Position { source: "embedded".into(), sequence: n.into() }
    }

    #[test]
    fn images_must_fit_the_kind() {
        let now = Utc::now();
        assert!(OrderChange::new(ChangeKind::Insert, None, Some(order("a")), pos(1), now).is_ok());
        assert!(OrderChange::new(ChangeKind::Insert, Some(order("a")), Some(order("a")), pos(1), now).is_err());
        assert!(OrderChange::new(ChangeKind::Modify, None, Some(order("a")), pos(1), now).is_err());
        assert!(OrderChange::new(ChangeKind::Modify, Some(order("a")), Some(order("b")), pos(1), now).is_err());
        assert!(OrderChange::new(ChangeKind::Remove, Some(order("a")), None, pos(1), now).is_ok());
        assert!(OrderChange::new(ChangeKind::Remove, Some(order("a")), Some(order("a")), pos(1), now).is_err());
    }

    #[test]
    fn sequences_compare_as_numbers_beyond_u128() {
        let s = |x: &str| Sequence::parse(x).unwrap();
        assert!(s("9") < s("10"));
        assert!(s("0010") == s("10"));
        assert!(s("1100000000017454423009") < s("1200000000000000000000"));
        assert!(s(&"9".repeat(40)) > s(&"1".repeat(39)));
        assert!(Sequence::parse("12a").is_none());
        assert!(Sequence::parse("").is_none());
    }
}
