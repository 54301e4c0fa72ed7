-- Provisioning activity: every SCIM write, with its outcome, for the admin UI.
CREATE TABLE scim_activity (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    operation    TEXT NOT NULL,
    member_id    BLOB,
    user_name    TEXT,
    status       INTEGER NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX scim_activity_recent ON scim_activity (workspace_id, id);
CREATE INDEX scim_activity_member ON scim_activity (workspace_id, member_id, id);
