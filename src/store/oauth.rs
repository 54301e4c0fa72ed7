//! OAuth2 state: clients, authorization codes, grants and their tokens. Secrets are
//! stored as SHA-256 digests only. The rules (what a presentation may do) live in
//! `crate::oauth`; the functions here carry them out atomically.
//!
//! A grant is one authorization of a client for a workspace by a member: the code
//! redeemed for it, and the family of access and refresh tokens issued from it.
//! Ending a grant ends every token in it: token lookups join the grant.

use super::refresh_batch::Refreshed;
use super::sql::{FromRow, Row, Sql, sql};
use super::{Db, Engine, Result, StoreError, now};
use sqlx::types::Json;
use std::sync::Arc;
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

/// The columns of a `RefreshState` (`t` the token, `g` its grant, `m` the member
/// who authorized it) ...
macro_rules! refresh_state_columns {
    () => {
        "SELECT g.id AS grant_id, g.client_id, g.scope AS grant_scope, \
         g.revoked_at AS grant_revoked_at, t.revoked_at, t.expires_at, t.rotated_at, \
         (m.active AND m.role = 'admin') AS authorizer_is_admin"
    };
}
/// ... and the token's grant and member, joined to the token `t`.
macro_rules! refresh_state_joins {
    () => {
        "JOIN oauth_grants g ON g.id = t.grant_id JOIN members m ON m.id = g.member_id"
    };
}
pub(crate) const REFRESH_STATE_COLUMNS: &str = refresh_state_columns!();
pub(crate) const REFRESH_STATE_JOINS: &str = refresh_state_joins!();

/// A refresh token and its grant, by the token's digest.
pub(crate) const REFRESH_STATE_SQL: &str = concat!(
    refresh_state_columns!(),
    " FROM oauth_tokens t ",
    refresh_state_joins!(),
    " WHERE t.digest = $1 AND t.kind = 'refresh'"
);

/// Lock the grant of a refresh token, found by the token's digest (and note it
/// used), before deciding a refresh; the grant's id. Finding and locking are one
/// statement: each statement is a round trip on PostgreSQL.
pub(crate) const REFRESH_LOCK_SQL: &str = "UPDATE oauth_grants SET last_used_at = $1 WHERE id = \
             (SELECT grant_id FROM oauth_tokens WHERE digest = $2 AND kind = 'refresh') RETURNING id";

/// Note a grant used.
pub(crate) const GRANT_LOCK_SQL: &str = "UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2";

/// End a grant because one of its codes or replaced refresh tokens was replayed.
pub(crate) const END_GRANT_REUSED_SQL: &str = "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'reused' \
     WHERE id = $2 AND revoked_at IS NULL";

/// Note a grant used.
pub(crate) const TOUCH_GRANT_SQL: &str = GRANT_LOCK_SQL;

/// An OAuth token with its grant, client and workspace, by digest. A grant without
/// a member (client credentials) has no authorizer to lose.
pub(crate) const TOKEN_SQL: &str = "SELECT t.id, t.grant_id, t.kind, t.scope, t.issued_at, t.expires_at, t.rotated_at, \
             t.revoked_at, g.revoked_at AS grant_revoked_at, g.last_used_at AS grant_last_used_at, \
             g.ends_at AS grant_ends_at, g.secret_generation AS grant_generation, \
             c.secret_generation AS client_generation, \
             c.previous_secret_expires_at AS client_previous_secret_expires_at, \
             g.client_id, c.name AS client_name, \
             c.workspace_id AS client_workspace_id, c.deleted_at AS client_deleted_at, \
             g.member_id, g.workspace_id, w.subdomain, \
             w.name AS workspace_name, w.scim_enabled, w.scim_teams, w.password_signin, \
             w.created_at AS workspace_created_at, \
             CASE WHEN g.member_id IS NULL THEN TRUE ELSE (m.active AND m.role = 'admin') END \
             AS authorizer_is_admin \
             FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             JOIN oauth_clients c ON c.id = g.client_id JOIN workspaces w ON w.id = g.workspace_id \
             LEFT JOIN members m ON m.id = g.member_id \
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
    /// The workspace a workspace client belongs to; None for a global client.
    pub workspace_id: Option<i64>,
    /// Allowed grants, space-separated (`authorization_code`, `client_credentials`).
    pub grant_types: String,
    /// Counts the client's secrets: 1 for the first, +1 at each rotation.
    pub secret_generation: i64,
    /// The secret a rotation replaced, and until when it still works.
    pub previous_secret_digest: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Who registered it (an admin's email, or `cli`).
    pub created_by: Option<String>,
}

