-- Changes the projection could not apply, set aside with the reason; and what a stream consumer knows is waiting
-- when a batch does not go through (see migrations/postgres for the commentary).
CREATE TABLE projection_dead_letters (
    source    TEXT NOT NULL,
    sequence  TEXT NOT NULL,
    orderid   TEXT,
    reason    TEXT NOT NULL,
    record     TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    failed_at  TEXT NOT NULL,
    PRIMARY KEY (source, sequence)
) WITHOUT ROWID;

CREATE TABLE projection_backlog (
    source          TEXT NOT NULL PRIMARY KEY,
    head_sequence   TEXT NOT NULL,
    head_changed_at TEXT NOT NULL,
    pending_since   TEXT NOT NULL,
    pending         INTEGER NOT NULL,
    recorded_at     TEXT NOT NULL
) WITHOUT ROWID;
