-- SSO hardening (issue 12).

-- Which IdP account signs in as which member: after the first sign-in (matched by
-- a verified email) the IdP's subject decides, whatever email the IdP says later.
-- One subject per member per issuer, so a second IdP account claiming a linked
-- member's email is refused.
CREATE TABLE sso_links (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    issuer       TEXT NOT NULL,            -- OIDC issuer URL, or SAML IdP entity id
    subject      TEXT NOT NULL,            -- OIDC `sub`, or SAML NameID
    member_id    BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, issuer, subject)
);
CREATE UNIQUE INDEX sso_links_member ON sso_links (workspace_id, issuer, member_id);

-- AuthnRequests that were answered by a verified response: each is answered once.
-- Pending requests are no longer stored (they travel sealed in the browser's
-- cookie); saml_requests is left for processes of the previous version during a
-- rolling upgrade, and emptied by the expiry sweep.
CREATE TABLE saml_answered_requests (
    workspace_id INTEGER NOT NULL,
    request_id   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, request_id)
);