impl FromRow for Client {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let uris: Json<Vec<String>> = r.get("redirect_uris")?;
        Ok(Client {
            id: r.get("id")?,
            name: r.get("name")?,
            public: r.get("public")?,
            secret_digest: r.get("secret_digest")?,
            redirect_uris: uris.0,
            scopes: r.get("scopes")?,
            created_at: r.get("created_at")?,
            workspace_id: r.get("workspace_id")?,
            grant_types: r.get("grant_types")?,
            secret_generation: r.get("secret_generation")?,
            previous_secret_digest: r.get("previous_secret_digest")?,
            previous_secret_expires_at: r.get("previous_secret_expires_at")?,
            created_by: r.get("created_by")?,
        })
    }
}

const CLIENT_COLUMNS: &str = "id, name, public, secret_digest, redirect_uris, scopes, created_at, \
     workspace_id, grant_types, secret_generation, previous_secret_digest, \
     previous_secret_expires_at, created_by";

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// None: a public client.
    pub secret_digest: Option<&'a [u8]>,
    pub redirect_uris: &'a [String],
    pub scopes: &'a str,
    pub grant_types: &'a str,
    pub workspace_id: Option<i64>,
    pub created_by: Option<&'a str>,
}

pub async fn create_client(db: &Db, c: &NewClient<'_>) -> Result<Client> {
    let q = sql(format!(
        "INSERT INTO oauth_clients (id, name, public, secret_digest, redirect_uris, scopes, \
         created_at, workspace_id, grant_types, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {CLIENT_COLUMNS}"
    ))
    .bind(c.id)
    .bind(c.name)
    .bind(c.secret_digest.is_none())
    .bind(c.secret_digest)
    .bind(serde_json::json!(c.redirect_uris))
    .bind(c.scopes)
    .bind(now())
    .bind(c.workspace_id)
    .bind(c.grant_types)
    .bind(c.created_by);
    let id = c.id;
    db.write_one(q)
        .await
        .map_err(|e| match super::unique_violation(&e) {
            Some(_) => StoreError::Conflict(format!("client '{id}' already exists")),
            None => e,
        })
}

pub(crate) fn client_sql() -> String {
    format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1 AND deleted_at IS NULL")
}

/// A client that was not deleted. Every token, revocation and introspection
/// request authenticates its client, so on PostgreSQL a client this process found
/// is kept with the live tokens (`auth_cache`): a secret rotated or a client
/// deleted makes every process forget it, as it does the tokens.
pub async fn client(db: &Db, id: &str) -> Result<Option<Client>> {
    use super::auth_cache::Found;
    if !super::storable(id) {
        return Ok(None);
    }
    let key = [b"client:", id.as_bytes()].concat();
    db.through_auth_cache(
        &key,
        |f| match f {
            Found::Client(c) => Some(c.clone()),
            _ => None,
        },
        db.read_optional(sql(client_sql()).bind(id)),
        |c| Some(Found::Client(c.clone())),
    )
    .await
}

/// A client as a list shows it: with its workspace's subdomain.
#[derive(Debug, Clone)]
pub struct ListedClient {
    pub client: Client,
    pub subdomain: Option<String>,
}

impl FromRow for ListedClient {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(ListedClient {
            client: Client::from_row(r)?,
            subdomain: r.get("subdomain")?,
        })
    }
}

/// The clients of one workspace (`Some`), or every client (`None`), oldest first.
pub async fn list_clients(db: &Db, workspace_id: Option<i64>) -> Result<Vec<ListedClient>> {
    let columns = CLIENT_COLUMNS
        .split(", ")
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let q = sql(format!(
        "SELECT {columns}, w.subdomain FROM oauth_clients c \
         LEFT JOIN workspaces w ON w.id = c.workspace_id \
         WHERE c.deleted_at IS NULL AND ($1 IS NULL OR c.workspace_id = $1) \
         ORDER BY c.created_at, c.id"
    ))
    .bind(workspace_id)
    .slow();
    db.read_all(q).await
}

/// Which clients a change may reach: one workspace's, or any (the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientScope {
    Workspace(i64),
    Any,
}

impl ClientScope {
    fn workspace_id(self) -> Option<i64> {
        match self {
            ClientScope::Workspace(id) => Some(id),
            ClientScope::Any => None,
        }
    }
}

