-- The projector's role: reads and writes this database's rows and changes no schema. Like orders_reader it
-- belongs to the cluster, so it is created once (and two databases migrating at the same moment may race).
-- Login users are given one of the two roles by the stack's migrations function (the migrator crate); the
-- migrations themselves run as the database owner.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_writer') THEN
        CREATE ROLE orders_writer NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO orders_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orders_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orders_writer;
-- Before PostgreSQL 15 every role may create tables in public; here only the owner may change the schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- The record of applied migrations is the owner's alone.
REVOKE ALL ON _sqlx_migrations FROM orders_writer, orders_reader;
