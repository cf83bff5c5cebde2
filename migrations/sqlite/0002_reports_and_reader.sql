-- SQLite has no users or roles, and compares text bytewise already: nothing to do (kept so that every backend
-- has the same migration versions).
SELECT 1;
