-- The query side's role: SELECT on this database, nothing else (ids already compare bytewise: ascii_bin).
CREATE ROLE IF NOT EXISTS orders_reader;
SET @grant_reader = CONCAT('GRANT SELECT ON `', DATABASE(), '`.* TO orders_reader');
PREPARE grant_reader FROM @grant_reader;
EXECUTE grant_reader;
DEALLOCATE PREPARE grant_reader;
