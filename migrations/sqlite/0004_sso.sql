-- Sign-in through the workspace's identity provider (OpenID Connect or SAML 2.0).

CREATE TABLE sso_settings (
    workspace_id        INTEGER PRIMARY KEY REFERENCES workspaces (id),
    protocol            TEXT CHECK (protocol IN ('oidc', 'saml')),  -- NULL: SSO off
    oidc_issuer         TEXT,
    oidc_client_id      TEXT,
    oidc_client_secret  BLOB,              -- sealed with the server key
    saml_metadata_url   TEXT,              -- where the values below came from, if a URL
    saml_idp_entity_id  TEXT,
    saml_sso_url        TEXT,
    saml_certificate    TEXT,              -- the IdP's signing certificate, PEM
    password_with_sso   BOOLEAN NOT NULL DEFAULT FALSE,
    break_glass_email   TEXT,              -- an admin who may still use a password
    auto_create         BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at          TEXT NOT NULL
);

-- AuthnRequests sent and not yet answered: InResponseTo must name one, once.
CREATE TABLE saml_requests (
    id           TEXT PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    next         TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

-- Assertion ids already used, kept until the assertion would have expired anyway.
CREATE TABLE saml_used_assertions (
    workspace_id INTEGER NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, assertion_id)
);
