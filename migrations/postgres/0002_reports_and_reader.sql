-- Reports: item ids compare bytewise, as on MySQL (ascii_bin) and SQLite, so the report tables' primary keys give
-- the reports' order and keyset paging without a sort.
ALTER TABLE item_sales ALTER COLUMN itemid TYPE VARCHAR(64) COLLATE "C";
ALTER TABLE item_monthly_sales ALTER COLUMN itemid TYPE VARCHAR(64) COLLATE "C";

-- The query side's role: SELECT on this database's tables, nothing else. Roles belong to the cluster, so it is
-- created once (and two databases migrating at the same moment may race to create it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_reader') THEN
        CREATE ROLE orders_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO orders_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO orders_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO orders_reader;
