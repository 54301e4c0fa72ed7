-- Workspaces, members, API tokens, sessions.
-- Case-insensitive keys (*_ci) are folded in Rust so both databases agree.

CREATE TABLE workspaces (
    id              INTEGER PRIMARY KEY,
    subdomain       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    scim_enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    password_signin BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TEXT NOT NULL
);

CREATE TABLE members (
    id            BLOB PRIMARY KEY,            -- UUIDv7: time-ordered, so id order is creation order
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    user_name     TEXT NOT NULL,
    user_name_ci  TEXT NOT NULL,
    external_id   TEXT,
    display_name  TEXT,
    given_name    TEXT,
    family_name   TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'maker', 'contributor', 'viewer')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    scim_managed  BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT,
    resource      TEXT NOT NULL,               -- canonical SCIM User JSON
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX members_user_name ON members (workspace_id, user_name_ci);
CREATE UNIQUE INDEX members_external_id ON members (workspace_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX members_by_workspace ON members (workspace_id, id);

CREATE TABLE member_emails (
    member_id    BLOB NOT NULL REFERENCES members (id),
    workspace_id INTEGER NOT NULL,
    value_ci     TEXT NOT NULL,
    PRIMARY KEY (member_id, value_ci)
);
CREATE INDEX member_emails_value ON member_emails (workspace_id, value_ci);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,                -- shown in lists; not enough to use
    digest       BLOB NOT NULL UNIQUE,         -- SHA-256 of the token
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_by_workspace ON api_tokens (workspace_id, id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL               -- unix seconds
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
