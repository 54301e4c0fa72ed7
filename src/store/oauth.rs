//! OAuth2 state: clients, authorization codes, grants and their tokens. Secrets are
//! stored as SHA-256 digests only. The rules (what a presentation may do) live in
//! `crate::oauth`; the functions here carry them out atomically.
//!
//! A grant is one authorization of a client for a workspace by a member: the code
//! redeemed for it, and the family of access and refresh tokens issued from it.
//! Ending a grant ends every token in it: token lookups join the grant.

use super::scim_sql::Bind;
use super::{Db, Result, StoreError, fast, now};
use crate::on_pool;
use rusqlite::types::Value as SqlValue;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Claim an authorization code, once.
/// Only the client it was issued to can claim it: another client's presentation
/// changes nothing.
pub(crate) const REDEEM_CODE_SQL: &str = "UPDATE oauth_codes SET used_at = $1 WHERE digest = $2 AND used_at IS NULL \
             AND client_id = $3 RETURNING client_id, workspace_id, member_id, redirect_uri, scope, code_challenge, expires_at";

/// Retire a grant's newest refresh token.
pub(crate) const ROTATE_SQL: &str = "UPDATE oauth_tokens SET rotated_at = $1 WHERE grant_id = $2 AND kind = 'refresh' \
                     AND rotated_at IS NULL AND revoked_at IS NULL";

/// A refresh token and its grant, by token id.
pub(crate) const REFRESH_STATE_SQL: &str = "SELECT g.id AS grant_id, g.client_id, g.scope AS grant_scope, \
             g.revoked_at AS grant_revoked_at, t.revoked_at, t.expires_at, t.rotated_at, \
             (m.active AND m.role = 'admin') AS authorizer_is_admin \
             FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             JOIN members m ON m.id = g.member_id WHERE t.id = $1";

/// Lock a grant (and note it used) before deciding a refresh.
pub(crate) const GRANT_LOCK_SQL: &str = "UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2";

/// End a grant because one of its codes or replaced refresh tokens was replayed.
pub(crate) const END_GRANT_REUSED_SQL: &str = "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'reused' \
     WHERE id = $2 AND revoked_at IS NULL";

/// A refresh token by digest.
pub(crate) const REFRESH_FIND_SQL: &str =
    "SELECT id, grant_id FROM oauth_tokens WHERE digest = $1 AND kind = 'refresh'";

/// Note a grant used.
pub(crate) const TOUCH_GRANT_SQL: &str = GRANT_LOCK_SQL;

/// An OAuth token with its grant, client and workspace, by digest.
pub(crate) const TOKEN_SQL: &str = "SELECT t.id, t.grant_id, t.kind, t.scope, t.issued_at, t.expires_at, t.rotated_at, \
             t.revoked_at, g.revoked_at AS grant_revoked_at, g.last_used_at AS grant_last_used_at, \
             g.client_id, c.name AS client_name, g.member_id, g.workspace_id, w.subdomain, \
             w.name AS workspace_name, w.scim_enabled, w.password_signin, \
             w.created_at AS workspace_created_at, \
             (m.active AND m.role = 'admin') AS authorizer_is_admin \
             FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             JOIN oauth_clients c ON c.id = g.client_id JOIN workspaces w ON w.id = g.workspace_id \
             JOIN members m ON m.id = g.member_id \
             WHERE t.digest = $1";

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub secret_digest: Option<Vec<u8>>,
    pub redirect_uris: Vec<String>,
    /// Allowed scopes, space-separated.
    pub scopes: String,
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    public: bool,
    secret_digest: Option<Vec<u8>>,
    redirect_uris: Json<Vec<String>>,
    scopes: String,
    created_at: OffsetDateTime,
}

impl From<ClientRow> for Client {
    fn from(r: ClientRow) -> Self {
        Client {
            id: r.id,
            name: r.name,
            public: r.public,
            secret_digest: r.secret_digest,
            redirect_uris: r.redirect_uris.0,
            scopes: r.scopes,
            created_at: r.created_at,
        }
    }
}

