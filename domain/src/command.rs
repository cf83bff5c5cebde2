//! What each command does to an order, decided against the order's current state. Stores run these decisions
//! atomically (a transaction, or a conditional write on the version that was read), so the rules live only here.

use chrono::{DateTime, Utc};

use crate::id::OrderId;
use crate::order::{Fingerprint, Lines, Order, OrderDraft, OrderStatus, Version, timestamp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("order {0} does not exist")]
    NotFound(OrderId),
    #[error("order {0} already exists with different content")]
    AlreadyExists(OrderId),
    #[error("order {id} is at version {actual}, not the expected {expected}")]
    VersionConflict { id: OrderId, expected: Version, actual: Version },
    #[error("order {0} is cancelled and can no longer be changed")]
    Cancelled(OrderId),
}

/// What a create does given what the store already holds under that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateDecision {
    /// Nothing there yet: write this order.
    Create(Order),
    /// The same create was accepted before: answer as then, write nothing.
    Replay(Order),
}

pub fn decide_create(
    draft: OrderDraft,
    existing: Option<(&Order, &Fingerprint)>,
    now: DateTime<Utc>,
) -> Result<CreateDecision, CommandError> {
    match existing {
        None => Ok(CreateDecision::Create(draft.into_order(now))),
        Some((order, fingerprint)) if *fingerprint == draft.fingerprint() => Ok(CreateDecision::Replay(order.clone())),
        Some(_) => Err(CommandError::AlreadyExists(draft.order_id)),
    }
}

/// A command on an existing order. `expected` is the version the client read; `None` means "whatever is current"
/// (allowed for cancel and delete, where the outcome does not depend on what the client saw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    Amend { lines: Lines, expected: Version },
    Cancel { expected: Option<Version> },
    Delete { expected: Option<Version> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store this new state of the order (version + 1).
    Replace(Order),
    /// Erase the order.
    Remove,
    /// The order is already as asked (e.g. cancelling a cancelled order): write nothing.
    Unchanged,
}

