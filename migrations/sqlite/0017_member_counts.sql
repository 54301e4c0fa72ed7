-- The number of members of each workspace, for totalResults of unfiltered lists
-- (every page of an import) and the admin pages, kept by the database itself as
-- members are inserted, whoever inserts them (members are never deleted). One
-- writer at a time: one counter row per workspace.
CREATE TABLE member_counts (
    workspace_id INTEGER PRIMARY KEY,
    n            INTEGER NOT NULL
);

INSERT INTO member_counts (workspace_id, n)
    SELECT workspace_id, COUNT(*) FROM members GROUP BY workspace_id;

CREATE TRIGGER members_counted AFTER INSERT ON members
BEGIN
    INSERT OR IGNORE INTO member_counts (workspace_id, n) VALUES (NEW.workspace_id, 0);
    UPDATE member_counts SET n = n + 1 WHERE workspace_id = NEW.workspace_id;
END;