/// Give a confidential client a new secret (its digest). The current one keeps
/// working until `overlap_ends`; the one before it (of an earlier rotation) stops
/// now. Client-credentials grants follow their secret: the replaced secret's grant
/// ends when the overlap does, older ones at once. `NotFound`: no such
/// confidential client in `scope`.
pub async fn rotate_secret(
    db: &Db,
    scope: ClientScope,
    client_id: &str,
    new_digest: &[u8],
    overlap_ends: OffsetDateTime,
) -> Result<Client> {
    if !super::storable(client_id) {
        return Err(StoreError::NotFound);
    }
    let at = now();
    let rotate = sql(format!(
        "UPDATE oauth_clients SET previous_secret_digest = secret_digest, \
         previous_secret_expires_at = $1, secret_digest = $2, \
         secret_generation = secret_generation + 1 \
         WHERE id = $3 AND deleted_at IS NULL AND NOT public AND ($4 IS NULL OR workspace_id = $4) \
         RETURNING {CLIENT_COLUMNS}"
    ))
    .bind(overlap_ends)
    .bind(new_digest.to_vec())
    .bind(client_id)
    .bind(scope.workspace_id());
    let grants = move |c: &Client| {
        let replaced = c.secret_generation - 1;
        [
            sql(
                "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'rotated' \
                 WHERE client_id = $2 AND member_id IS NULL AND revoked_at IS NULL \
                 AND secret_generation < $3",
            )
            .bind(at)
            .bind(c.id.clone())
            .bind(replaced),
            sql(
                "UPDATE oauth_grants SET ends_at = $1, ended_reason = 'rotated' \
                 WHERE client_id = $2 AND member_id IS NULL AND revoked_at IS NULL \
                 AND secret_generation = $3",
            )
            .bind(overlap_ends)
            .bind(c.id.clone())
            .bind(replaced),
        ]
    };
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                let c: Client = rotate.lite_optional(tx)?.ok_or(StoreError::NotFound)?;
                for q in grants(&c) {
                    q.lite_execute(tx)?;
                }
                Ok(c)
            })
            .await
        }
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            let c: Client = rotate
                .pg_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            for q in grants(&c) {
                q.pg_execute(&mut *tx).await?;
            }
            tx.commit().await?;
            db.auth_changed();
            Ok(c)
        }
    }
}

/// Delete a client: it is never found again, and every grant and token it holds
/// ends now. (The row stays: grants, codes and tokens refer to it.) `NotFound`: no
/// such client in `scope`.
pub async fn delete_client(db: &Db, scope: ClientScope, client_id: &str) -> Result<Client> {
    if !super::storable(client_id) {
        return Err(StoreError::NotFound);
    }
    let at = now();
    let delete = sql(format!(
        "UPDATE oauth_clients SET deleted_at = $1, secret_digest = NULL, \
         previous_secret_digest = NULL \
         WHERE id = $2 AND deleted_at IS NULL AND ($3 IS NULL OR workspace_id = $3) \
         RETURNING {CLIENT_COLUMNS}"
    ))
    .bind(at)
    .bind(client_id)
    .bind(scope.workspace_id());
    let end = sql(
        "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'deleted' \
         WHERE client_id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(client_id);
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                let c: Client = delete.lite_optional(tx)?.ok_or(StoreError::NotFound)?;
                end.lite_execute(tx)?;
                Ok(c)
            })
            .await
        }
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            let c: Client = delete
                .pg_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            end.pg_execute(&mut *tx).await?;
            tx.commit().await?;
            db.auth_changed();
            Ok(c)
        }
    }
}

/// Open the client-credentials grant of a workspace client's secret `generation`,
/// unless it is open. (One row of VALUES: an INSERT ... SELECT would make SQLite
/// look for orphaned codes of the new grant with a scan of oauth_codes.)
pub(crate) const CLIENT_GRANT_SQL: &str = "INSERT INTO oauth_grants (client_id, workspace_id, scope, \
     created_at, last_used_at, secret_generation, ends_at, ended_reason) \
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7) \
     ON CONFLICT (client_id, secret_generation) WHERE member_id IS NULL AND revoked_at IS NULL \
     DO NOTHING";

/// The live client-credentials grant of a client's secret, while the client exists:
/// its id and last use. Read without a lock: every token of the client goes into this
/// one grant, and an UPDATE per token locked its row until the token's commit, so on
/// PostgreSQL all of a client's token requests queued on it (32 connections: p99 61
/// ms); a shared lock would let a steady stream of token requests starve the UPDATE
/// that ends the grant. None is needed: a token issued into a grant that a deletion
/// or rotation ends in the same moment is refused at its first use, which reads the
/// grant and the client row (`StoredToken::live`), like every token.
pub(crate) const CLIENT_GRANT_USE_SQL: &str = "SELECT id, last_used_at FROM oauth_grants \
     WHERE client_id = $1 AND secret_generation = $2 AND member_id IS NULL AND revoked_at IS NULL \
     AND EXISTS (SELECT 1 FROM oauth_clients c WHERE c.id = $1 AND c.deleted_at IS NULL)";

/// The live client-credentials grant, as [`CLIENT_GRANT_USE_SQL`] reads it.
struct LiveGrant {
    id: i64,
    last_used_at: Option<OffsetDateTime>,
}
crate::from_row!(LiveGrant { id, last_used_at });

