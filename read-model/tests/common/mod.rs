//! What the read model's test binaries share.
#![allow(dead_code)]

use domain::{ChangeKind, ItemId, Order, OrderChange};

pub fn change(kind: ChangeKind, before: Option<&Order>, after: Option<&Order>, seq: u64) -> OrderChange {
    domain::testkit::change(kind, before, after, "shard-1", seq)
}

pub fn item(s: &str) -> ItemId {
    ItemId::parse(s).unwrap()
}
