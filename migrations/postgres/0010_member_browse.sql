-- The members page lists by userName in byte order (prefix search, keyset pages);
-- this index serves it whatever the database's collation.
CREATE INDEX members_user_name_c ON members (workspace_id, user_name_ci COLLATE "C");