/// An access token for a workspace client itself (client credentials): in the
/// live grant of the secret it authenticated with (`generation`: the current one,
/// or the one a rotation replaced, whose grant ends with the overlap), opened if
/// there is none. `None`: the client was deleted meanwhile.
pub async fn issue_client_token(
    db: &Db,
    client: &Client,
    generation: i64,
    scope: &str,
    access_digest: &[u8],
    expires_at: OffsetDateTime,
) -> Result<Option<i64>> {
    let at = now();
    let replaced = generation < client.secret_generation;
    let open = sql(CLIENT_GRANT_SQL)
        .bind(client.id.clone())
        .bind(client.workspace_id)
        .bind(client.scopes.clone())
        .bind(at)
        .bind(generation)
        .bind(client.previous_secret_expires_at.filter(|_| replaced))
        .bind(replaced.then_some("rotated"));
    let use_grant = sql(CLIENT_GRANT_USE_SQL)
        .bind(client.id.clone())
        .bind(generation);
    // The grant's last use is written at most once a minute (as for API tokens).
    let touch = move |grant: &LiveGrant| {
        grant
            .last_used_at
            .is_none_or(|last| at - last > TOUCH_EVERY)
            .then(|| sql(TOUCH_GRANT_SQL).bind(at).bind(grant.id))
    };
    let (scope, digest) = (scope.to_owned(), access_digest.to_vec());
    let token = move |grant_id: i64| {
        sql(INSERT_TOKEN)
            .bind(grant_id)
            .bind("access")
            .bind(digest)
            .bind(scope)
            .bind(at)
            .bind(expires_at)
    };
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                open.lite_execute(tx)?;
                let Some(grant) = use_grant.lite_optional::<LiveGrant>(tx)? else {
                    return Ok(None);
                };
                if let Some(q) = touch(&grant) {
                    q.lite_execute(tx)?;
                }
                token(grant.id).lite_execute(tx)?;
                Ok(Some(grant.id))
            })
            .await
        }
        // No transaction: each statement commits on its own, and none needs the
        // others' atomicity. The grant is opened only when there is none (once per
        // secret); a grant ended between the read and the token's insert ends the
        // token with it at its first use, as above. So the usual request is two
        // round trips (read the grant, insert the token), not five.
        Engine::Postgres(p) => {
            let grant = match p.optional::<LiveGrant>(&use_grant).await? {
                Some(grant) => grant,
                None => {
                    p.execute(&open).await?;
                    match p.optional::<LiveGrant>(&use_grant).await? {
                        Some(grant) => grant,
                        None => return Ok(None),
                    }
                }
            };
            p.execute(&token(grant.id)).await?;
            // On its own (the row lock it takes is held for one statement), and
            // best effort: the token is issued.
            if let Some(q) = touch(&grant)
                && let Err(e) = p.execute(&q).await
            {
                tracing::warn!(error = %e, grant = grant.id, "could not note a client-credentials grant used");
            }
            Ok(Some(grant.id))
        }
    }
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
    db.execute(sql("INSERT INTO oauth_codes (digest, client_id, workspace_id, member_id, redirect_uri, \
             scope, code_challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",)
        .bind(c.digest)
        .bind(c.client_id)
        .bind(c.workspace_id)
        .bind(c.member_id)
        .bind(c.redirect_uri)
        .bind(c.scope)
        .bind(c.code_challenge)
        .bind(now())
        .bind(c.expires_at))
        .await?;
    Ok(())
}

/// A code as it was issued, handed to the caller's check when it is redeemed.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub workspace_id: i64,
    pub member_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub expires_at: OffsetDateTime,
    /// The member who consented is still an active admin.
    pub authorizer_is_admin: bool,
}

impl FromRow for Code {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Code {
            client_id: r.get("client_id")?,
            workspace_id: r.get("workspace_id")?,
            member_id: r.get("member_id")?,
            redirect_uri: r.get("redirect_uri")?,
            scope: r.get("scope")?,
            code_challenge: r.get("code_challenge")?,
            expires_at: r.get("expires_at")?,
            authorizer_is_admin: false,
        })
    }
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

/// A new access and refresh token pair, in one statement.
macro_rules! insert_token_pair {
    () => {
        "INSERT INTO oauth_tokens (grant_id, kind, digest, scope, issued_at, expires_at) \
         VALUES ($1, 'access', $2, $3, $4, $5), ($1, 'refresh', $6, $3, $4, $7)"
    };
}
const INSERT_TOKEN_PAIR: &str = insert_token_pair!();

/// `ROTATE_AND_ISSUE_PG` for this grant and pair.
pub(crate) fn rotate_and_issue_pg(
    grant_id: i64,
    scope: &str,
    tokens: &NewTokens,
    at: OffsetDateTime,
) -> Sql {
    pair_binds(sql(ROTATE_AND_ISSUE_PG), grant_id, scope, tokens, at)
}

/// A refresh on PostgreSQL: the family's live refresh token marked rotated (as
/// `ROTATE_SQL`) and the new pair inserted, in one statement (each statement is a
/// round trip there). Both parts see the statement's one snapshot, so the UPDATE
/// never touches the pair the INSERT adds.
pub(crate) const ROTATE_AND_ISSUE_PG: &str = concat!(
    "WITH rotated AS (UPDATE oauth_tokens SET rotated_at = $4 WHERE grant_id = $1 \
     AND kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL) ",
    insert_token_pair!()
);

