-- OAuth clients that workspace admins register themselves, and the client
-- credentials grant (issue 15).

-- A client with a workspace authorizes into that workspace only; NULL: a global
-- client (registered by the operator, serving every workspace). A rotated secret's
-- predecessor keeps working until previous_secret_expires_at. Deleted clients stay
-- (their grants, codes and tokens refer to them) but are never found again.
ALTER TABLE oauth_clients ADD COLUMN workspace_id INTEGER REFERENCES workspaces (id);
ALTER TABLE oauth_clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT 'authorization_code';  -- space-separated
ALTER TABLE oauth_clients ADD COLUMN secret_generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE oauth_clients ADD COLUMN previous_secret_digest BLOB;
ALTER TABLE oauth_clients ADD COLUMN previous_secret_expires_at TEXT;
ALTER TABLE oauth_clients ADD COLUMN created_by TEXT;
ALTER TABLE oauth_clients ADD COLUMN deleted_at TEXT;
CREATE INDEX oauth_clients_by_workspace ON oauth_clients (workspace_id, created_at)
    WHERE workspace_id IS NOT NULL;

-- A client-credentials grant has no member: member_id becomes nullable. SQLite
-- cannot drop NOT NULL, so the table is rebuilt. oauth_codes and oauth_tokens refer
-- to it: with the foreign-key checks deferred to COMMIT, dropping the old table
-- counts their rows as violations and inserting the same ids into the new one
-- counts them resolved, so the transaction commits only if every reference still
-- holds (the migration runner also runs foreign_key_check before COMMIT).
-- secret_generation: which of the client's secrets obtained a client-credentials
-- grant (one live grant per client and secret); ends_at: when a secret rotation's
-- overlap ends, the grant of the replaced secret ends with it.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE oauth_grants_0014 AS SELECT * FROM oauth_grants;
DROP TABLE oauth_grants;
CREATE TABLE oauth_grants (
    id                INTEGER PRIMARY KEY,
    client_id         TEXT NOT NULL REFERENCES oauth_clients (id),
    workspace_id      INTEGER NOT NULL REFERENCES workspaces (id),
    member_id         BLOB REFERENCES members (id),  -- NULL: client credentials
    scope             TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    last_used_at      TEXT,
    revoked_at        TEXT,
    ended_reason      TEXT,                          -- why revoked_at (or ends_at) was set
    secret_generation INTEGER,
    ends_at           TEXT,
    CHECK ((member_id IS NULL) = (secret_generation IS NOT NULL))
);
INSERT INTO oauth_grants (id, client_id, workspace_id, member_id, scope, created_at,
                          last_used_at, revoked_at, ended_reason)
SELECT id, client_id, workspace_id, member_id, scope, created_at, last_used_at, revoked_at,
       ended_reason
FROM oauth_grants_0014;
DROP TABLE oauth_grants_0014;
CREATE INDEX oauth_grants_by_workspace ON oauth_grants (workspace_id, id);
CREATE INDEX oauth_grants_live_by_member ON oauth_grants (member_id) WHERE revoked_at IS NULL;
CREATE INDEX oauth_grants_live_by_client ON oauth_grants (client_id) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX oauth_grants_client_credentials ON oauth_grants (client_id, secret_generation)
    WHERE member_id IS NULL AND revoked_at IS NULL;
