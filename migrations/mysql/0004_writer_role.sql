-- The projector's role: reads and writes this database's rows and changes no schema. Login users are given one of
-- the two roles by the stack's migrations function (the migrator crate).
CREATE ROLE IF NOT EXISTS orders_writer;
SET @grant_writer = CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE ON `', DATABASE(), '`.* TO orders_writer');
PREPARE grant_writer FROM @grant_writer;
EXECUTE grant_writer;
DEALLOCATE PREPARE grant_writer;
