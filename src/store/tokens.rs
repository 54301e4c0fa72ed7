//! Workspace API tokens ("Public API" access tokens) for the SCIM API.
//! Only the SHA-256 digest is stored; the token is shown once.

use super::sql::{FromRow, Row, sql};
use super::workspaces::Workspace;
use super::{Db, Result, StoreError, now};
use time::OffsetDateTime;

/// Mark a token used (at most once a minute).
pub(crate) const TOUCH_SQL: &str = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2";

/// A workspace API token and its workspace, by digest (every SCIM request).
pub(crate) const AUTHENTICATE_SQL: &str = "SELECT t.id, t.workspace_id, t.name, t.prefix, t.created_by, t.created_at, \
               t.last_used_at, t.revoked_at, w.subdomain AS ws_subdomain, w.name AS ws_name, \
               w.scim_enabled AS ws_scim_enabled, w.scim_teams AS ws_scim_teams, w.password_signin AS ws_password_signin, \
               w.created_at AS ws_created_at \
               FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id \
               WHERE t.digest = $1 AND t.revoked_at IS NULL";

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

crate::from_row!(ApiToken {
    id,
    workspace_id,
    name,
    prefix,
    created_by,
    created_at,
    last_used_at,
    revoked_at
});

const COLUMNS: &str =
    "id, workspace_id, name, prefix, created_by, created_at, last_used_at, revoked_at";

/// How stale `last_used_at` may get before a use writes it again: a SCIM burst
/// should not turn every read into a write.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

pub async fn create(
    db: &Db,
    workspace_id: i64,
    name: &str,
    created_by: &str,
    digest: &[u8],
    prefix: &str,
) -> Result<ApiToken> {
    let q = sql(format!(
        "INSERT INTO api_tokens (workspace_id, name, prefix, digest, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(workspace_id)
    .bind(name)
    .bind(prefix)
    .bind(digest)
    .bind(created_by)
    .bind(now());
    db.write_one(q).await
}

/// A token and its workspace, as `AUTHENTICATE_SQL` reads them.
struct Authenticated {
    token: ApiToken,
    workspace: Workspace,
}

impl FromRow for Authenticated {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let token = ApiToken::from_row(r)?;
        Ok(Authenticated {
            workspace: Workspace {
                id: token.workspace_id,
                subdomain: r.get("ws_subdomain")?,
                name: r.get("ws_name")?,
                scim_enabled: r.get("ws_scim_enabled")?,
                scim_teams: r.get("ws_scim_teams")?,
                password_signin: r.get("ws_password_signin")?,
                created_at: r.get("ws_created_at")?,
            },
            token,
        })
    }
}

/// The live token with this digest and its workspace (one query, or none when this
/// process has it: see `auth_cache`), marking it used.
pub async fn authenticate(db: &Db, digest: &[u8]) -> Result<Option<(ApiToken, Workspace)>> {
    use super::auth_cache::Found;
    let found = db
        .through_auth_cache(
            digest,
            |f| match f {
                Found::Api(token, workspace) => Some((token.clone(), workspace.clone())),
                _ => None,
            },
            async {
                let found: Option<Authenticated> =
                    db.read_optional(sql(AUTHENTICATE_SQL).bind(digest)).await?;
                Ok(found.map(|a| (a.token, a.workspace)))
            },
            |(token, workspace)| Some(Found::Api(token.clone(), workspace.clone())),
        )
        .await?;
    let Some((token, workspace)) = found else {
        return Ok(None);
    };
    let at = now();
    if token
        .last_used_at
        .is_none_or(|last| at - last > TOUCH_EVERY)
    {
        db.execute(sql(TOUCH_SQL).bind(at).bind(token.id)).await?;
        if let Some(c) = db.auth_cache() {
            c.update(|found| match found {
                Found::Api(t, w) if t.id == token.id => Some(Found::Api(
                    ApiToken {
                        last_used_at: Some(at),
                        ..t.clone()
                    },
                    w.clone(),
                )),
                _ => None,
            });
        }
    }
    Ok(Some((token, workspace)))
}

pub async fn list(db: &Db, workspace_id: i64) -> Result<Vec<ApiToken>> {
    db.read_all(
        sql(format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE workspace_id = $1 ORDER BY id DESC"
        ))
        .bind(workspace_id)
        .slow(),
    )
    .await
}

pub async fn revoke(db: &Db, workspace_id: i64, id: i64) -> Result<()> {
    let q = sql(
        "UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(workspace_id)
    .bind(id);
    if db.execute(q).await? == 0 {
        return Err(StoreError::NotFound);
    }
    db.auth_changed();
    Ok(())
}
