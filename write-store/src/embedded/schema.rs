//! The embedded store's file: its tables, and a connection set up for them (WAL, every commit on disk).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::classify;
use crate::StoreError;

const SCHEMA_VERSION: i64 = 1;

/// The store's tables (also used by the benchmark's raw-insert ceiling).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    create_hash TEXT NOT NULL,
    image       TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS order_changes (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('INSERT', 'MODIFY', 'REMOVE')),
    old_image  TEXT,
    new_image  TEXT,
    changed_at TEXT NOT NULL
);
";

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How long a statement waits for a lock held by another connection before the store reports itself busy.
    pub busy_timeout: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { busy_timeout: Duration::from_secs(5) }
    }
}

pub(super) fn connect(path: &Path, options: &EmbeddedOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(classify)?;
    conn.busy_timeout(options.busy_timeout).map_err(classify)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("could not switch {} to WAL (got {mode})", path.display())));
    }
    // FULL: a commit is on disk when it returns. Group commit pays the fsync once per batch.
    conn.pragma_update(None, "synchronous", "FULL").map_err(classify)?;
    Ok(conn)
}

pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(classify)?;
    match version {
        0 => {
            conn.execute_batch(SCHEMA).map_err(classify)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(classify)
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(StoreError::Internal(format!(
            "the embedded store has schema version {other}; this build knows {SCHEMA_VERSION} (written by a newer release?)"
        ))),
    }
}
