-- SQLite compares text bytewise already: members_user_name serves the members page.
-- (Kept so both databases have the same migration numbers.)
SELECT 1;