const CLIENT_COLUMNS: &str = "id, name, public, secret_digest, redirect_uris, scopes, created_at";

pub async fn create_client(
    db: &Db,
    id: &str,
    name: &str,
    secret_digest: Option<&[u8]>,
    redirect_uris: &[String],
    scopes: &str,
) -> Result<Client> {
    let sql = format!(
        "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING {CLIENT_COLUMNS}"
    );
    let row = on_pool!(db.writer(), |p| {
        sqlx::query_as::<_, ClientRow>(&sql)
            .bind(id)
            .bind(name)
            .bind(secret_digest.is_none())
            .bind(secret_digest)
            .bind(Json(redirect_uris))
            .bind(scopes)
            .bind(now())
            .fetch_one(p)
            .await
    })
    .map_err(|e| match super::unique_violation(&e) {
        Some(_) => StoreError::Conflict(format!("client '{id}' already exists")),
        None => e.into(),
    })?;
    Ok(row.into())
}

pub(crate) fn client_sql() -> String {
    format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1")
}

pub async fn client(db: &Db, id: &str) -> Result<Option<Client>> {
    if !super::storable(id) {
        return Ok(None);
    }
    let sql = client_sql();
    if let Some(fast) = db.fast() {
        // Every token, revocation and introspection request authenticates its client.
        return fast.with(|c| {
            use super::fast::{json_at, prepare, time_at};
            let mut stmt = prepare(c, &sql, &[SqlValue::Text(id.to_owned())])?;
            let mut rows = stmt.raw_query();
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let uris = json_at(r, 4)?;
            Ok(Some(Client {
                id: r.get(0)?,
                name: r.get(1)?,
                public: r.get(2)?,
                secret_digest: r.get(3)?,
                redirect_uris: serde_json::from_value(uris).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        4,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                scopes: r.get(5)?,
                created_at: time_at(r, 6)?,
            }))
        });
    }
    let row = on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, ClientRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await
    })?;
    Ok(row.map(Client::from))
}

/// An authorization code to store (its digest) after consent.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub digest: &'a [u8],
    pub client_id: &'a str,
    pub workspace_id: i64,
    pub member_id: Uuid,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub code_challenge: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

