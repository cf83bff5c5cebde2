-- Read model (see migrations/postgres for the commentary). Ids are ascii_bin: compared byte for byte, as DynamoDB
-- does, so "A1" and "a1" stay two orders. Times are DATETIME(3) in UTC (the projector's sessions use +00:00).

CREATE TABLE orders (
    orderid      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    orderstatus  VARCHAR(16) NOT NULL CHECK (orderstatus IN ('created', 'cancelled')),
    orderdate    DATETIME(3) NOT NULL,
    sale_month   VARCHAR(7) CHARACTER SET ascii NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    created_at   DATETIME(3) NOT NULL,
    updated_at   DATETIME(3) NOT NULL,
    projected_at DATETIME(3) NOT NULL
) ENGINE = InnoDB;

CREATE TABLE orderitems (
    orderid   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    itemid    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    quantity  INT NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    unitprice DECIMAL(19, 4) CHECK (unitprice >= 0),
    PRIMARY KEY (orderid, itemid),
    KEY orderitems_itemid (itemid)
) ENGINE = InnoDB;

CREATE TABLE order_tombstones (
    orderid    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    created_at DATETIME(3) NOT NULL,
    version    BIGINT NOT NULL,
    removed_at DATETIME(3) NOT NULL
) ENGINE = InnoDB;

CREATE TABLE item_sales (
    itemid        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    totalordered  BIGINT NOT NULL,
    totalrevenue  DECIMAL(38, 4) NOT NULL,
    ordercount    BIGINT NOT NULL,
    lastorderdate DATETIME(3) NULL
) ENGINE = InnoDB;

CREATE TABLE item_monthly_sales (
    itemid         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    sale_month     VARCHAR(7) CHARACTER SET ascii NOT NULL,
    monthlyordered BIGINT NOT NULL,
    PRIMARY KEY (itemid, sale_month)
) ENGINE = InnoDB;

CREATE TABLE projection_positions (
    source          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    sequence        VARCHAR(64) NOT NULL,
    last_changed_at DATETIME(3) NOT NULL,
    applied_at      DATETIME(3) NOT NULL
) ENGINE = InnoDB;
