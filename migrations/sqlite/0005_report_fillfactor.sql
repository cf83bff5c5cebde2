-- PostgreSQL's fillfactor for the report tables; InnoDB and SQLite update rows in place. The file keeps the three
-- dialects' migrations numbered alike.
SELECT 1;
