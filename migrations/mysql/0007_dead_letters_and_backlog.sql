-- Changes the projection could not apply, set aside with the reason; and what a stream consumer knows is waiting
-- when a batch does not go through (see migrations/postgres for the commentary).
CREATE TABLE projection_dead_letters (
    source    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    sequence  VARCHAR(64) CHARACTER SET ascii NOT NULL,
    orderid   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    reason    VARCHAR(1000) NOT NULL,
    record     MEDIUMTEXT NOT NULL,
    changed_at DATETIME(3) NOT NULL,
    failed_at  DATETIME(3) NOT NULL,
    PRIMARY KEY (source, sequence)
) ENGINE = InnoDB;

CREATE TABLE projection_backlog (
    source          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    head_sequence   VARCHAR(64) NOT NULL,
    head_changed_at DATETIME(3) NOT NULL,
    pending_since   DATETIME(3) NOT NULL,
    pending         BIGINT NOT NULL,
    recorded_at     DATETIME(3) NOT NULL
) ENGINE = InnoDB;
