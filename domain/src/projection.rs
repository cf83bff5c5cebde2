//! The projection arithmetic: what one change does to the projected state of its order, and what that does to the
//! report aggregates. Every read-model backend applies exactly these results, so they agree by construction.
//!
//! Deltas are computed from what is already **projected**, never from the stream's old image, so re-delivering
//! any prefix of history is harmless: a change that is not newer than the projected state is a no-op.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;

use crate::change::{ChangeKind, OrderChange};
use crate::id::{ItemId, OrderId};
use crate::order::{Order, OrderStatus, Version};

/// Which of two states of one order id is newer. An id can be reused after a delete (the new order starts again
/// at version 1), so incarnations are ordered by creation time first, then versions within one incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub created_at: DateTime<Utc>,
    pub version: Version,
}

impl Revision {
    pub fn of(order: &Order) -> Revision {
        Revision { created_at: order.created_at, version: order.version }
    }
}

/// A UTC calendar month, `YYYY-MM`: what the monthly report groups by, stored so no SQL dialect formats dates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaleMonth(String);

impl SaleMonth {
    pub fn of(at: DateTime<Utc>) -> SaleMonth {
        SaleMonth(format!("{:04}-{:02}", at.year(), at.month()))
    }

    /// `YYYY-MM`, as stored.
    pub fn parse(raw: &str) -> Option<SaleMonth> {
        let (y, m) = raw.split_once('-')?;
        let ok = y.len() == 4
            && m.len() == 2
            && y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
            && (1..=12).contains(&m.parse::<u32>().ok()?);
        ok.then(|| SaleMonth(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SaleMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the read model holds for one order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projected {
    /// A created or cancelled order with its lines.
    Live(Order),
    /// The order was erased; kept so that a late, older change cannot bring it back.
    Removed { order_id: OrderId, revision: Revision },
}

impl Projected {
    pub fn revision(&self) -> Revision {
        match self {
            Projected::Live(o) => Revision::of(o),
            Projected::Removed { revision, .. } => *revision,
        }
    }

    pub fn order_id(&self) -> &OrderId {
        match self {
            Projected::Live(o) => &o.order_id,
            Projected::Removed { order_id, .. } => order_id,
        }
    }

    /// Ordering of states of one id: by revision, and a removal after the live state it removed (a REMOVE carries
    /// the version it erased, so it ties with that state on revision alone).
    pub fn rank(&self) -> (Revision, bool) {
        (self.revision(), matches!(self, Projected::Removed { .. }))
    }

    /// The order if it counts in the reports (created, not cancelled or removed).
    pub fn counting(&self) -> Option<&Order> {
        match self {
            Projected::Live(o) if o.status == OrderStatus::Created => Some(o),
            _ => None,
        }
    }
}

/// The state after `change`, or `None` when the change is not newer than what is projected (a duplicate, a
/// replay, or a late delivery), in which case nothing may be written.
pub fn next_state(current: Option<&Projected>, change: &OrderChange) -> Option<Projected> {
    let incoming = match change.kind() {
        ChangeKind::Insert | ChangeKind::Modify => Projected::Live(change.after()?.clone()),
        ChangeKind::Remove => {
            let before = change.before()?;
            Projected::Removed { order_id: before.order_id.clone(), revision: Revision::of(before) }
        }
    };
    match current {
        Some(c) if c.rank() >= incoming.rank() => None,
        _ => Some(incoming),
    }
}

/// Changes to one item's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemDelta {
    pub quantity: i64,
    /// Quantity × unit price over lines whose price is known.
    pub revenue: Decimal,
    /// The quantity on those lines: the units `revenue` covers.
    pub priced_quantity: i64,
    pub orders: i64,
    /// The latest order date among added contributions (the stored value becomes the greater of the two).
    pub latest_added: Option<DateTime<Utc>>,
    /// A contribution was taken away, so the stored last order date must be recomputed from the lines.
    pub recheck_last_date: bool,
}

/// The aggregate changes of a set of state transitions, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deltas {
    pub items: BTreeMap<ItemId, ItemDelta>,
    pub months: BTreeMap<(ItemId, SaleMonth), i64>,
}

impl Deltas {
    fn contribute(&mut self, order: &Order, sign: i64) {
        let month = SaleMonth::of(order.order_date);
        for line in order.items.as_slice() {
            let qty = i64::from(line.quantity.get());
            let d = self.items.entry(line.itemid.clone()).or_default();
            d.quantity += sign * qty;
            if let Some(p) = line.unit_price {
                d.revenue += Decimal::from(sign * qty) * p.get();
                d.priced_quantity += sign * qty;
            }
            d.orders += sign;
            if sign > 0 {
                d.latest_added = d.latest_added.max(Some(order.order_date));
            } else {
                d.recheck_last_date = true;
            }
            *self.months.entry((line.itemid.clone(), month.clone())).or_default() += sign * qty;
        }
    }

    /// Adds the effect of the order going from `before` to `after`.
    pub fn record(&mut self, before: Option<&Projected>, after: Option<&Projected>) {
        if let Some(o) = before.and_then(Projected::counting) {
            self.contribute(o, -1);
        }
        if let Some(o) = after.and_then(Projected::counting) {
            self.contribute(o, 1);
        }
    }

    /// Drops entries that net to nothing (an amend that kept a line as it was).
    pub fn compact(&mut self) {
        self.months.retain(|_, q| *q != 0);
        self.items.retain(|_, d| {
            d.quantity != 0
                || !d.revenue.is_zero()
                || d.priced_quantity != 0
                || d.orders != 0
                || d.latest_added.is_some()
                || d.recheck_last_date
        });
    }
}

/// The report aggregates, computed from scratch: the reference every incremental projection must equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub items: BTreeMap<ItemId, ItemTotals>,
    pub months: BTreeMap<(ItemId, SaleMonth), i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemTotals {
    pub quantity: i64,
    /// Over lines whose price is known, and `priced_quantity` is their quantity: revenue is unknown, not zero,
    /// where that is 0.
    pub revenue: Decimal,
    pub priced_quantity: i64,
    pub orders: i64,
    pub last_order_date: Option<DateTime<Utc>>,
}

impl Totals {
    /// GROUP BY over the given orders, as a report would compute it without aggregates.
    pub fn recompute<'a>(orders: impl IntoIterator<Item = &'a Order>) -> Totals {
        let mut t = Totals::default();
        for o in orders.into_iter().filter(|o| o.status == OrderStatus::Created) {
            let month = SaleMonth::of(o.order_date);
            for line in o.items.as_slice() {
                let qty = i64::from(line.quantity.get());
                let e = t.items.entry(line.itemid.clone()).or_insert(ItemTotals {
                    quantity: 0,
                    revenue: Decimal::ZERO,
                    priced_quantity: 0,
                    orders: 0,
                    last_order_date: None,
                });
                e.quantity += qty;
                if let Some(p) = line.unit_price {
                    e.revenue += Decimal::from(qty) * p.get();
                    e.priced_quantity += qty;
                }
                e.orders += 1;
                e.last_order_date = e.last_order_date.max(Some(o.order_date));
                *t.months.entry((line.itemid.clone(), month.clone())).or_default() += qty;
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChangeKind;
    use crate::testkit::{History, Rng, at, order};
    use std::collections::BTreeSet;

    fn change(kind: ChangeKind, before: Option<&Order>, after: Option<&Order>, seq: u64) -> OrderChange {
        crate::testkit::change(kind, before, after, "t", seq)
    }

    #[test]
    fn months_are_utc() {
        assert_eq!(SaleMonth::of(at("2022-10-31T23:30:00-02:00")).as_str(), "2022-11");
        assert_eq!(SaleMonth::of(at("2022-12-31T23:59:59.999Z")).as_str(), "2022-12");
        assert_eq!(SaleMonth::parse("2022-12"), Some(SaleMonth::of(at("2022-12-01T00:00:00Z"))));
        assert_eq!(SaleMonth::parse("2022-13"), None);
        assert_eq!(SaleMonth::parse("22-12"), None);
    }

    #[test]
    fn given_a_projected_version_when_the_same_or_older_arrives_then_nothing_happens() {
        let v1 = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":1}]}"#, "2026-01-01T00:00:00Z");
        let mut v2 = v1.clone();
        v2.version = v1.version.next();
        let insert = change(ChangeKind::Insert, None, Some(&v1), 1);
        let modify = change(ChangeKind::Modify, Some(&v1), Some(&v2), 2);
        let s1 = next_state(None, &insert).unwrap();
        let s2 = next_state(Some(&s1), &modify).unwrap();
        assert_eq!(next_state(Some(&s2), &insert), None, "late INSERT");
        assert_eq!(next_state(Some(&s2), &modify), None, "duplicate MODIFY");
    }

    #[test]
    fn given_a_removed_order_when_an_older_change_arrives_late_then_it_stays_removed_but_a_new_incarnation_lives() {
        let v1 = order(r#"{"orderId":"a","items":[{"itemid":"x","quantity":1}]}"#, "2026-01-01T00:00:00Z");
        let live = next_state(None, &change(ChangeKind::Insert, None, Some(&v1), 1)).unwrap();
        let removed = next_state(Some(&live), &change(ChangeKind::Remove, Some(&v1), None, 2)).unwrap();
        assert!(matches!(removed, Projected::Removed { .. }), "a REMOVE of the projected version applies");
        assert_eq!(next_state(Some(&removed), &change(ChangeKind::Insert, None, Some(&v1), 1)), None);
        let reborn = order(r#"{"orderId":"a","items":[{"itemid":"y","quantity":2}]}"#, "2026-01-02T00:00:00Z");
        assert_eq!(
            next_state(Some(&removed), &change(ChangeKind::Insert, None, Some(&reborn), 3)),
            Some(Projected::Live(reborn))
        );
    }

    #[test]
    fn given_an_amend_then_deltas_move_quantity_revenue_and_months_and_cancel_takes_everything_back() {
        let v1 = order(
            r#"{"orderId":"a","orderDate":"2022-10-13","items":[{"itemid":"x","quantity":2,"unitPrice":"1.25"},{"itemid":"y","quantity":1}]}"#,
            "2026-01-01T00:00:00Z",
        );
        let mut v2 = order(
            r#"{"orderId":"a","orderDate":"2022-10-13","items":[{"itemid":"x","quantity":5,"unitPrice":"1.25"}]}"#,
            "2026-01-01T00:00:00Z",
        );
        v2.version = v1.version.next();
        let mut d = Deltas::default();
        d.record(Some(&Projected::Live(v1.clone())), Some(&Projected::Live(v2.clone())));
        d.compact();
        let x = &d.items[&ItemId::parse("x").unwrap()];
        assert_eq!((x.quantity, x.revenue, x.priced_quantity, x.orders), (3, Decimal::new(375, 2), 3, 0));
        let y = &d.items[&ItemId::parse("y").unwrap()];
        assert_eq!((y.quantity, y.priced_quantity, y.orders, y.recheck_last_date), (-1, 0, -1, true));
        assert_eq!(d.months[&(ItemId::parse("x").unwrap(), SaleMonth("2022-10".into()))], 3);

        let mut cancelled = v2.clone();
        cancelled.status = OrderStatus::Cancelled;
        let mut d = Deltas::default();
        d.record(Some(&Projected::Live(v2)), Some(&Projected::Live(cancelled)));
        let x = &d.items[&ItemId::parse("x").unwrap()];
        assert_eq!((x.quantity, x.revenue, x.priced_quantity, x.orders), (-5, Decimal::new(-625, 2), -5, -1));
    }

    /// The in-memory projection: what every backend must reproduce.
    #[derive(Default)]
    struct Memory {
        states: BTreeMap<OrderId, Projected>,
        items: BTreeMap<ItemId, (i64, Decimal, i64, i64)>,
        months: BTreeMap<(ItemId, SaleMonth), i64>,
    }

    impl Memory {
        fn apply(&mut self, change: &OrderChange) {
            let current = self.states.get(change.order_id());
            let Some(next) = next_state(current, change) else { return };
            let mut d = Deltas::default();
            d.record(current, Some(&next));
            for (item, delta) in d.items {
                let e = self.items.entry(item).or_insert((0, Decimal::ZERO, 0, 0));
                e.0 += delta.quantity;
                e.1 += delta.revenue;
                e.2 += delta.priced_quantity;
                e.3 += delta.orders;
            }
            for (k, q) in d.months {
                *self.months.entry(k).or_default() += q;
            }
            self.states.insert(change.order_id().clone(), next);
        }

        fn assert_equals(&self, expected: &Totals, seed: u64) {
            let items: BTreeMap<_, _> = self
                .items
                .iter()
                .filter(|(_, v)| v.0 != 0 || v.3 != 0)
                .map(|(k, v)| (k.clone(), (v.0, v.1.normalize(), v.2, v.3)))
                .collect();
            let want: BTreeMap<_, _> = expected
                .items
                .iter()
                .map(|(k, v)| (k.clone(), (v.quantity, v.revenue.normalize(), v.priced_quantity, v.orders)))
                .collect();
            assert_eq!(items, want, "seed {seed}");
            let months: BTreeMap<_, _> =
                self.months.iter().filter(|(_, q)| **q != 0).map(|(k, q)| (k.clone(), *q)).collect();
            assert_eq!(months, expected.months, "seed {seed}");
        }
    }

    #[test]
    fn given_random_histories_delivered_with_duplicates_retries_and_replays_then_totals_equal_a_recomputation() {
        for seed in 0..2_000 {
            let mut rng = Rng::new(seed);
            let history = History::random(&mut rng, 4, 30);
            let mut memory = Memory::default();
            for change in history.delivery(&mut rng) {
                memory.apply(&change);
            }
            memory.assert_equals(&Totals::recompute(history.final_orders()), seed);
            let live: BTreeSet<&OrderId> = memory
                .states
                .values()
                .filter_map(|p| match p {
                    Projected::Live(o) => Some(&o.order_id),
                    _ => None,
                })
                .collect();
            let expected: BTreeSet<&OrderId> = history.final_orders().map(|o| &o.order_id).collect();
            assert_eq!(live, expected, "seed {seed}: the same orders are live");
        }
    }
}
