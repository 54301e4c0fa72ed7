-- OAuth clients that workspace admins register themselves, and the client
-- credentials grant (issue 15).

-- A client with a workspace authorizes into that workspace only; NULL: a global
-- client (registered by the operator, serving every workspace). A rotated secret's
-- predecessor keeps working until previous_secret_expires_at. Deleted clients stay
-- (their grants, codes and tokens refer to them) but are never found again.
ALTER TABLE oauth_clients
    ADD COLUMN workspace_id BIGINT REFERENCES workspaces (id),
    ADD COLUMN grant_types TEXT NOT NULL DEFAULT 'authorization_code',  -- space-separated
    ADD COLUMN secret_generation BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN previous_secret_digest BYTEA,
    ADD COLUMN previous_secret_expires_at TIMESTAMPTZ,
    ADD COLUMN created_by TEXT,
    ADD COLUMN deleted_at TIMESTAMPTZ;
CREATE INDEX oauth_clients_by_workspace ON oauth_clients (workspace_id, created_at)
    WHERE workspace_id IS NOT NULL;

-- A client-credentials grant has no member. secret_generation: which of the
-- client's secrets obtained it (one live grant per client and secret); ends_at: when
-- a secret rotation's overlap ends, the grant of the replaced secret ends with it.
ALTER TABLE oauth_grants
    ALTER COLUMN member_id DROP NOT NULL,
    ADD COLUMN secret_generation BIGINT,
    ADD COLUMN ends_at TIMESTAMPTZ,
    ADD CONSTRAINT oauth_grants_member_or_client
        CHECK ((member_id IS NULL) = (secret_generation IS NOT NULL));
CREATE INDEX oauth_grants_live_by_client ON oauth_grants (client_id) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX oauth_grants_client_credentials ON oauth_grants (client_id, secret_generation)
    WHERE member_id IS NULL AND revoked_at IS NULL;