pub async fn create_code(db: &Db, c: &NewCode<'_>) -> Result<()> {
    on_pool!(db.writer(), |p| {
        sqlx::query(
            "INSERT INTO oauth_codes (digest, client_id, workspace_id, member_id, redirect_uri, \
             scope, code_challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.digest)
        .bind(c.client_id)
        .bind(c.workspace_id)
        .bind(c.member_id)
        .bind(c.redirect_uri)
        .bind(c.scope)
        .bind(c.code_challenge)
        .bind(now())
        .bind(c.expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// A code as it was issued, handed to the caller's check when it is redeemed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Code {
    pub client_id: String,
    pub workspace_id: i64,
    pub member_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub expires_at: OffsetDateTime,
    /// The member who consented is still an active admin.
    #[sqlx(skip)]
    pub authorizer_is_admin: bool,
}

/// The digests and lifetimes of a new access/refresh pair; the caller holds the
/// tokens themselves.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access_digest: Vec<u8>,
    pub access_expires_at: OffsetDateTime,
    pub refresh_digest: Vec<u8>,
    pub refresh_expires_at: OffsetDateTime,
}

/// Tokens issued by `redeem_code` or `refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub grant_id: i64,
    pub scope: String,
}

#[derive(Debug)]
pub enum Redeemed<E> {
    Issued(Issued),
    /// The check refused the presentation; the code is used up all the same.
    Refused(E),
    /// No such code.
    Unknown,
    /// The code was already used: the grant issued from it (if any) has been ended.
    Replayed,
}

const INSERT_TOKEN: &str = "INSERT INTO oauth_tokens (grant_id, kind, digest, scope, issued_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Redeem a code, once. Marking it used is a conditional UPDATE, so of two racing
/// redemptions exactly one gets it; the other (and any later one) is a replay and
/// ends the grant, in the same transaction that looked. `check` decides whether this
/// presentation may have it (client, redirect URI, PKCE, expiry).
pub async fn redeem_code<E>(
    db: &Db,
    digest: &[u8],
    client_id: &str,
    tokens: &NewTokens,
    check: impl FnOnce(&Code) -> std::result::Result<(), E>,
) -> Result<Redeemed<E>> {
    let at = now();
    on_pool!(db.writer(), |p| {
        let mut tx = p.begin().await?;
        let claimed = sqlx::query_as::<_, Code>(REDEEM_CODE_SQL)
            .bind(at)
            .bind(digest)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(mut code) = claimed else {
            let seen = sqlx::query_as::<_, (Option<i64>, String)>(
                "SELECT grant_id, client_id FROM oauth_codes WHERE digest = $1",
            )
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
            // Another client's code is no code at all for this one: it neither
            // learns that it exists nor ends the grant issued from it.
            let Some((grant_id, _)) = seen.filter(|(_, owner)| owner == client_id) else {
                return Ok(Redeemed::Unknown);
            };
            if let Some(grant_id) = grant_id {
                sqlx::query(END_GRANT_REUSED_SQL)
                    .bind(at)
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(Redeemed::Replayed);
        };
        // Consent was given by an admin, who may have been deactivated or demoted
        // since (which ended their grants, but this one did not exist yet).
        code.authorizer_is_admin =
            sqlx::query_as::<_, (bool, String)>("SELECT active, role FROM members WHERE id = $1")
                .bind(code.member_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some_and(|(active, role)| active && role == "admin");
        if let Err(e) = check(&code) {
            tx.commit().await?;
            return Ok(Redeemed::Refused(e));
        }
        let grant_id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO oauth_grants (client_id, workspace_id, member_id, scope, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(&code.client_id)
        .bind(code.workspace_id)
        .bind(code.member_id)
        .bind(&code.scope)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE oauth_codes SET grant_id = $1 WHERE digest = $2")
            .bind(grant_id)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        for (kind, digest, expires_at) in [
            ("access", &tokens.access_digest, tokens.access_expires_at),
            ("refresh", &tokens.refresh_digest, tokens.refresh_expires_at),
        ] {
            sqlx::query(INSERT_TOKEN)
                .bind(grant_id)
                .bind(kind)
                .bind(digest)
                .bind(&code.scope)
                .bind(at)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Redeemed::Issued(Issued {
            grant_id,
            scope: code.scope,
        }))
    })
}

/// A refresh token and its grant, read under the grant's lock.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshState {
    pub grant_id: i64,
    pub client_id: String,
    pub grant_scope: String,
    pub grant_revoked_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    /// The member who authorized the grant is still an active admin.
    pub authorizer_is_admin: bool,
}

/// What the caller's rules decided about a refresh-token presentation.
#[derive(Debug)]
pub enum RefreshPlan<E> {
    /// Retire the grant's newest refresh token and issue a new pair with `scope`.
    Issue { scope: String },
    /// Refuse; change nothing.
    Refuse(E),
    /// Refuse and end the grant (a replaced token was replayed).
    EndGrant(E),
}

/// Use a refresh token. The grant row is locked first (an UPDATE of its
/// `last_used_at`), so presentations of one family run one after another, on
/// PostgreSQL as on SQLite; `plan` then sees the token as it is now. Issuing always
/// retires the family's current newest refresh token before adding the new one, so a
/// family has at most one newest token: concurrent or repeated refreshes never fork it.
/// `None`: no such refresh token.
pub async fn refresh<E: Send + 'static>(
    db: &Db,
    digest: &[u8],
    tokens: &NewTokens,
    plan: impl FnOnce(&RefreshState) -> RefreshPlan<E> + Send + 'static,
) -> Result<Option<std::result::Result<Issued, E>>> {
    let at = now();
    if let Some(writer) = db.sqlite_writer() {
        let (digest, tokens) = (digest.to_vec(), tokens.clone());
        return writer
            .write(move |tx| fast_refresh(tx, &digest, &tokens, at, plan).map_err(fast::fail))
            .await;
    }
    on_pool!(db.writer(), |p| {
        let mut tx = p.begin().await?;
        let found = sqlx::query_as::<_, (i64, i64)>(REFRESH_FIND_SQL)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((token_id, grant_id)) = found else {
            return Ok(None);
        };
        sqlx::query(GRANT_LOCK_SQL)
            .bind(at)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        let state = sqlx::query_as::<_, RefreshState>(REFRESH_STATE_SQL)
            .bind(token_id)
            .fetch_one(&mut *tx)
            .await?;
        match plan(&state) {
            RefreshPlan::Refuse(e) => {
                tx.rollback().await?;
                Ok(Some(Err(e)))
            }
            RefreshPlan::EndGrant(e) => {
                sqlx::query(END_GRANT_REUSED_SQL)
                    .bind(at)
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(Err(e)))
            }
            RefreshPlan::Issue { scope } => {
                sqlx::query(ROTATE_SQL)
                    .bind(at)
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
                for (kind, digest, expires_at) in [
                    ("access", &tokens.access_digest, tokens.access_expires_at),
                    ("refresh", &tokens.refresh_digest, tokens.refresh_expires_at),
                ] {
                    sqlx::query(INSERT_TOKEN)
                        .bind(grant_id)
                        .bind(kind)
                        .bind(digest)
                        .bind(&scope)
                        .bind(at)
                        .bind(expires_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(Ok(Issued { grant_id, scope })))
            }
        }
    })
}

/// `refresh` on SQLite, on the writer thread: the same statements.
fn fast_refresh<E>(
    tx: &super::writer::Tx<'_>,
    digest: &[u8],
    tokens: &NewTokens,
    at: OffsetDateTime,
    plan: impl FnOnce(&RefreshState) -> RefreshPlan<E>,
) -> rusqlite::Result<Option<std::result::Result<Issued, E>>> {
    use super::fast::{execute, opt_time_at, prepare, time_at};
    let at_param = fast::value(&Bind::Time(at));
    let found = {
        let mut stmt = prepare(tx, REFRESH_FIND_SQL, &[SqlValue::Blob(digest.to_vec())])?;
        let mut rows = stmt.raw_query();
        match rows.next()? {
            Some(r) => Some((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            None => None,
        }
    };
    let Some((token_id, grant_id)) = found else {
        return Ok(None);
    };
    execute(
        tx,
        GRANT_LOCK_SQL,
        &[at_param.clone(), SqlValue::Integer(grant_id)],
    )?;
    let state = {
        let mut stmt = prepare(tx, REFRESH_STATE_SQL, &[SqlValue::Integer(token_id)])?;
        let mut rows = stmt.raw_query();
        let r = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        RefreshState {
            grant_id: r.get(0)?,
            client_id: r.get(1)?,
            grant_scope: r.get(2)?,
            grant_revoked_at: opt_time_at(r, 3)?,
            revoked_at: opt_time_at(r, 4)?,
            expires_at: time_at(r, 5)?,
            rotated_at: opt_time_at(r, 6)?,
            authorizer_is_admin: r.get(7)?,
        }
    };
    match plan(&state) {
        // Change nothing, not even the grant's last use.
        RefreshPlan::Refuse(e) => {
            tx.rollback();
            Ok(Some(Err(e)))
        }
        RefreshPlan::EndGrant(e) => {
            execute(
                tx,
                END_GRANT_REUSED_SQL,
                &[at_param, SqlValue::Integer(grant_id)],
            )?;
            Ok(Some(Err(e)))
        }
        RefreshPlan::Issue { scope } => {
            execute(
                tx,
                ROTATE_SQL,
                &[at_param.clone(), SqlValue::Integer(grant_id)],
            )?;
            for (kind, digest, expires_at) in [
                ("access", &tokens.access_digest, tokens.access_expires_at),
                ("refresh", &tokens.refresh_digest, tokens.refresh_expires_at),
            ] {
                execute(
                    tx,
                    INSERT_TOKEN,
                    &[
                        SqlValue::Integer(grant_id),
                        SqlValue::Text(kind.to_owned()),
                        SqlValue::Blob(digest.clone()),
                        SqlValue::Text(scope.clone()),
                        at_param.clone(),
                        fast::value(&Bind::Time(expires_at)),
                    ],
                )?;
            }
            Ok(Some(Ok(Issued { grant_id, scope })))
        }
    }
}

/// A stored token with its grant, client and workspace: for bearer authentication,
/// introspection and revocation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredToken {
    pub id: i64,
    pub grant_id: i64,
    pub kind: String,
    pub scope: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub grant_revoked_at: Option<OffsetDateTime>,
    pub grant_last_used_at: Option<OffsetDateTime>,
    pub client_id: String,
    pub client_name: String,
    pub member_id: Uuid,
    pub workspace_id: i64,
    pub subdomain: String,
    pub workspace_name: String,
    pub scim_enabled: bool,
    pub password_signin: bool,
    pub workspace_created_at: OffsetDateTime,
    /// The member who authorized the grant is still an active admin.
    pub authorizer_is_admin: bool,
}

impl StoredToken {
    /// The grant's workspace, as read with the token (no second query).
    pub fn workspace(&self) -> super::workspaces::Workspace {
        super::workspaces::Workspace {
            id: self.workspace_id,
            subdomain: self.subdomain.clone(),
            name: self.workspace_name.clone(),
            scim_enabled: self.scim_enabled,
            password_signin: self.password_signin,
            created_at: self.workspace_created_at,
        }
    }

    /// Neither the token nor its grant was revoked, and the member who authorized
    /// the grant is still an active admin. (Deactivating or demoting them revokes
    /// the grant in the same transaction; this also covers a grant redeemed in the
    /// moment between.)
    pub fn live(&self) -> bool {
        self.revoked_at.is_none() && self.grant_revoked_at.is_none() && self.authorizer_is_admin
    }
}

pub async fn token(db: &Db, digest: &[u8]) -> Result<Option<StoredToken>> {
    if let Some(fast) = db.fast() {
        return fast.with(|c| {
            use super::fast::{opt_time_at, time_at, uuid_at};
            use rusqlite::OptionalExtension;
            c.prepare_cached(TOKEN_SQL)?
                .query_row([digest], |r| {
                    Ok(StoredToken {
                        id: r.get(0)?,
                        grant_id: r.get(1)?,
                        kind: r.get(2)?,
                        scope: r.get(3)?,
                        issued_at: time_at(r, 4)?,
                        expires_at: time_at(r, 5)?,
                        rotated_at: opt_time_at(r, 6)?,
                        revoked_at: opt_time_at(r, 7)?,
                        grant_revoked_at: opt_time_at(r, 8)?,
                        grant_last_used_at: opt_time_at(r, 9)?,
                        client_id: r.get(10)?,
                        client_name: r.get(11)?,
                        member_id: uuid_at(r, 12)?,
                        workspace_id: r.get(13)?,
                        subdomain: r.get(14)?,
                        workspace_name: r.get(15)?,
                        scim_enabled: r.get(16)?,
                        password_signin: r.get(17)?,
                        workspace_created_at: time_at(r, 18)?,
                        authorizer_is_admin: r.get(19)?,
                    })
                })
                .optional()
        });
    }
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, StoredToken>(TOKEN_SQL)
            .bind(digest)
            .fetch_optional(p)
            .await
    })?)
}

/// How stale a grant's `last_used_at` may get before an API call writes it again.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// Note that a grant's access token was used (at most once a minute).
pub async fn touch_grant(db: &Db, t: &StoredToken) -> Result<()> {
    let at = now();
    if t.grant_last_used_at
        .is_none_or(|last| at - last > TOUCH_EVERY)
    {
        on_pool!(db.writer(), |p| {
            sqlx::query(TOUCH_GRANT_SQL)
                .bind(at)
                .bind(t.grant_id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Revoke one token.
pub async fn revoke_token(db: &Db, token_id: i64) -> Result<()> {
    on_pool!(db.writer(), |p| {
        sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(token_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// End a grant at its client's request (RFC 7009): every token issued from it
/// stops working.
pub async fn end_grant(db: &Db, grant_id: i64) -> Result<()> {
    on_pool!(db.writer(), |p| {
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'client' \
             WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(grant_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// A grant as a workspace admin sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantSummary {
    pub id: i64,
    pub client_id: String,
    pub client_name: String,
    pub member_id: Uuid,
    /// The member who authorized it.
    pub member_user_name: String,
    pub scope: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it ended: `deactivated`, `demoted` (the authorizing member), `revoked`
    /// (an admin), `client` (the app itself), `reused` (a replayed code or token).
    pub ended_reason: Option<String>,
}

const GRANT_SUMMARY_SQL: &str = "SELECT g.id, g.client_id, c.name AS client_name, g.member_id, \
     m.user_name AS member_user_name, g.scope, g.created_at, g.last_used_at, \
     g.revoked_at, g.ended_reason \
     FROM oauth_grants g JOIN oauth_clients c ON c.id = g.client_id \
     JOIN members m ON m.id = g.member_id WHERE g.workspace_id = $1";

/// The workspace's grants that have not been revoked, newest first.
pub async fn list_grants(db: &Db, workspace_id: i64) -> Result<Vec<GrantSummary>> {
    let sql = format!("{GRANT_SUMMARY_SQL} AND g.revoked_at IS NULL ORDER BY g.id DESC");
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, GrantSummary>(&sql)
            .bind(workspace_id)
            .fetch_all(p)
            .await
    })?)
}

/// The workspace's most recently ended grants (at most `limit`), newest first.
pub async fn ended_grants(db: &Db, workspace_id: i64, limit: i64) -> Result<Vec<GrantSummary>> {
    let sql = format!(
        "{GRANT_SUMMARY_SQL} AND g.revoked_at IS NOT NULL ORDER BY g.revoked_at DESC, g.id DESC LIMIT $2"
    );
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, GrantSummary>(&sql)
            .bind(workspace_id)
            .bind(limit)
            .fetch_all(p)
            .await
    })?)
}

/// Revoke one of the workspace's grants and so all its tokens.
pub async fn revoke_grant(db: &Db, workspace_id: i64, grant_id: i64) -> Result<()> {
    let done = on_pool!(db.writer(), |p| {
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'revoked' \
             WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(workspace_id)
        .bind(grant_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Live refresh tokens that are the newest of their grant: one per live family.
pub async fn newest_refresh_tokens(db: &Db, grant_id: i64) -> Result<i64> {
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM oauth_tokens WHERE grant_id = $1 AND kind = 'refresh' \
             AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(grant_id)
        .fetch_one(p)
        .await
    })?)
}

/// Delete codes and tokens that expired more than a day ago (used codes are kept
/// that long so a late replay still ends its grant).
pub async fn delete_expired(db: &Db) -> Result<u64> {
    let before = now() - time::Duration::days(1);
    let mut done = 0;
    for sql in [
        "DELETE FROM oauth_codes WHERE expires_at < $1",
        "DELETE FROM oauth_tokens WHERE expires_at < $1",
    ] {
        done += on_pool!(db.writer(), |p| {
            sqlx::query(sql)
                .bind(before)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    Ok(done)
}
