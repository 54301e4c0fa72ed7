//! A workspace's SSO settings, the SAML requests answered and assertion ids used,
//! and the links from IdP accounts to members. The OIDC client secret arrives and
//! leaves sealed (see `crate::sso::key`); this module never sees it in the clear.

use super::sql::sql;
use super::{Db, Result, StoreError, now};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsoRow {
    /// "oidc", "saml", or None when SSO is off.
    pub protocol: Option<String>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<Vec<u8>>,
    pub saml_metadata_url: Option<String>,
    pub saml_idp_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_certificate: Option<String>,
    pub password_with_sso: bool,
    pub break_glass_email: Option<String>,
    pub auto_create: bool,
}

crate::from_row!(SsoRow {
    protocol,
    oidc_issuer,
    oidc_client_id,
    oidc_client_secret,
    saml_metadata_url,
    saml_idp_entity_id,
    saml_sso_url,
    saml_certificate,
    password_with_sso,
    break_glass_email,
    auto_create
});

const COLUMNS: &str = "protocol, oidc_issuer, oidc_client_id, oidc_client_secret, \
    saml_metadata_url, saml_idp_entity_id, saml_sso_url, saml_certificate, \
    password_with_sso, break_glass_email, auto_create";

/// The workspace's settings; the defaults (SSO off) when none were ever saved.
pub async fn get(db: &Db, workspace_id: i64) -> Result<SsoRow> {
    let q = sql(format!(
        "SELECT {COLUMNS} FROM sso_settings WHERE workspace_id = $1"
    ))
    .bind(workspace_id);
    Ok(db.read_optional(q).await?.unwrap_or_default())
}

/// Replace the workspace's settings with `row`.
pub async fn put(db: &Db, workspace_id: i64, row: &SsoRow) -> Result<()> {
    let q = sql(
        "INSERT INTO sso_settings (workspace_id, protocol, oidc_issuer, oidc_client_id, \
        oidc_client_secret, saml_metadata_url, saml_idp_entity_id, saml_sso_url, saml_certificate, \
        password_with_sso, break_glass_email, auto_create, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
        ON CONFLICT (workspace_id) DO UPDATE SET protocol = excluded.protocol, \
        oidc_issuer = excluded.oidc_issuer, oidc_client_id = excluded.oidc_client_id, \
        oidc_client_secret = excluded.oidc_client_secret, \
        saml_metadata_url = excluded.saml_metadata_url, \
        saml_idp_entity_id = excluded.saml_idp_entity_id, saml_sso_url = excluded.saml_sso_url, \
        saml_certificate = excluded.saml_certificate, \
        password_with_sso = excluded.password_with_sso, \
        break_glass_email = excluded.break_glass_email, auto_create = excluded.auto_create, \
        updated_at = excluded.updated_at",
    )
    .bind(workspace_id)
    .bind(row.protocol.clone())
    .bind(row.oidc_issuer.clone())
    .bind(row.oidc_client_id.clone())
    .bind(row.oidc_client_secret.clone())
    .bind(row.saml_metadata_url.clone())
    .bind(row.saml_idp_entity_id.clone())
    .bind(row.saml_sso_url.clone())
    .bind(row.saml_certificate.clone())
    .bind(row.password_with_sso)
    .bind(row.break_glass_email.clone())
    .bind(row.auto_create)
    .bind(now());
    db.execute(q).await?;
    Ok(())
}

/// Record that request `id` was answered by a verified response; false when it was
/// answered before (kept until `expires_at`, when its cookie has expired anyway).
pub async fn saml_request_answered(
    db: &Db,
    workspace_id: i64,
    id: &str,
    expires_at: OffsetDateTime,
) -> Result<bool> {
    let done = db
        .execute(
            sql(
                "INSERT INTO saml_answered_requests (workspace_id, request_id, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(workspace_id)
            .bind(id)
            .bind(expires_at),
        )
        .await?;
    Ok(done == 1)
}

/// Record that assertion `id` was used; false when it was used before.
pub async fn use_assertion(
    db: &Db,
    workspace_id: i64,
    id: &str,
    expires_at: OffsetDateTime,
) -> Result<bool> {
    let done = db
        .execute(
            sql(
                "INSERT INTO saml_used_assertions (workspace_id, assertion_id, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(workspace_id)
            .bind(id)
            .bind(expires_at),
        )
        .await?;
    Ok(done == 1)
}

/// Forget requests and assertion ids that can no longer be answered or replayed.
pub async fn delete_expired(db: &Db) -> Result<u64> {
    let mut done = 0;
    for text in [
        "DELETE FROM saml_requests WHERE expires_at < $1",
        "DELETE FROM saml_answered_requests WHERE expires_at < $1",
        "DELETE FROM saml_used_assertions WHERE expires_at < $1",
    ] {
        done += db.execute(sql(text).bind(now())).await?;
    }
    Ok(done)
}

/// The member an IdP account (`issuer`, `subject`) is linked to, if any.
pub async fn linked_member(
    db: &Db,
    workspace_id: i64,
    issuer: &str,
    subject: &str,
) -> Result<Option<Uuid>> {
    let id = db
        .write_optional::<Uuid>(
            sql("SELECT member_id FROM sso_links \
             WHERE workspace_id = $1 AND issuer = $2 AND subject = $3")
            .bind(workspace_id)
            .bind(issuer)
            .bind(subject),
        )
        .await?;
    Ok(id)
}

/// Whether `member_id` is linked to any account of `issuer`.
pub async fn member_is_linked(
    db: &Db,
    workspace_id: i64,
    issuer: &str,
    member_id: Uuid,
) -> Result<bool> {
    let found = db
        .write_optional::<Uuid>(
            sql("SELECT member_id FROM sso_links \
             WHERE workspace_id = $1 AND issuer = $2 AND member_id = $3")
            .bind(workspace_id)
            .bind(issuer)
            .bind(member_id),
        )
        .await?;
    Ok(found.is_some())
}

/// Link an IdP account to a member. `Conflict` when the account or the member is
/// already linked (for this issuer), e.g. by a parallel first sign-in.
pub async fn link(
    db: &Db,
    workspace_id: i64,
    issuer: &str,
    subject: &str,
    member_id: Uuid,
) -> Result<()> {
    let inserted = db
        .execute(
            sql(
                "INSERT INTO sso_links (workspace_id, issuer, subject, member_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(workspace_id)
            .bind(issuer)
            .bind(subject)
            .bind(member_id)
            .bind(now()),
        )
        .await?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "this identity provider account or member is already linked".into(),
        ))
    }
}