impl OrderCommand {
    pub fn decide(&self, current: Option<&Order>, id: &OrderId, now: DateTime<Utc>) -> Result<Decision, CommandError> {
        let Some(current) = current else {
            return Err(CommandError::NotFound(id.clone()));
        };
        let check = |expected: Option<Version>| match expected {
            Some(expected) if expected != current.version => {
                Err(CommandError::VersionConflict { id: id.clone(), expected, actual: current.version })
            }
            _ => Ok(()),
        };
        let changed = |f: &dyn Fn(&mut Order)| {
            let mut next = current.clone();
            f(&mut next);
            next.version = current.version.next();
            next.updated_at = timestamp(now).max(current.updated_at);
            Decision::Replace(next)
        };
        match self {
            OrderCommand::Amend { lines, expected } => {
                if current.status == OrderStatus::Cancelled {
                    return Err(CommandError::Cancelled(id.clone()));
                }
                check(Some(*expected))?;
                Ok(changed(&|o| o.items = lines.clone()))
            }
            OrderCommand::Cancel { expected } => {
                if current.status == OrderStatus::Cancelled {
                    // A retried cancel: the order is as asked. A version check still applies so that a client
                    // acting on a stale read learns it.
                    return match expected {
                        Some(v) if *v != current.version && v.next() != current.version => {
                            check(*expected).map(|()| Decision::Unchanged)
                        }
                        _ => Ok(Decision::Unchanged),
                    };
                }
                check(*expected)?;
                Ok(changed(&|o| o.status = OrderStatus::Cancelled))
            }
            OrderCommand::Delete { expected } => {
                check(*expected)?;
                Ok(Decision::Remove)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ItemId;
    use crate::order::{OrderLine, Quantity};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn lines(spec: &[(&str, u32)]) -> Lines {
        Lines::new(
            spec.iter()
                .map(|(i, q)| OrderLine {
                    itemid: ItemId::parse(i).unwrap(),
                    quantity: Quantity::new(*q).unwrap(),
                    unit_price: None,
                })
                .collect(),
        )
        .unwrap()
    }

    fn draft(spec: &[(&str, u32)]) -> OrderDraft {
        OrderDraft { order_id: OrderId::parse("6119").unwrap(), lines: lines(spec), order_date: None }
    }

    fn id() -> OrderId {
        OrderId::parse("6119").unwrap()
    }

    fn created() -> Order {
        draft(&[("z3333", 6)]).into_order(at("2026-01-01T00:00:00Z"))
    }

    fn replace(d: Decision) -> Order {
        match d {
            Decision::Replace(o) => o,
            other => panic!("expected a new state, got {other:?}"),
        }
    }

    #[test]
    fn given_no_order_when_created_then_version_1_dated_now() {
        let now = at("2026-01-01T10:00:00.123456Z");
        let CreateDecision::Create(o) = decide_create(draft(&[("z3333", 6)]), None, now).unwrap() else { panic!() };
        assert_eq!(o.version, Version::FIRST);
        assert_eq!(o.status, OrderStatus::Created);
        assert_eq!(o.order_date, at("2026-01-01T10:00:00.123Z"));
        assert_eq!((o.created_at, o.updated_at), (o.order_date, o.order_date));
    }

    #[test]
    fn given_a_back_filled_date_when_created_then_it_is_kept() {
        let mut d = draft(&[("z3333", 6)]);
        d.order_date = Some(at("2022-10-13T00:00:00Z"));
        let CreateDecision::Create(o) = decide_create(d, None, at("2026-01-01T00:00:00Z")).unwrap() else { panic!() };
        assert_eq!(o.order_date, at("2022-10-13T00:00:00Z"));
        assert_eq!(o.created_at, at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn given_an_existing_order_when_the_same_create_is_retried_then_it_replays() {
        let original = draft(&[("z3333", 6), ("z4444", 3)]);
        let order = original.clone().into_order(at("2026-01-01T00:00:00Z"));
        // Even after an amend, the retried create is recognised by its fingerprint.
        let amended = replace(
            OrderCommand::Amend { lines: lines(&[("z3333", 1)]), expected: Version::FIRST }
                .decide(Some(&order), &id(), at("2026-01-02T00:00:00Z"))
                .unwrap(),
        );
        let retry = draft(&[("z4444", 3), ("z3333", 6)]);
        assert_eq!(
            decide_create(retry, Some((&amended, &original.fingerprint())), at("2026-01-03T00:00:00Z")),
            Ok(CreateDecision::Replay(amended.clone()))
        );
    }

    #[test]
    fn given_an_existing_order_when_a_different_create_arrives_then_conflict() {
        let original = draft(&[("z3333", 6)]);
        let order = original.clone().into_order(at("2026-01-01T00:00:00Z"));
        assert_eq!(
            decide_create(draft(&[("z3333", 7)]), Some((&order, &original.fingerprint())), at("2026-01-01T00:00:00Z")),
            Err(CommandError::AlreadyExists(id()))
        );
    }

    #[test]
    fn given_version_1_when_amended_with_version_1_then_version_2_with_new_lines() {
        let o = replace(
            OrderCommand::Amend { lines: lines(&[("a", 2)]), expected: Version::FIRST }
                .decide(Some(&created()), &id(), at("2026-01-02T00:00:00Z"))
                .unwrap(),
        );
        assert_eq!(o.version.get(), 2);
        assert_eq!(o.items, lines(&[("a", 2)]));
        assert_eq!(o.updated_at, at("2026-01-02T00:00:00Z"));
        assert_eq!(o.created_at, created().created_at);
    }

    #[test]
    fn given_version_2_when_amended_with_version_1_then_conflict_naming_both() {
        let mut current = created();
        current.version = Version::new(2).unwrap();
        let err = OrderCommand::Amend { lines: lines(&[("a", 2)]), expected: Version::FIRST }
            .decide(Some(&current), &id(), at("2026-01-02T00:00:00Z"))
            .unwrap_err();
        assert_eq!(err, CommandError::VersionConflict { id: id(), expected: Version::FIRST, actual: current.version });
    }

    #[test]
    fn given_no_order_when_any_command_then_not_found() {
        for cmd in [
            OrderCommand::Amend { lines: lines(&[("a", 2)]), expected: Version::FIRST },
            OrderCommand::Cancel { expected: None },
            OrderCommand::Delete { expected: None },
        ] {
            assert_eq!(cmd.decide(None, &id(), at("2026-01-02T00:00:00Z")), Err(CommandError::NotFound(id())));
        }
    }

    #[test]
    fn given_a_created_order_when_cancelled_then_status_cancelled_and_version_up() {
        let o = replace(
            OrderCommand::Cancel { expected: None }
                .decide(Some(&created()), &id(), at("2026-01-02T00:00:00Z"))
                .unwrap(),
        );
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(o.version.get(), 2);
        assert_eq!(o.items, created().items);
    }

    #[test]
    fn given_a_cancelled_order_then_amend_conflicts_and_cancel_is_a_no_op() {
        let cancelled = replace(
            OrderCommand::Cancel { expected: None }
                .decide(Some(&created()), &id(), at("2026-01-02T00:00:00Z"))
                .unwrap(),
        );
        let v2 = cancelled.version;
        assert_eq!(
            OrderCommand::Amend { lines: lines(&[("a", 2)]), expected: v2 }.decide(
                Some(&cancelled),
                &id(),
                at("2026-01-03T00:00:00Z")
            ),
            Err(CommandError::Cancelled(id()))
        );
        for expected in [None, Some(Version::FIRST), Some(v2)] {
            assert_eq!(
                OrderCommand::Cancel { expected }.decide(Some(&cancelled), &id(), at("2026-01-03T00:00:00Z")),
                Ok(Decision::Unchanged),
                "retried cancel with {expected:?}"
            );
        }
        let mut later = cancelled.clone();
        later.version = Version::new(5).unwrap();
        assert!(matches!(
            OrderCommand::Cancel { expected: Some(Version::FIRST) }.decide(
                Some(&later),
                &id(),
                at("2026-01-03T00:00:00Z")
            ),
            Err(CommandError::VersionConflict { .. })
        ));
    }

    #[test]
    fn given_an_order_when_deleted_with_a_stale_version_then_conflict_else_removed() {
        let mut current = created();
        current.version = Version::new(3).unwrap();
        assert!(matches!(
            OrderCommand::Delete { expected: Some(Version::FIRST) }.decide(
                Some(&current),
                &id(),
                at("2026-01-03T00:00:00Z")
            ),
            Err(CommandError::VersionConflict { .. })
        ));
        assert_eq!(
            OrderCommand::Delete { expected: Some(current.version) }.decide(
                Some(&current),
                &id(),
                at("2026-01-03T00:00:00Z")
            ),
            Ok(Decision::Remove)
        );
        assert_eq!(
            OrderCommand::Delete { expected: None }.decide(Some(&current), &id(), at("2026-01-03T00:00:00Z")),
            Ok(Decision::Remove)
        );
    }

    #[test]
    fn updated_at_never_goes_backwards_even_if_the_clock_does() {
        let o = replace(
            OrderCommand::Cancel { expected: None }
                .decide(Some(&created()), &id(), at("2025-01-01T00:00:00Z"))
                .unwrap(),
        );
        assert_eq!(o.updated_at, created().updated_at);
    }
}
