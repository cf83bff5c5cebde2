-- Read model (see migrations/postgres for the commentary). SQLite has no exact decimal type, so prices and revenue
-- are TEXT holding exact decimals (the projector does the arithmetic); times are TEXT in one fixed RFC 3339 form
-- (YYYY-MM-DDTHH:MM:SS.sssZ), which sorts as time does.

CREATE TABLE orders (
    orderid      TEXT    NOT NULL PRIMARY KEY,
    orderstatus  TEXT    NOT NULL CHECK (orderstatus IN ('created', 'cancelled')),
    orderdate    TEXT    NOT NULL,
    sale_month   TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    projected_at TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE orderitems (
    orderid   TEXT    NOT NULL,
    itemid    TEXT    NOT NULL,
    quantity  INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    unitprice TEXT,
    PRIMARY KEY (orderid, itemid)
) WITHOUT ROWID;
CREATE INDEX orderitems_itemid ON orderitems (itemid);

CREATE TABLE order_tombstones (
    orderid    TEXT    NOT NULL PRIMARY KEY,
    created_at TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    removed_at TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE item_sales (
    itemid        TEXT    NOT NULL PRIMARY KEY,
    totalordered  INTEGER NOT NULL,
    totalrevenue  TEXT    NOT NULL,
    ordercount    INTEGER NOT NULL,
    lastorderdate TEXT
) WITHOUT ROWID;

CREATE TABLE item_monthly_sales (
    itemid         TEXT    NOT NULL,
    sale_month     TEXT    NOT NULL,
    monthlyordered INTEGER NOT NULL,
    PRIMARY KEY (itemid, sale_month)
) WITHOUT ROWID;

CREATE TABLE projection_positions (
    source          TEXT NOT NULL PRIMARY KEY,
    sequence        TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    applied_at      TEXT NOT NULL
) WITHOUT ROWID;
