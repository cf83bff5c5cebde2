//! The relational read model: `orders` / `orderitems` (the sample's names), tombstones, the report aggregates, the
//! projection's positions, dead letters and backlogs, on PostgreSQL, MySQL or SQLite. `ReadModel` (`model`) applies
//! batches of changes in one transaction each and answers the reports; below it, the pools and transactions
//! (`db`), result rows (`row`), multi-row inserts (`rowset`), MySQL's text statements (`mysql_text`), bound
//! values (`value`), what differs per backend (`dialect`), RDS IAM tokens (`rds`), the sockets' options (`sockets`) and its settings
//! (`settings`).
//! Read by the query side, written by the projector, migrated by the migrator; it knows nothing of where changes
//! come from.

pub mod db;
pub mod dialect;
pub mod model;
pub mod mysql_text;
pub mod rds;
pub mod row;
pub mod rowset;
pub mod settings;
pub mod sockets;
pub mod value;

pub use dialect::Dialect;
pub use model::{
    Applied, Backlog, Cursor, DbRole, DeadLetter, DeadLetters, Epoch, Grouped, ItemPage, ItemQuery, ItemRow, ItemSort,
    LoginAuth, MonthRow, PositionRow, ProjectedVersion, ProjectionError, ReadAt, ReadModel, Rebuild, Rebuilt, Snapshot,
    SnapshotPosition, Target,
};