/// Redeem a code, once. Marking it used is a conditional UPDATE, so of two racing
/// redemptions exactly one gets it; the other (and any later one) is a replay and
/// ends the grant, in the same transaction that looked. `check` decides whether this
/// presentation may have it (client, redirect URI, PKCE, expiry).
pub async fn redeem_code<E: Send + 'static>(
    db: &Db,
    digest: &[u8],
    client_id: &str,
    tokens: &NewTokens,
    check: impl FnOnce(&Code) -> std::result::Result<(), E> + Send + 'static,
) -> Result<Redeemed<E>> {
    let at = now();
    let plan = Redemption::new(digest, client_id, tokens, at);
    match db.engine() {
        Engine::Sqlite(s) => s.write(move |tx| plan.lite_redeem(tx, check)).await,
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            let Some(mut code) = plan.claim().pg_optional::<Code>(&mut *tx).await? else {
                let seen = plan.seen().pg_optional::<Seen>(&mut *tx).await?;
                let Some(grant) = plan.replayed(seen) else {
                    return Ok(Redeemed::Unknown);
                };
                if let Some(end) = grant {
                    end.pg_execute(&mut *tx).await?;
                }
                tx.commit().await?;
                db.auth_changed();
                return Ok(Redeemed::Replayed);
            };
            code.authorizer_is_admin = authorizer(code.member_id)
                .pg_optional::<Authorizer>(&mut *tx)
                .await?
                .is_some_and(|a| a.is_admin());
            if let Err(e) = check(&code) {
                tx.commit().await?;
                return Ok(Redeemed::Refused(e));
            }
            let grant_id: i64 = plan.new_grant(&code).pg_one(&mut *tx).await?;
            for q in plan.issue(grant_id, &code.scope) {
                q.pg_execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Redeemed::Issued(Issued {
                grant_id,
                scope: code.scope,
            }))
        }
    }
}

/// The owner of a code looked up after a failed claim.
struct Seen {
    grant_id: Option<i64>,
    client_id: String,
}
crate::from_row!(Seen {
    grant_id,
    client_id
});

/// The member who consented, as a code's redemption checks them.
struct Authorizer {
    active: bool,
    role: String,
}
crate::from_row!(Authorizer { active, role });

impl Authorizer {
    fn is_admin(&self) -> bool {
        self.active && self.role == "admin"
    }
}

fn authorizer(member_id: Uuid) -> Sql {
    sql("SELECT active, role FROM members WHERE id = $1").bind(member_id)
}

/// The statements of one code redemption.
#[derive(Clone)]
struct Redemption {
    digest: Vec<u8>,
    client_id: String,
    tokens: NewTokens,
    at: OffsetDateTime,
}

impl Redemption {
    fn new(digest: &[u8], client_id: &str, tokens: &NewTokens, at: OffsetDateTime) -> Self {
        Redemption {
            digest: digest.to_vec(),
            client_id: client_id.to_owned(),
            tokens: tokens.clone(),
            at,
        }
    }

    fn claim(&self) -> Sql {
        sql(REDEEM_CODE_SQL)
            .bind(self.at)
            .bind(&self.digest)
            .bind(&self.client_id)
    }

    fn seen(&self) -> Sql {
        sql("SELECT grant_id, client_id FROM oauth_codes WHERE digest = $1").bind(&self.digest)
    }

    /// After a failed claim: `None` when the code is unknown to this client (another
    /// client's code is no code at all: it neither learns that it exists nor ends
    /// the grant issued from it); else a replay, and the statement ending the
    /// grant issued from the code, if one was.
    fn replayed(&self, seen: Option<Seen>) -> Option<Option<Sql>> {
        let seen = seen.filter(|s| s.client_id == self.client_id)?;
        Some(
            seen.grant_id
                .map(|g| sql(END_GRANT_REUSED_SQL).bind(self.at).bind(g)),
        )
    }

