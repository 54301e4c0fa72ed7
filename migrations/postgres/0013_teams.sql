-- Teams: named sets of members, managed on the pages or (when the workspace turns
-- "Manage teams with SCIM" on) by the identity provider through SCIM Groups.

ALTER TABLE workspaces ADD COLUMN scim_teams BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE teams (
    id              UUID PRIMARY KEY,          -- UUIDv7
    workspace_id    BIGINT NOT NULL REFERENCES workspaces (id),
    display_name    TEXT NOT NULL,
    display_name_ci TEXT NOT NULL,             -- folded in Rust: unique per workspace
    external_id     TEXT,
    scim_managed    BOOLEAN NOT NULL DEFAULT FALSE,
    member_count    BIGINT NOT NULL DEFAULT 0, -- kept by every membership write
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX teams_name ON teams (workspace_id, display_name_ci);
-- The Teams page lists names in byte order, as SQLite does.
CREATE INDEX teams_name_c ON teams (workspace_id, display_name_ci COLLATE "C");
CREATE INDEX teams_external_id ON teams (workspace_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX teams_by_workspace ON teams (workspace_id, id);

-- Deleting a team deletes its memberships; members are never deleted.
CREATE TABLE team_members (
    team_id   UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    member_id UUID NOT NULL REFERENCES members (id),
    PRIMARY KEY (team_id, member_id)
);
CREATE INDEX team_members_by_member ON team_members (member_id, team_id);

-- Team changes in the provisioning activity log.
ALTER TABLE scim_activity ADD COLUMN team_id UUID;
ALTER TABLE scim_activity ADD COLUMN team_name TEXT;
CREATE INDEX scim_activity_team ON scim_activity (workspace_id, team_id, id) WHERE team_id IS NOT NULL;

