-- One counter the projector raises in every transaction that changes the read model (and on a clear): readers
-- compare it to know, with one cheap read, whether anything changed since an answer was made (ETag, caches).
-- Positions alone cannot tell: concurrent shards of one stream may apply changes without moving its position.
CREATE TABLE projection_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);
INSERT INTO projection_epoch (id, epoch) VALUES (1, 0);