    fn new_grant(&self, code: &Code) -> Sql {
        sql("INSERT INTO oauth_grants (client_id, workspace_id, member_id, scope, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
        .bind(&code.client_id)
        .bind(code.workspace_id)
        .bind(code.member_id)
        .bind(&code.scope)
        .bind(self.at)
    }

    /// Link the code to its grant, and the grant's first access and refresh tokens.
    fn issue(&self, grant_id: i64, scope: &str) -> Vec<Sql> {
        let mut statements = vec![
            sql("UPDATE oauth_codes SET grant_id = $1 WHERE digest = $2")
                .bind(grant_id)
                .bind(&self.digest),
        ];
        statements.push(token_pair(grant_id, scope, &self.tokens, self.at));
        statements
    }

    /// `redeem_code` on SQLite, on the write thread: the same statements.
    fn lite_redeem<E>(
        &self,
        tx: &super::sqlite::Tx<'_>,
        check: impl FnOnce(&Code) -> std::result::Result<(), E>,
    ) -> Result<Redeemed<E>> {
        let Some(mut code) = self.claim().lite_optional::<Code>(tx)? else {
            let seen = self.seen().lite_optional::<Seen>(tx)?;
            let Some(grant) = self.replayed(seen) else {
                return Ok(Redeemed::Unknown);
            };
            if let Some(end) = grant {
                end.lite_execute(tx)?;
            }
            return Ok(Redeemed::Replayed);
        };
        code.authorizer_is_admin = authorizer(code.member_id)
            .lite_optional::<Authorizer>(tx)?
            .is_some_and(|a| a.is_admin());
        if let Err(e) = check(&code) {
            // The code is used up all the same: commit the claim.
            return Ok(Redeemed::Refused(e));
        }
        let grant_id: i64 = self.new_grant(&code).lite_one(tx)?;
        for q in self.issue(grant_id, &code.scope) {
            q.lite_execute(tx)?;
        }
        Ok(Redeemed::Issued(Issued {
            grant_id,
            scope: code.scope,
        }))
    }
}

/// The access and refresh token rows of a new pair.
fn token_pair(grant_id: i64, scope: &str, tokens: &NewTokens, at: OffsetDateTime) -> Sql {
    pair_binds(sql(INSERT_TOKEN_PAIR), grant_id, scope, tokens, at)
}

/// The binds of `INSERT_TOKEN_PAIR` (and of statements that end with it).
fn pair_binds(q: Sql, grant_id: i64, scope: &str, tokens: &NewTokens, at: OffsetDateTime) -> Sql {
    q.bind(grant_id)
        .bind(&tokens.access_digest)
        .bind(scope)
        .bind(at)
        .bind(tokens.access_expires_at)
        .bind(&tokens.refresh_digest)
        .bind(tokens.refresh_expires_at)
}

/// A refresh token and its grant, read under the grant's lock.
#[derive(Debug, Clone)]
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

crate::from_row!(RefreshState {
    grant_id,
    client_id,
    grant_scope,
    grant_revoked_at,
    revoked_at,
    expires_at,
    rotated_at,
    authorizer_is_admin
});

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
    plan: impl Fn(&RefreshState) -> RefreshPlan<E> + Send + Sync + 'static,
) -> Result<Option<std::result::Result<Issued, E>>> {
    let at = now();
    let (digest, tokens) = (digest.to_vec(), tokens.clone());
    match db.engine() {
        Engine::Sqlite(s) => {
            let lock = sql(REFRESH_LOCK_SQL).bind(at).bind(digest.clone());
            let state = sql(REFRESH_STATE_SQL).bind(digest);
            s.write(move |tx| {
                let Some(grant_id) = lock.lite_optional::<i64>(tx)? else {
                    return Ok(None);
                };
                // Housekeeping may have deleted the (long expired) token since
                // the lock found it: unknown now, like any other.
                let Some(state) = state.lite_optional::<RefreshState>(tx)? else {
                    tx.rollback();
                    return Ok(None);
                };
                match plan(&state) {
                    // Change nothing, not even the grant's last use.
                    RefreshPlan::Refuse(e) => {
                        tx.rollback();
                        Ok(Some(Err(e)))
                    }
                    RefreshPlan::EndGrant(e) => {
                        sql(END_GRANT_REUSED_SQL)
                            .bind(at)
                            .bind(grant_id)
                            .lite_execute(tx)?;
                        Ok(Some(Err(e)))
                    }
                    RefreshPlan::Issue { scope } => {
                        sql(ROTATE_SQL).bind(at).bind(grant_id).lite_execute(tx)?;
                        token_pair(grant_id, &scope, &tokens, at).lite_execute(tx)?;
                        Ok(Some(Ok(Issued { grant_id, scope })))
                    }
                }
            })
            .await
        }
        Engine::Postgres(p) => {
            // In a batch with other presentations (see `refresh_batch`); the
            // caller's reason for a refusal is kept here.
            let refusal = Arc::new(std::sync::Mutex::new(None));
            let reason = refusal.clone();
            let keep = move |e: E| {
                *reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            };
            let plan: super::refresh_batch::Plan = Box::new(move |state| match plan(state) {
                RefreshPlan::Issue { scope } => RefreshPlan::Issue { scope },
                RefreshPlan::Refuse(e) => {
                    keep(e);
                    RefreshPlan::Refuse(())
                }
                RefreshPlan::EndGrant(e) => {
                    keep(e);
                    RefreshPlan::EndGrant(())
                }
            });
            let refreshed = db.refreshes.refresh(p, digest, tokens, at, plan).await?;
            let reason = || {
                refusal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or_else(|| StoreError::Decode("a refused refresh left no reason".into()))
            };
            match refreshed {
                None => Ok(None),
                Some(Refreshed::Issued(issued)) => Ok(Some(Ok(issued))),
                Some(Refreshed::Refused) => Ok(Some(Err(reason()?))),
                Some(Refreshed::Ended) => {
                    db.auth_changed();
                    Ok(Some(Err(reason()?)))
                }
            }
        }
    }
}

