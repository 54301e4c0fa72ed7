-- OAuth2 authorization server: clients, grants, codes, tokens; and the rate-limit
-- windows shared by every process on this database.
-- Secrets (client secrets, codes, tokens) are stored only as SHA-256 digests.

CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    public        BOOLEAN NOT NULL,
    secret_digest BLOB,                        -- NULL for public clients
    redirect_uris TEXT NOT NULL,               -- JSON array; matched as exact strings
    scopes        TEXT NOT NULL,               -- allowed scopes, space-separated
    created_at    TEXT NOT NULL
);

-- One authorization of a client for a workspace by a member, and its token family.
CREATE TABLE oauth_grants (
    id           INTEGER PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (id),
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    member_id    BLOB NOT NULL REFERENCES members (id),
    scope        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX oauth_grants_by_workspace ON oauth_grants (workspace_id, id);

CREATE TABLE oauth_codes (
    digest         BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id),
    workspace_id   INTEGER NOT NULL REFERENCES workspaces (id),
    member_id      BLOB NOT NULL REFERENCES members (id),
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT,                       -- S256 only
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT,
    grant_id       INTEGER REFERENCES oauth_grants (id)  -- set when redeemed
);

CREATE TABLE oauth_tokens (
    id         INTEGER PRIMARY KEY,
    grant_id   INTEGER NOT NULL REFERENCES oauth_grants (id),
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    digest     BLOB NOT NULL UNIQUE,
    scope      TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    rotated_at TEXT,                           -- refresh: when a newer one replaced it
    revoked_at TEXT
);
CREATE INDEX oauth_tokens_by_grant ON oauth_tokens (grant_id, kind);

CREATE TABLE rate_limits (
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,              -- unix seconds
    count        BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
