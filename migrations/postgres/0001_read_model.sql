-- Read model: the earlier schema's orders / orderitems (names kept so existing SQL works), tombstones for removed
-- orders, the report aggregates the projector maintains, and one position per change-feed source.
-- orderitems has no foreign key to orders: the projector writes an order and its lines in one transaction and
-- replaces or deletes lines explicitly, and a per-row FK trigger would cost about half of every line insert.

CREATE TABLE orders (
    orderid      VARCHAR(64) PRIMARY KEY,
    orderstatus  VARCHAR(16) NOT NULL CHECK (orderstatus IN ('created', 'cancelled')),
    orderdate    TIMESTAMPTZ NOT NULL,
    sale_month   VARCHAR(7)  NOT NULL CHECK (sale_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    version      BIGINT      NOT NULL CHECK (version >= 1),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    projected_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE orderitems (
    orderid   VARCHAR(64)   NOT NULL,
    itemid    VARCHAR(64)   NOT NULL,
    quantity  INTEGER       NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    unitprice NUMERIC(19, 4) CHECK (unitprice >= 0),
    PRIMARY KEY (orderid, itemid)
);
CREATE INDEX orderitems_itemid ON orderitems (itemid);

CREATE TABLE order_tombstones (
    orderid    VARCHAR(64) PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    version    BIGINT      NOT NULL,
    removed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE item_sales (
    itemid        VARCHAR(64)    PRIMARY KEY,
    totalordered  BIGINT         NOT NULL,
    totalrevenue  NUMERIC(38, 4) NOT NULL,
    ordercount    BIGINT         NOT NULL,
    lastorderdate TIMESTAMPTZ
);

CREATE TABLE item_monthly_sales (
    itemid         VARCHAR(64) NOT NULL,
    sale_month     VARCHAR(7)  NOT NULL,
    monthlyordered BIGINT      NOT NULL,
    PRIMARY KEY (itemid, sale_month)
);

CREATE TABLE projection_positions (
    source          VARCHAR(256) PRIMARY KEY,
    sequence        VARCHAR(64)  NOT NULL,
    last_changed_at TIMESTAMPTZ  NOT NULL,
    applied_at      TIMESTAMPTZ  NOT NULL
);