/// A stored token with its grant, client and workspace: for bearer authentication,
/// introspection and revocation.
#[derive(Debug, Clone)]
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
    /// When the grant ends by itself (a rotated secret's client-credentials grant).
    pub grant_ends_at: Option<OffsetDateTime>,
    /// Which of the client's secrets opened a client-credentials grant (None: a
    /// member's grant).
    pub grant_generation: Option<i64>,
    /// The client's current secret, and when its predecessor stops working.
    pub client_generation: i64,
    pub client_previous_secret_expires_at: Option<OffsetDateTime>,
    pub client_id: String,
    pub client_name: String,
    /// The workspace of a workspace client (None: a global client).
    pub client_workspace_id: Option<i64>,
    pub client_deleted_at: Option<OffsetDateTime>,
    /// The member who authorized the grant; None for client credentials.
    pub member_id: Option<Uuid>,
    pub workspace_id: i64,
    pub subdomain: String,
    pub workspace_name: String,
    pub scim_enabled: bool,
    pub scim_teams: bool,
    pub password_signin: bool,
    pub workspace_created_at: OffsetDateTime,
    /// The member who authorized the grant is still an active admin.
    pub authorizer_is_admin: bool,
}

crate::from_row!(StoredToken {
    id,
    grant_id,
    kind,
    scope,
    issued_at,
    expires_at,
    rotated_at,
    revoked_at,
    grant_revoked_at,
    grant_last_used_at,
    grant_ends_at,
    grant_generation,
    client_generation,
    client_previous_secret_expires_at,
    client_id,
    client_name,
    client_workspace_id,
    client_deleted_at,
    member_id,
    workspace_id,
    subdomain,
    workspace_name,
    scim_enabled,
    scim_teams,
    password_signin,
    workspace_created_at,
    authorizer_is_admin
});

impl StoredToken {
    /// A client-credentials grant lives only while the secret that opened it works:
    /// the client's current one, or the one before it until the overlap ends. Read
    /// from the client row at every use, so a grant opened with a secret rotated away
    /// in the same moment cannot outlive the overlap (its `ends_at`, set at rotation,
    /// could have missed it).
    fn secret_still_works(&self) -> bool {
        match self.grant_generation {
            None => true,
            Some(g) if g == self.client_generation => true,
            Some(g) if g == self.client_generation - 1 => self
                .client_previous_secret_expires_at
                .is_some_and(|end| now() < end),
            Some(_) => false,
        }
    }

    /// The grant's workspace, as read with the token (no second query).
    pub fn workspace(&self) -> super::workspaces::Workspace {
        super::workspaces::Workspace {
            id: self.workspace_id,
            subdomain: self.subdomain.clone(),
            name: self.workspace_name.clone(),
            scim_enabled: self.scim_enabled,
            scim_teams: self.scim_teams,
            password_signin: self.password_signin,
            created_at: self.workspace_created_at,
        }
    }

    /// Neither the token nor its grant was revoked or has ended, the member who
    /// authorized the grant is still an active admin, and its client still exists
    /// (and, for a workspace client, is the grant's workspace's own). (Deactivating or
    /// demoting the member revokes the grant in the same transaction, as deleting the
    /// client does; this also covers a grant made in the moment between.)
    pub fn live(&self) -> bool {
        self.revoked_at.is_none()
            && self.grant_revoked_at.is_none()
            && self.grant_ends_at.is_none_or(|end| now() < end)
            && self.secret_still_works()
            && self.authorizer_is_admin
            && self.client_deleted_at.is_none()
            && self
                .client_workspace_id
                .is_none_or(|ws| ws == self.workspace_id)
    }
}

pub async fn token(db: &Db, digest: &[u8]) -> Result<Option<StoredToken>> {
    db.read_optional(sql(TOKEN_SQL).bind(digest)).await
}

/// `token`, for bearer authentication and introspection: a live access token this
/// process found before is not read again (see `auth_cache`). The caller still
/// checks `live()` and the expiry, which can pass with time alone.
pub async fn access_token(db: &Db, digest: &[u8]) -> Result<Option<StoredToken>> {
    use super::auth_cache::Found;
    db.through_auth_cache(
        digest,
        |f| match f {
            Found::OAuth(t) => Some(t.clone()),
            _ => None,
        },
        token(db, digest),
        |t| {
            (t.kind == "access" && t.live() && now() < t.expires_at)
                .then(|| Found::OAuth(t.clone()))
        },
    )
    .await
}

/// How stale a grant's `last_used_at` may get before an API call writes it again.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// Note that a grant's access token was used (at most once a minute).
pub async fn touch_grant(db: &Db, t: &StoredToken) -> Result<()> {
    let at = now();
    if t.grant_last_used_at
        .is_none_or(|last| at - last > TOUCH_EVERY)
    {
        db.execute(sql(TOUCH_GRANT_SQL).bind(at).bind(t.grant_id))
            .await?;
        if let Some(c) = db.auth_cache() {
            // Every kept token of the grant (client credentials share one).
            c.update(|found| match found {
                super::auth_cache::Found::OAuth(kept) if kept.grant_id == t.grant_id => {
                    Some(super::auth_cache::Found::OAuth(StoredToken {
                        grant_last_used_at: Some(at),
                        ..kept.clone()
                    }))
                }
                _ => None,
            });
        }
    }
    Ok(())
}

