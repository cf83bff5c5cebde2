-- SQLite has no users or roles; the file keeps the three dialects' migrations numbered alike.
SELECT 1;
