-- The number of members of each workspace, for totalResults of unfiltered lists
-- (every page of an import) and the admin pages, kept by the database itself as
-- members are inserted, whoever inserts them (members are never deleted). Kept as
-- deltas, one row per INSERT statement, so concurrent inserts never wait on one
-- counter row: a count is the sum of its workspace's rows, and the store folds a
-- workspace's rows into one now and then (store::members::count). A data-only
-- restore into a migrated schema (pg_restore --data-only) restores the deltas and
-- fires the trigger for every member it loads: restore with --disable-triggers.
CREATE TABLE member_count_deltas (
    workspace_id BIGINT NOT NULL,
    n            BIGINT NOT NULL
);
CREATE INDEX member_count_deltas_by_workspace ON member_count_deltas (workspace_id);

CREATE FUNCTION rollcall_count_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_count_deltas (workspace_id, n)
        SELECT workspace_id, COUNT(*) FROM inserted GROUP BY workspace_id;
    RETURN NULL;
END
$$;

-- The trigger first, then the members there are: the trigger's lock on members
-- holds any insert until this migration commits, so none is missed or counted twice.
CREATE TRIGGER members_counted AFTER INSERT ON members
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_count_members();

INSERT INTO member_count_deltas (workspace_id, n)
    SELECT workspace_id, COUNT(*) FROM members GROUP BY workspace_id;
