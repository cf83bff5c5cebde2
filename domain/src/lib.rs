//! The order domain: what an order is, what makes one valid, what each command does to it and what the write
//! model reports having done. Pure: no I/O, no AWS, no SQL; every adapter builds on these types.

pub mod change;
pub mod command;
pub mod id;
pub mod order;
pub mod projection;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod validation;

pub use change::{ChangeKind, OrderChange, Position};
pub use command::{CommandError, CreateDecision, Decision, OrderCommand, decide_create};
pub use id::{IdError, ItemId, OrderId};
pub use order::{Fingerprint, Lines, Order, OrderDraft, OrderLine, OrderStatus, Quantity, UnitPrice, Version};
pub use validation::{InputError, Violation, Violations, parse_amendment, parse_create};
