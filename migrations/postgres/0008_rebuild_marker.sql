-- An unfinished rebuild: `orders rebuild` writes this row before it writes anything else and deletes it in the
-- transaction that completes the read model, so a read model holding it (an interrupted rebuild) is never taken
-- for a finished one. The runner refuses to serve or project into it; a rerun of the rebuild starts it clean.
CREATE TABLE projection_rebuild (
    id         INTEGER      PRIMARY KEY CHECK (id = 1),
    source     VARCHAR(256) NOT NULL,
    started_at TIMESTAMPTZ  NOT NULL
);