/// Revoke one token.
pub async fn revoke_token(db: &Db, token_id: i64) -> Result<()> {
    db.execute(
        sql("UPDATE oauth_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(token_id),
    )
    .await?;
    db.auth_changed();
    Ok(())
}

/// End a grant at its client's request (RFC 7009): every token issued from it
/// stops working.
pub async fn end_grant(db: &Db, grant_id: i64) -> Result<()> {
    db.execute(
        sql(
            "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'client' \
             WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(grant_id),
    )
    .await?;
    db.auth_changed();
    Ok(())
}

/// A grant as a workspace admin sees it.
#[derive(Debug, Clone)]
pub struct GrantSummary {
    pub id: i64,
    pub client_id: String,
    pub client_name: String,
    /// The member who authorized it; None for client credentials (the client's own).
    pub member_id: Option<Uuid>,
    pub member_user_name: Option<String>,
    pub scope: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// When it ends by itself (a rotated secret's client-credentials grant).
    pub ends_at: Option<OffsetDateTime>,
    /// Why it ended: `deactivated`, `demoted` (the authorizing member), `revoked`
    /// (an admin), `client` (the app itself), `reused` (a replayed code or token),
    /// `deleted` (the client), `rotated` (the client's secret).
    pub ended_reason: Option<String>,
}

impl GrantSummary {
    /// When it ended or ends, if it has or will by itself.
    pub fn ended_at(&self) -> Option<OffsetDateTime> {
        self.revoked_at.or(self.ends_at)
    }
}

crate::from_row!(GrantSummary {
    id,
    client_id,
    client_name,
    member_id,
    member_user_name,
    scope,
    created_at,
    last_used_at,
    revoked_at,
    ends_at,
    ended_reason
});

const GRANT_SUMMARY_SQL: &str = "SELECT g.id, g.client_id, c.name AS client_name, g.member_id, \
     m.user_name AS member_user_name, g.scope, g.created_at, g.last_used_at, \
     g.revoked_at, g.ends_at, g.ended_reason \
     FROM oauth_grants g JOIN oauth_clients c ON c.id = g.client_id \
     LEFT JOIN members m ON m.id = g.member_id WHERE g.workspace_id = $1";

/// The workspace's grants that have not ended, newest first.
pub async fn list_grants(db: &Db, workspace_id: i64) -> Result<Vec<GrantSummary>> {
    let text = format!(
        "{GRANT_SUMMARY_SQL} AND g.revoked_at IS NULL AND (g.ends_at IS NULL OR g.ends_at > $2) \
         ORDER BY g.id DESC"
    );
    db.read_all::<GrantSummary>(sql(text).bind(workspace_id).bind(now()).slow())
        .await
}

/// The workspace's most recently ended grants (at most `limit`), newest first.
pub async fn ended_grants(db: &Db, workspace_id: i64, limit: i64) -> Result<Vec<GrantSummary>> {
    let text = format!(
        "{GRANT_SUMMARY_SQL} AND (g.revoked_at IS NOT NULL OR g.ends_at <= $3) \
         ORDER BY COALESCE(g.revoked_at, g.ends_at) DESC, g.id DESC LIMIT $2"
    );
    db.read_all::<GrantSummary>(sql(text).bind(workspace_id).bind(limit).bind(now()).slow())
        .await
}

/// Revoke one of the workspace's grants and so all its tokens.
pub async fn revoke_grant(db: &Db, workspace_id: i64, grant_id: i64) -> Result<()> {
    let done = db
        .execute(
            sql(
                "UPDATE oauth_grants SET revoked_at = $1, ended_reason = 'revoked' \
             WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(workspace_id)
            .bind(grant_id),
        )
        .await?;
    db.auth_changed();
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Live refresh tokens that are the newest of their grant: one per live family.
pub async fn newest_refresh_tokens(db: &Db, grant_id: i64) -> Result<i64> {
    db.read_one::<i64>(
        sql(
            "SELECT COUNT(*) FROM oauth_tokens WHERE grant_id = $1 AND kind = 'refresh' \
             AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(grant_id),
    )
    .await
}

/// Delete codes and tokens that expired more than a day ago (used codes are kept
/// that long so a late replay still ends its grant).
pub async fn delete_expired(db: &Db) -> Result<u64> {
    let before = now() - time::Duration::days(1);
    let mut done = 0;
    for text in [
        "DELETE FROM oauth_codes WHERE expires_at < $1",
        "DELETE FROM oauth_tokens WHERE expires_at < $1",
    ] {
        done += db.execute(sql(text).bind(before)).await?;
    }
    Ok(done)
}
