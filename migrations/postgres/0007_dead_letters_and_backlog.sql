-- Changes the projection could not apply (a value a backend refuses, a record that does not decode), set aside with
-- the reason so that the rest of the feed goes on; `orders dead-letters` lists them and applies them again. The
-- record is the change as JSON (or the stream record as delivered, when it did not decode).
CREATE TABLE projection_dead_letters (
    source    VARCHAR(256)  NOT NULL,
    sequence  VARCHAR(64)   NOT NULL,
    orderid   VARCHAR(64),
    reason    VARCHAR(1000) NOT NULL,
    record     TEXT          NOT NULL,
    changed_at TIMESTAMPTZ   NOT NULL,
    failed_at  TIMESTAMPTZ   NOT NULL,
    PRIMARY KEY (source, sequence)
);

-- What a stream consumer knows is waiting when a batch does not go through: the newest record it was handed, when
-- the oldest not yet applied was written, and how many it was handed. The query side reports lag from it while the
-- source's position is behind the head; a row whose head the position has passed says nothing any more.
CREATE TABLE projection_backlog (
    source          VARCHAR(256) PRIMARY KEY,
    head_sequence   VARCHAR(64)  NOT NULL,
    head_changed_at TIMESTAMPTZ  NOT NULL,
    pending_since   TIMESTAMPTZ  NOT NULL,
    pending         BIGINT       NOT NULL,
    recorded_at     TIMESTAMPTZ  NOT NULL
);
