-- The report tables are small, and every projector transaction updates many of their rows. At the default
-- fillfactor (100) a full page sends each updated row version to another page, with a new index entry, and the
-- table grows until VACUUM: item_sales reached 6.6 MB for its 5,000 rows after 1,000,000 projected orders, and the
-- item report's scan grew with it. Pages kept half empty let updates stay on their page (HOT updates, pruned as
-- pages are read), so the tables stay near their live size.
ALTER TABLE item_sales SET (fillfactor = 50);
ALTER TABLE item_monthly_sales SET (fillfactor = 50);
