//! Workspace API tokens ("Public API" access tokens) for the SCIM API.
//! Only the SHA-256 digest is stored; the token is shown once.

use super::workspaces::Workspace;
use super::{Db, Result, StoreError, now};
use crate::on_pool;
use time::OffsetDateTime;

/// Mark a token used (at most once a minute).
pub(crate) const TOUCH_SQL: &str = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2";

/// A workspace API token and its workspace, by digest (every SCIM request).
pub(crate) const AUTHENTICATE_SQL: &str = "SELECT t.id, t.workspace_id, t.name, t.prefix, t.created_by, t.created_at, \
               t.last_used_at, t.revoked_at, w.subdomain AS ws_subdomain, w.name AS ws_name, \
               w.scim_enabled AS ws_scim_enabled, w.password_signin AS ws_password_signin, \
               w.created_at AS ws_created_at \
               FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id \
               WHERE t.digest = $1 AND t.revoked_at IS NULL";

#[derive(Debug, Clone, sqlx::FromRow)]
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
    let sql = format!(
        "INSERT INTO api_tokens (workspace_id, name, prefix, digest, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    Ok(on_pool!(db.writer(), |p| {
        sqlx::query_as::<_, ApiToken>(&sql)
            .bind(workspace_id)
            .bind(name)
            .bind(prefix)
            .bind(digest)
            .bind(created_by)
            .bind(now())
            .fetch_one(p)
            .await
    })?)
}

/// The live token with this digest and its workspace (one query), marking it used.
pub async fn authenticate(db: &Db, digest: &[u8]) -> Result<Option<(ApiToken, Workspace)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        token: ApiToken,
        ws_subdomain: String,
        ws_name: String,
        ws_scim_enabled: bool,
        ws_password_signin: bool,
        ws_created_at: OffsetDateTime,
    }
    let sql = AUTHENTICATE_SQL;
    let row = if let Some(fast) = db.fast() {
        fast.with(|c| {
            use super::fast::{opt_time_at, time_at};
            use rusqlite::OptionalExtension;
            c.prepare_cached(sql)?
                .query_row([digest], |r| {
                    Ok(Row {
                        token: ApiToken {
                            id: r.get(0)?,
                            workspace_id: r.get(1)?,
                            name: r.get(2)?,
                            prefix: r.get(3)?,
                            created_by: r.get(4)?,
                            created_at: time_at(r, 5)?,
                            last_used_at: opt_time_at(r, 6)?,
                            revoked_at: opt_time_at(r, 7)?,
                        },
                        ws_subdomain: r.get(8)?,
                        ws_name: r.get(9)?,
                        ws_scim_enabled: r.get(10)?,
                        ws_password_signin: r.get(11)?,
                        ws_created_at: time_at(r, 12)?,
                    })
                })
                .optional()
        })?
    } else {
        on_pool!(db.reader(), |p| {
            sqlx::query_as::<_, Row>(sql)
                .bind(digest)
                .fetch_optional(p)
                .await
        })?
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let t = row.token;
    let at = now();
    if t.last_used_at.is_none_or(|last| at - last > TOUCH_EVERY) {
        on_pool!(db.writer(), |p| {
            sqlx::query(TOUCH_SQL)
                .bind(at)
                .bind(t.id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    let workspace = Workspace {
        id: t.workspace_id,
        subdomain: row.ws_subdomain,
        name: row.ws_name,
        scim_enabled: row.ws_scim_enabled,
        password_signin: row.ws_password_signin,
        created_at: row.ws_created_at,
    };
    Ok(Some((t, workspace)))
}

pub async fn list(db: &Db, workspace_id: i64) -> Result<Vec<ApiToken>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE workspace_id = $1 ORDER BY id DESC");
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, ApiToken>(&sql)
            .bind(workspace_id)
            .fetch_all(p)
            .await
    })?)
}

pub async fn revoke(db: &Db, workspace_id: i64, id: i64) -> Result<()> {
    let done = on_pool!(db.writer(), |p| {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(workspace_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
