//! Test support shared by every crate's projection tests: a seeded random generator, random order histories made
//! with the real command rules, and deliveries of them with duplicates, retried batch prefixes and replays.
//! Compiled only for tests and for crates that enable the `testkit` feature.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::change::{ChangeKind, OrderChange, Position, Sequence};
use crate::command::{CreateDecision, Decision, OrderCommand, decide_create};
use crate::id::{ItemId, OrderId};
use crate::order::{Lines, Order, OrderDraft, OrderLine, Quantity, UnitPrice};

/// SplitMix64: small, seedable, good enough to shuffle test cases; a failing seed reproduces exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_add(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A UTC time from RFC 3339 text (tests only: panics on bad input).
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time").with_timezone(&Utc)
}

/// The order a create body becomes when accepted at `now` (tests only: panics on an invalid body).
pub fn order(json: &str, now: &str) -> Order {
    crate::parse_create(json.as_bytes(), at(now)).expect("a valid create body").into_order(at(now))
}

/// A change at position `seq` of `source`.
pub fn change(kind: ChangeKind, before: Option<&Order>, after: Option<&Order>, source: &str, seq: u64) -> OrderChange {
    let position = Position { source: source.to_owned(), sequence: Sequence::from(seq) };
    OrderChange::new(kind, before.cloned(), after.cloned(), position, at("2026-11-21T10:00:00Z")).expect("consistent")
}

/// A sequence of accepted commands on a few orders, the changes they produced (as a store's feed would carry
/// them, positions increasing) and the write model's final state.
pub struct History {
    pub changes: Vec<OrderChange>,
    pub final_state: BTreeMap<OrderId, Order>,
}

const ITEMS: [&str; 6] = ["z3333", "z4444", "a-1", "b.2", "c:3", "d_4"];

fn lines(rng: &mut Rng) -> Lines {
    let count = 1 + rng.below(3) as usize;
    let start = rng.below(ITEMS.len() as u64) as usize;
    let lines = (0..count)
        .map(|i| OrderLine {
            itemid: ItemId::parse(ITEMS[(start + i) % ITEMS.len()]).expect("fixed ids are valid"),
            quantity: Quantity::new(1 + rng.below(50) as u32).expect("in range"),
            unit_price: rng
                .chance(60)
                .then(|| UnitPrice::new(Decimal::new(rng.below(100_000) as i64, 2)).expect("two places, positive")),
        })
        .collect();
    Lines::new(lines).expect("distinct items, 1-3 lines")
}

impl History {
    /// `orders` order ids and `steps` attempted commands; order dates span Nov 2021 – Feb 2023 (a year boundary).
    pub fn random(rng: &mut Rng, orders: usize, steps: usize) -> History {
        let mut now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date");
        let first_day = Utc.with_ymd_and_hms(2021, 11, 1, 0, 0, 0).single().expect("valid date");
        let mut state: BTreeMap<OrderId, (Order, crate::Fingerprint)> = BTreeMap::new();
        let mut changes = Vec::new();
        let mut push = |kind, before: Option<&Order>, after: Option<&Order>, at: DateTime<Utc>| {
            let position = Position { source: "test".into(), sequence: Sequence::from(changes.len() as u64 + 1) };
            changes.push(OrderChange::new(kind, before.cloned(), after.cloned(), position, at).expect("consistent"));
        };
        for _ in 0..steps {
            now += Duration::seconds(1 + rng.below(3_600) as i64);
            let id = OrderId::parse(&format!("o{}", rng.below(orders as u64))).expect("valid id");
            match state.get(&id).cloned() {
                None => {
                    let draft = OrderDraft {
                        order_id: id.clone(),
                        lines: lines(rng),
                        order_date: Some(first_day + Duration::hours(rng.below(480 * 24) as i64)),
                    };
                    let fp = draft.fingerprint();
                    if let Ok(CreateDecision::Create(order)) = decide_create(draft, None, now) {
                        push(ChangeKind::Insert, None, Some(&order), now);
                        state.insert(id, (order, fp));
                    }
                }
                Some((current, fp)) => {
                    let command = match rng.below(10) {
                        0..=4 => OrderCommand::Amend { lines: lines(rng), expected: current.version },
                        5..=7 => OrderCommand::Cancel { expected: None },
                        _ => OrderCommand::Delete { expected: None },
                    };
                    match command.decide(Some(&current), &id, now) {
                        Ok(Decision::Replace(next)) => {
                            push(ChangeKind::Modify, Some(&current), Some(&next), now);
                            state.insert(id, (next, fp));
                        }
                        Ok(Decision::Remove) => {
                            push(ChangeKind::Remove, Some(&current), None, now);
                            state.remove(&id);
                        }
                        Ok(Decision::Unchanged) | Err(_) => {}
                    }
                }
            }
        }
        History { changes, final_state: state.into_iter().map(|(k, (o, _))| (k, o)).collect() }
    }

    pub fn final_orders(&self) -> impl Iterator<Item = &Order> {
        self.final_state.values()
    }

    /// The changes as an at-least-once feed might deliver them, in batches: every batch may first be delivered
    /// partly (a prefix, then a failure and a retry of the whole batch), records may be duplicated, and at the end
    /// an arbitrary earlier stretch is replayed. Order within one batch attempt is kept, as a shard keeps it.
    pub fn delivery(&self, rng: &mut Rng) -> Vec<OrderChange> {
        self.batches(rng).into_iter().flatten().collect()
    }

    /// The same delivery, grouped into the batches a consumer would receive.
    pub fn batches(&self, rng: &mut Rng) -> Vec<Vec<OrderChange>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.changes.len() {
            let size = 1 + rng.below(8) as usize;
            let batch = &self.changes[i..(i + size).min(self.changes.len())];
            if rng.chance(30) {
                out.push(batch[..rng.below(batch.len() as u64) as usize + 1].to_vec());
            }
            let mut attempt = Vec::new();
            for c in batch {
                attempt.push(c.clone());
                if rng.chance(10) {
                    attempt.push(c.clone());
                }
            }
            out.push(attempt);
            i += size;
        }
        if !self.changes.is_empty() && rng.chance(50) {
            let from = rng.below(self.changes.len() as u64) as usize;
            let to = from + rng.below((self.changes.len() - from) as u64) as usize + 1;
            out.push(self.changes[from..to].to_vec());
        }
        out
    }
}
