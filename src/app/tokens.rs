//! The OAuth authorization server's use cases: checking an authorization request,
//! consent (a code for the client), the token endpoint's grants (authorization code,
//! refresh token), revocation and introspection, with the rate limits around the
//! client-authenticated endpoints.
//!
//! The rules are `crate::oauth` (pure); `crate::store::oauth` carries them out
//! atomically. The HTTP adapter (`http/oauth.rs`) parses requests and renders what
//! comes back here: RFC 6749 JSON, a redirect, or a page.

use crate::config::Config;
use crate::domain::Role;
use crate::oauth::authorize::{self, AuthorizeRequest, Refusal};
use crate::oauth::client::{self, AuthFailure, GrantType, Proof};
use crate::oauth::token::{self, Grant, RefreshDecision, TokenFacts, TokenKind};
use crate::oauth::{self, ErrorCode, OAuthError, Params, Scopes};
use crate::secrets::{self, Kind};
use crate::store::members::Member;
use crate::store::oauth::{Client, NewCode, NewTokens, Redeemed, RefreshPlan, RefreshState};
use crate::store::rate_limits::{self, Limit, Verdict};
use crate::store::workspaces::Workspace;
use crate::store::{self, Db, StoreError};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Authorization requests and consent

/// Why an authorization request cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The query (or the request carried in a form) is not even parameters.
    #[error("This authorization request is malformed: {0}.")]
    Malformed(String),
    /// The rules refused it: a page for the person (unknown client or redirect URI),
    /// or an error to send back to the client's redirect URI.
    #[error("the authorization request was refused")]
    Refused(Refusal),
    #[error("{0}")]
    Internal(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An authorization request that passed every check, with its client.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    /// The request's parameters, to carry on to the next step.
    pub params: Params,
    pub request: AuthorizeRequest,
    pub client: Client,
}

/// Parse and check an authorization request (`raw`: its query string). Checked at
/// every step from scratch: the request travels through the browser.
pub async fn check_request(db: &Db, raw: &str) -> Result<CheckedRequest, AuthorizeError> {
    let params = oauth::parse_params(raw.as_bytes()).map_err(AuthorizeError::Malformed)?;
    let client = match params.get("client_id") {
        Some(id) => store::oauth::client(db, id).await?,
        None => None,
    };
    match authorize::validate(&params, client.as_ref()) {
        Ok(request) => match client {
            Some(client) => Ok(CheckedRequest {
                params,
                request,
                client,
            }),
            None => Err(AuthorizeError::Internal("validated without a client")),
        },
        Err(refusal) => Err(AuthorizeError::Refused(refusal)),
    }
}

/// Where a checked request may go: a workspace client authorizes into its own
/// workspace only, so the workspace question is skipped (`Some`); a global client
/// asks (`None`).
pub async fn bound_workspace(
    db: &Db,
    checked: &CheckedRequest,
) -> Result<Option<Workspace>, AuthorizeError> {
    match checked.client.workspace_id {
        None => Ok(None),
        Some(id) => match store::workspaces::by_id(db, id).await? {
            Some(ws) => Ok(Some(ws)),
            None => Err(AuthorizeError::Internal(
                "a workspace client without its workspace",
            )),
        },
    }
}

/// May this request go on in `workspace`? A workspace client's request that
/// reached another workspace is refused (with a page, never a redirect: nothing
/// the request says is trusted there).
pub fn check_workspace(checked: &CheckedRequest, workspace: &Workspace) -> Result<(), String> {
    if client::serves_workspace(&checked.client, workspace.id) {
        Ok(())
    } else {
        Err(format!(
            "{} belongs to another workspace and cannot be connected to {}.",
            checked.client.name, workspace.name
        ))
    }
}

/// Why consent could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Only admins may hand out access to the SCIM API.
    #[error("only admins may allow access to the SCIM API")]
    NotAdmin,
    /// A workspace client asked for another workspace.
    #[error("{0}")]
    OtherWorkspace(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// May `member` answer a consent request? Only admins may hand out access to the
/// SCIM API.
pub fn may_consent(member: &Member) -> Result<(), ConsentError> {
    if member.role == Role::Admin {
        Ok(())
    } else {
        Err(ConsentError::NotAdmin)
    }
}

/// The member's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

/// Carry out `member`'s decision on a checked request; returns where to send the
/// browser back to the client. Allow: a one-time code (stored as a digest only) with
/// `state` and `iss`. Deny: `access_denied`.
pub async fn consent(
    db: &Db,
    issuer: &str,
    workspace: &Workspace,
    member: &Member,
    checked: &CheckedRequest,
    decision: Decision,
) -> Result<String, ConsentError> {
    may_consent(member)?;
    // Only a member of the workspace the code is for may consent for it.
    if member.workspace_id != workspace.id {
        return Err(ConsentError::NotAdmin);
    }
    check_workspace(checked, workspace).map_err(ConsentError::OtherWorkspace)?;
    let req = &checked.request;
    match decision {
        Decision::Allow => {
            let code = secrets::generate(Kind::AuthCode);
            let scope = req.scopes.to_string();
            store::oauth::create_code(
                db,
                &NewCode {
                    digest: &secrets::digest(&code),
                    client_id: &checked.client.id,
                    workspace_id: workspace.id,
                    member_id: member.id,
                    redirect_uri: &req.redirect_uri,
                    scope: &scope,
                    code_challenge: req.code_challenge.as_deref(),
                    expires_at: store::now() + oauth::CODE_TTL,
                },
            )
            .await?;
            tracing::info!(client = %checked.client.id, workspace = %workspace.subdomain, "oauth access allowed");
            Ok(authorize::success_redirect(req, &code, issuer))
        }
        Decision::Deny => {
            let error = OAuthError::new(ErrorCode::AccessDenied, "the member denied access");
            Ok(authorize::error_redirect(
                &req.redirect_uri,
                &error,
                req.state.as_deref(),
                issuer,
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// The client-authenticated endpoints: token, revocation, introspection

/// A request to one of the client-authenticated endpoints, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The caller's address, for the per-address limit.
    pub address: &'a str,
    /// The body came as `application/x-www-form-urlencoded`.
    pub form_encoded: bool,
    /// The `Authorization` header, if one was sent.
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a token, revocation or introspection request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A rate limit was reached.
    #[error("too many requests; try again in {retry_after_secs} seconds")]
    TooManyRequests { retry_after_secs: u64 },
    /// The client did not authenticate (`basic`: it tried HTTP Basic, so the answer
    /// asks for it).
    #[error("{}", .0.error)]
    Client(AuthFailure),
    /// The request was refused with this OAuth error (RFC 6749 §5.2).
    #[error("{0}")]
    Refused(OAuthError),
    #[error("{0}")]
    Internal(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OAuthError> for TokenError {
    fn from(e: OAuthError) -> Self {
        TokenError::Refused(e)
    }
}

/// A new access token and (except for client credentials) refresh token, to hand
/// to the client once.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// The access token's lifetime.
    pub expires_in: Duration,
    pub scope: Scopes,
}

/// The limits of the client-authenticated endpoints count per minute.
const PER_MINUTE: u32 = 60;

/// Count a request against a limit.
async fn limit(db: &Db, key: &str, max: u32) -> Result<(), TokenError> {
    let limit = Limit {
        max,
        window_secs: PER_MINUTE,
    };
    match rate_limits::hit_batched(db, key, limit).await? {
        Verdict::Allowed => Ok(()),
        Verdict::Limited { retry_after_secs } => {
            Err(TokenError::TooManyRequests { retry_after_secs })
        }
    }
}

/// The common front of the client-authenticated endpoints: the per-address limit,
/// a form body, and an authenticated client, with how it proved itself.
async fn authenticated_client(
    db: &Db,
    config: &Config,
    req: &ClientRequest<'_>,
) -> Result<(Params, Client, Proof), TokenError> {
    limit(
        db,
        &format!("oauth:addr:{}", req.address),
        config.limits.token_per_address,
    )
    .await?;
    if !req.form_encoded {
        return Err(OAuthError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        )
        .into());
    }
    let params = oauth::parse_params(req.body).map_err(OAuthError::invalid_request)?;
    let creds = client::credentials(req.authorization, &params).map_err(TokenError::Client)?;
    let found = store::oauth::client(db, &creds.client_id).await?;
    let proof =
        client::authenticate(&creds, found.as_ref(), store::now()).map_err(TokenError::Client)?;
    match found {
        Some(c) => Ok((params, c, proof)),
        None => Err(TokenError::Internal("authenticated without a client")),
    }
}

/// Did the client authenticate with HTTP Basic? (An `invalid_client` answer must then
/// carry `WWW-Authenticate: Basic`, RFC 6749 §5.2.)
fn sent_basic(req: &ClientRequest<'_>) -> bool {
    req.authorization
        .map(str::trim_start)
        .and_then(|h| h.get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
}

/// Introspection and revocation need a client that proved who it is (RFC 7662
/// §2.1): a public client's id alone is not authentication, and would let anyone
/// who learns a user's token probe or revoke it.
async fn confidential_client(
    db: &Db,
    config: &Config,
    req: &ClientRequest<'_>,
) -> Result<(Params, Client), TokenError> {
    let (params, client, _) = authenticated_client(db, config, req).await?;
    if client.public {
        return Err(TokenError::Client(AuthFailure {
            error: OAuthError::new(
                ErrorCode::InvalidClient,
                "this endpoint needs client authentication; public clients cannot use it",
            ),
            basic: sent_basic(req),
        }));
    }
    Ok((params, client))
}

/// The token endpoint (RFC 6749 §3.2): redeem an authorization code, or use a
/// refresh token, for a new access and refresh token; or, for a confidential
/// workspace client allowed it, client credentials for an access token.
pub async fn token(
    db: &Db,
    config: &Config,
    req: &ClientRequest<'_>,
) -> Result<IssuedTokens, TokenError> {
    let (params, client, proof) = authenticated_client(db, config, req).await?;
    // A public client authenticates by its id alone, which anyone can send: count
    // it per address too, so nobody can use up the limit of all its users.
    let client_key = if client.public {
        format!("oauth:client:{}:{}", client.id, req.address)
    } else {
        format!("oauth:client:{}", client.id)
    };
    limit(db, &client_key, config.limits.token_per_client).await?;
    let grant = token::parse_grant(&params)?;
    if let Grant::ClientCredentials { scope } = grant {
        return client_credentials(db, config, &client, proof, scope, sent_basic(req)).await;
    }
    if !client::allows(&client, GrantType::AuthorizationCode) {
        return Err(unauthorized("this client is not allowed the authorization code grant").into());
    }
    let now = store::now();
    let access = secrets::generate(Kind::AccessToken);
    let refresh = secrets::generate(Kind::RefreshToken);
    let new = NewTokens {
        access_digest: secrets::digest(&access),
        access_expires_at: now + config.access_token_ttl,
        refresh_digest: secrets::digest(&refresh),
        refresh_expires_at: now + config.refresh_token_ttl,
    };
    let (grant_type, issued) = match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            // The check runs where the store holds the code (on SQLite, its write
            // thread), so it owns what it compares.
            let presented_by = client.id.clone();
            let check = move |c: &store::oauth::Code| {
                token::check_code(
                    &token::CodeBinding {
                        authorizer_is_admin: c.authorizer_is_admin,
                        client_id: &c.client_id,
                        redirect_uri: &c.redirect_uri,
                        code_challenge: c.code_challenge.as_deref(),
                        expires_at: c.expires_at,
                    },
                    &presented_by,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    now,
                )
            };
            let digest = secrets::digest(&code);
            let issued = match store::oauth::redeem_code(db, &digest, &client.id, &new, check)
                .await?
            {
                Redeemed::Issued(i) => i,
                Redeemed::Refused(e) => return Err(e.into()),
                Redeemed::Unknown => {
                    return Err(OAuthError::invalid_grant("unknown authorization code").into());
                }
                Redeemed::Replayed => {
                    tracing::warn!(client = %client.id, "authorization code replayed; its grant is revoked");
                    return Err(OAuthError::invalid_grant(
                        "the code was already used; every token issued for it is revoked",
                    )
                    .into());
                }
            };
            ("authorization_code", issued)
        }
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => {
            let grace = config.refresh_grace;
            let client_id = client.id.clone();
            let outcome =
                store::oauth::refresh(db, &secrets::digest(&refresh_token), &new, move |s| {
                    refresh_plan(s, &client_id, scope, now, grace)
                })
                .await?;
            match outcome {
                Some(Ok(issued)) => ("refresh_token", issued),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(OAuthError::invalid_grant("unknown refresh token").into()),
            }
        }
        Grant::ClientCredentials { .. } => return Err(TokenError::Internal("handled above")),
    };
    crate::metrics::token_issued(grant_type);
    Ok(IssuedTokens {
        access_token: access,
        refresh_token: Some(refresh),
        expires_in: config.access_token_ttl,
        scope: Scopes::parse(&issued.scope).unwrap_or_default(),
    })
}

fn unauthorized(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::UnauthorizedClient, description)
}

/// RFC 6749 §4.4: an access token for the client itself, acting for its workspace
/// with the scopes asked for, narrowed to the client's; no refresh token. Only a
/// confidential workspace client allowed the grant gets one. The token belongs to
/// the grant of the secret the client authenticated with, so it ends when a
/// rotation's overlap ends, as well as when the client is deleted.
async fn client_credentials(
    db: &Db,
    config: &Config,
    client: &Client,
    proof: Proof,
    requested: Option<Scopes>,
    basic: bool,
) -> Result<IssuedTokens, TokenError> {
    let (Proof::Secret { generation }, Some(workspace_id)) = (proof, client.workspace_id) else {
        return Err(
            unauthorized("client credentials are for confidential workspace clients").into(),
        );
    };
    if !client::allows(client, GrantType::ClientCredentials) {
        return Err(unauthorized("this client is not allowed the client credentials grant").into());
    }
    let allowed = Scopes::parse(&client.scopes).unwrap_or_default();
    let scope = token::client_credentials_scope(requested, allowed)?;
    let access = secrets::generate(Kind::AccessToken);
    let expires_at = store::now() + config.access_token_ttl;
    let scope_text = scope.to_string();
    let issued = store::oauth::issue_client_token(
        db,
        client,
        generation,
        &scope_text,
        &secrets::digest(&access),
        expires_at,
    )
    .await?;
    if issued.is_none() {
        // Deleted between authentication and now.
        return Err(TokenError::Client(AuthFailure {
            error: OAuthError::invalid_client("client authentication failed"),
            basic,
        }));
    }
    crate::metrics::token_issued("client_credentials");
    let detail = format!(
        "Access token issued to OAuth client {} ({}) by client credentials, scope {scope_text}",
        client.name, client.id
    );
    let entry = store::activity::NewActivity {
        workspace_id,
        actor: &format!("oauth:{}", client.name),
        operation: "client credentials token",
        member_id: None,
        user_name: None,
        team_id: None,
        team_name: None,
        status: 200,
        detail: &detail,
    };
    if let Err(e) = store::activity::record(db, &entry).await {
        tracing::warn!(error = %e, "could not record a client credentials token");
    }
    Ok(IssuedTokens {
        access_token: access,
        refresh_token: None,
        expires_in: config.access_token_ttl,
        scope,
    })
}

/// The refresh rules (`oauth::token::decide_refresh`) as the store carries them out.
fn refresh_plan(
    s: &RefreshState,
    client_id: &str,
    requested: Option<Scopes>,
    now: time::OffsetDateTime,
    grace: Duration,
) -> RefreshPlan<OAuthError> {
    let facts = token::RefreshFacts {
        client_id: &s.client_id,
        grant_scope: &s.grant_scope,
        // A grant whose authorizer is no longer an active admin has ended (the
        // member trigger revokes it; this covers any grant it could not see).
        revoked: s.grant_revoked_at.is_some() || s.revoked_at.is_some() || !s.authorizer_is_admin,
        expires_at: s.expires_at,
        rotated_at: s.rotated_at,
    };
    match token::decide_refresh(&facts, client_id, requested, now, grace) {
        RefreshDecision::Issue(scope) => RefreshPlan::Issue {
            scope: scope.to_string(),
        },
        RefreshDecision::Refuse(e) => RefreshPlan::Refuse(e),
        RefreshDecision::EndGrant(e) => {
            tracing::warn!(client = %client_id, grant = s.grant_id, "replaced refresh token reused; grant revoked");
            RefreshPlan::EndGrant(e)
        }
    }
}

/// The token a revocation or introspection request names.
fn presented(params: &Params) -> Result<&str, TokenError> {
    params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing").into())
}

/// RFC 7009. Revoking a refresh token ends its grant; an access token, only itself.
/// Unknown tokens, and tokens of other clients, change nothing and answer the same.
pub async fn revoke(db: &Db, config: &Config, req: &ClientRequest<'_>) -> Result<(), TokenError> {
    let (params, client) = confidential_client(db, config, req).await?;
    let presented = presented(&params)?;
    let found = store::oauth::token(db, &secrets::digest(presented)).await?;
    if let Some(t) = found.filter(|t| t.client_id == client.id) {
        match TokenKind::parse(&t.kind) {
            Some(TokenKind::Refresh) => store::oauth::end_grant(db, t.grant_id).await?,
            _ => store::oauth::revoke_token(db, t.id).await?,
        }
    }
    Ok(())
}

/// RFC 7662, for a client's own tokens: the introspection answer.
pub async fn introspect(
    db: &Db,
    config: &Config,
    req: &ClientRequest<'_>,
) -> Result<serde_json::Value, TokenError> {
    let (params, client) = confidential_client(db, config, req).await?;
    let presented = presented(&params)?;
    let found = store::oauth::access_token(db, &secrets::digest(presented)).await?;
    let facts = found.filter(|t| t.client_id == client.id).and_then(|t| {
        Some(TokenFacts {
            kind: TokenKind::parse(&t.kind)?,
            revoked: !t.live(),
            scope: t.scope,
            client_id: t.client_id,
            member_id: t.member_id.map(|m| m.to_string()),
            workspace: t.subdomain,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            rotated_at: t.rotated_at,
        })
    });
    Ok(token::introspection(
        facts.as_ref(),
        config.base(),
        store::now(),
        config.refresh_grace,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::admin::{self, CreatedClient};
    use crate::app::provisioning;
    use crate::app::testing;
    use crate::domain::Role;

    const REDIRECT: &str = "https://idp.example.com/callback";

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    fn request<'a>(body: &'a [u8], address: &'a str) -> ClientRequest<'a> {
        ClientRequest {
            address,
            form_encoded: true,
            authorization: None,
            body,
        }
    }

    async fn client(db: &Db) -> CreatedClient {
        admin::create_client(db, "Okta", &[REDIRECT.to_owned()], false)
            .await
            .expect("client")
    }

    /// `member` allows `client` on the consent page; the code that comes back.
    async fn code_for(db: &Db, ws: &Workspace, member: &Member, client: &CreatedClient) -> String {
        let raw = String::from_utf8(form(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", REDIRECT),
            ("state", "xyz"),
        ]))
        .unwrap();
        let checked = check_request(db, &raw).await.expect("a valid request");
        let back = consent(
            db,
            "http://localhost:8080",
            ws,
            member,
            &checked,
            Decision::Allow,
        )
        .await
        .expect("consent");
        let url = url::Url::parse(&back).unwrap();
        assert!(back.starts_with(REDIRECT), "{back}");
        assert!(url.query_pairs().any(|(k, v)| k == "state" && v == "xyz"));
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code")
    }

    fn redeem_form(client: &CreatedClient, code: &str) -> Vec<u8> {
        form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.as_deref().unwrap()),
        ])
    }

    fn refresh_form(client: &CreatedClient, refresh_token: &str) -> Vec<u8> {
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.as_deref().unwrap()),
        ])
    }

    fn invalid_grant(e: TokenError) -> String {
        match e {
            TokenError::Refused(e) if e.code == ErrorCode::InvalidGrant => e.description,
            other => panic!("expected invalid_grant, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_and_a_replay_ends_its_grant() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let code = code_for(&db, &acme.workspace, &acme.admin, &okta).await;

        let body = redeem_form(&okta, &code);
        let issued = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .expect("tokens for the code");
        assert!(issued.access_token.starts_with("rc_at_"));
        assert!(
            issued
                .refresh_token
                .as_deref()
                .unwrap()
                .starts_with("rc_rt_")
        );
        assert_eq!(issued.expires_in, config.access_token_ttl);
        let caller = provisioning::authenticate(&db, &issued.access_token)
            .await
            .unwrap()
            .expect("the access token works");
        assert_eq!(caller.workspace.id, acme.workspace.id);
        assert!(caller.can_read && caller.can_write);

        // The same code again: refused, and the tokens issued for it stop working.
        let again = token(&db, &config, &request(&body, "192.0.2.1")).await;
        assert!(invalid_grant(again.unwrap_err()).contains("already used"));
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_none()
        );
        let refresh = refresh_form(&okta, issued.refresh_token.as_deref().unwrap());
        let refreshed = token(&db, &config, &request(&refresh, "192.0.2.1")).await;
        assert!(invalid_grant(refreshed.unwrap_err()).contains("revoked"));
    }

    #[tokio::test]
    async fn another_clients_code_is_unknown_and_stays_usable() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let other = client(&db).await;
        let code = code_for(&db, &acme.workspace, &acme.admin, &okta).await;

        let stolen = redeem_form(&other, &code);
        let refused = token(&db, &config, &request(&stolen, "192.0.2.1")).await;
        assert_eq!(
            invalid_grant(refused.unwrap_err()),
            "unknown authorization code"
        );
        // The wrong client neither used it up nor ended anything.
        let body = redeem_form(&okta, &code);
        token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .expect("its own client still redeems it");
    }

    #[tokio::test]
    async fn a_bad_secret_is_an_unauthenticated_client() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let code = code_for(&db, &acme.workspace, &acme.admin, &okta).await;
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &okta.client_id),
            ("client_secret", "rc_cs_wrong"),
        ]);
        match token(&db, &config, &request(&body, "192.0.2.1")).await {
            Err(TokenError::Client(f)) => assert_eq!(f.error.code, ErrorCode::InvalidClient),
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refresh_rotates_and_a_replayed_old_token_ends_the_grant() {
        let db = testing::db().await;
        // No grace: a replaced refresh token is a replay at once.
        let config = testing::config(|s| s.refresh_grace_secs = Some(0));
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let code = code_for(&db, &acme.workspace, &acme.admin, &okta).await;
        let body = redeem_form(&okta, &code);
        let first = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap();

        let body = refresh_form(&okta, first.refresh_token.as_deref().unwrap());
        let second = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .expect("refreshed");
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        let stored = store::oauth::token(
            &db,
            &secrets::digest(second.refresh_token.as_deref().unwrap()),
        )
        .await
        .unwrap()
        .expect("the new refresh token is stored");
        // One newest refresh token per grant: the old one was retired.
        assert_eq!(
            store::oauth::newest_refresh_tokens(&db, stored.grant_id)
                .await
                .unwrap(),
            1
        );
        assert!(
            provisioning::authenticate(&db, &second.access_token)
                .await
                .unwrap()
                .is_some()
        );

        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let replay = token(&db, &config, &request(&body, "192.0.2.1")).await;
        assert!(invalid_grant(replay.unwrap_err()).contains("already used"));
        // The whole family is gone.
        let body = refresh_form(&okta, second.refresh_token.as_deref().unwrap());
        let after = token(&db, &config, &request(&body, "192.0.2.1")).await;
        assert!(invalid_grant(after.unwrap_err()).contains("revoked"));
        assert!(
            provisioning::authenticate(&db, &second.access_token)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_token_endpoint_limits_each_address() {
        let db = testing::db().await;
        let config = testing::config(|s| s.token_rate_per_address = Some(2));
        let body = form(&[("grant_type", "refresh_token")]);
        for _ in 0..2 {
            // Counted, then refused for another reason (no client).
            let e = token(&db, &config, &request(&body, "192.0.2.7"))
                .await
                .unwrap_err();
            assert!(matches!(e, TokenError::Client(_)), "{e:?}");
        }
        let e = token(&db, &config, &request(&body, "192.0.2.7"))
            .await
            .unwrap_err();
        assert!(matches!(e, TokenError::TooManyRequests { .. }), "{e:?}");
        // Another address has its own count.
        let e = token(&db, &config, &request(&body, "192.0.2.8"))
            .await
            .unwrap_err();
        assert!(matches!(e, TokenError::Client(_)), "{e:?}");
    }

    #[tokio::test]
    async fn revocation_and_introspection_for_the_clients_own_tokens() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let other = client(&db).await;
        let code = code_for(&db, &acme.workspace, &acme.admin, &okta).await;
        let body = redeem_form(&okta, &code);
        let issued = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap();
        let ask = |c: &CreatedClient, t: &str| {
            form(&[
                ("token", t),
                ("client_id", &c.client_id),
                ("client_secret", c.client_secret.as_deref().unwrap()),
            ])
        };

        let mine = ask(&okta, &issued.access_token);
        let answer = introspect(&db, &config, &request(&mine, "192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(answer["active"], true);
        assert_eq!(answer["workspace"], "acme");
        // Another client learns nothing, and cannot revoke it.
        let theirs = ask(&other, &issued.access_token);
        let answer = introspect(&db, &config, &request(&theirs, "192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(answer, serde_json::json!({"active": false}));
        revoke(&db, &config, &request(&theirs, "192.0.2.1"))
            .await
            .unwrap();
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_some()
        );

        revoke(&db, &config, &request(&mine, "192.0.2.1"))
            .await
            .unwrap();
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_none()
        );
        let answer = introspect(&db, &config, &request(&mine, "192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(answer["active"], false);
    }

    /// A confidential client of `ws` allowed client credentials (and `scopes`).
    async fn workspace_client(db: &Db, ws: &Workspace, scopes: &str) -> CreatedClient {
        let spec = admin::ClientSpec {
            name: "Script",
            redirect_uris: &[],
            public: false,
            grants: &[GrantType::ClientCredentials],
            scopes: Some(Scopes::parse(scopes).unwrap()),
        };
        admin::register_client(db, Some(ws), &spec, "admin@acme.test")
            .await
            .expect("workspace client")
    }

    fn credentials_form(c: &CreatedClient, secret: &str, scope: Option<&str>) -> Vec<u8> {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", secret),
        ];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        form(&pairs)
    }

    fn refused_with(e: TokenError) -> ErrorCode {
        match e {
            TokenError::Refused(e) => e.code,
            TokenError::Client(f) => f.error.code,
            other => panic!("expected an OAuth error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn client_credentials_give_a_workspace_client_its_own_access_token() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let script = workspace_client(&db, &acme.workspace, "scim:read").await;
        let secret = script.client_secret.clone().unwrap();

        // Asked for more than the client may have: narrowed to its scopes.
        let body = credentials_form(&script, &secret, Some("scim:read scim:write"));
        let issued = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .expect("a token");
        assert!(issued.refresh_token.is_none());
        assert_eq!(issued.scope.to_string(), "scim:read");
        assert_eq!(issued.expires_in, config.access_token_ttl);
        let caller = provisioning::authenticate(&db, &issued.access_token)
            .await
            .unwrap()
            .expect("the token works");
        assert_eq!(caller.workspace.id, acme.workspace.id);
        assert!(caller.can_read && !caller.can_write);
        // Listed under the workspace's authorized apps, without a member.
        let grants = store::oauth::list_grants(&db, acme.workspace.id)
            .await
            .unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].member_user_name, None);
        // A second token joins the same grant.
        let again = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap();
        assert_ne!(again.access_token, issued.access_token);
        assert_eq!(
            store::oauth::list_grants(&db, acme.workspace.id)
                .await
                .unwrap()
                .len(),
            1
        );

        // Introspection names the client as the subject; revocation ends one token.
        let ask = form(&[
            ("token", issued.access_token.as_str()),
            ("client_id", &script.client_id),
            ("client_secret", &secret),
        ]);
        let answer = introspect(&db, &config, &request(&ask, "192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(answer["active"], true);
        assert_eq!(answer["sub"], script.client_id.as_str());
        assert_eq!(answer["workspace"], "acme");
        revoke(&db, &config, &request(&ask, "192.0.2.1"))
            .await
            .unwrap();
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            provisioning::authenticate(&db, &again.access_token)
                .await
                .unwrap()
                .is_some()
        );

        // The activity log says so.
        let log = store::activity::recent(&db, acme.workspace.id, None, false, 10)
            .await
            .unwrap();
        let ops: Vec<&str> = log.iter().map(|a| a.operation.as_str()).collect();
        assert!(ops.contains(&"register client"), "{ops:?}");
        assert!(ops.contains(&"client credentials token"), "{ops:?}");

        // Nothing left after narrowing: invalid_scope.
        let read_only = workspace_client(&db, &acme.workspace, "scim:read").await;
        let body = credentials_form(
            &read_only,
            read_only.client_secret.as_deref().unwrap(),
            Some("scim:write"),
        );
        let e = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap_err();
        assert_eq!(refused_with(e), ErrorCode::InvalidScope);
    }

    #[tokio::test]
    async fn only_confidential_workspace_clients_allowed_the_grant_get_client_credentials() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        // A global client, and a workspace client allowed only the code grant.
        let okta = client(&db).await;
        let spec = admin::ClientSpec {
            name: "Entra",
            redirect_uris: &[REDIRECT.to_owned()],
            public: false,
            grants: &[],
            scopes: None,
        };
        let entra = admin::register_client(&db, Some(&acme.workspace), &spec, "cli")
            .await
            .unwrap();
        for c in [&okta, &entra] {
            let body = credentials_form(c, c.client_secret.as_deref().unwrap(), None);
            let e = token(&db, &config, &request(&body, "192.0.2.1"))
                .await
                .unwrap_err();
            assert_eq!(refused_with(e), ErrorCode::UnauthorizedClient);
        }
        // A client allowed only client credentials gets no code grant.
        let script = workspace_client(&db, &acme.workspace, "scim:read scim:write").await;
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", "rc_ac_x"),
            ("redirect_uri", REDIRECT),
            ("client_id", &script.client_id),
            ("client_secret", script.client_secret.as_deref().unwrap()),
        ]);
        let e = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap_err();
        assert_eq!(refused_with(e), ErrorCode::UnauthorizedClient);
        // A public client cannot even be registered for it.
        let spec = admin::ClientSpec {
            name: "CLI",
            redirect_uris: &[],
            public: true,
            grants: &[GrantType::ClientCredentials],
            scopes: None,
        };
        let e = admin::register_client(&db, Some(&acme.workspace), &spec, "cli").await;
        assert!(matches!(e, Err(admin::AdminError::Refused(_))));
    }

    #[tokio::test]
    async fn a_rotated_secret_works_until_the_overlap_ends_and_its_tokens_end_then() {
        let db = testing::db().await;
        let config = testing::config(|s| s.client_secret_overlap_secs = Some(2));
        let acme = testing::workspace(&db, "acme").await;
        let script = workspace_client(&db, &acme.workspace, "scim:read scim:write").await;
        let old = script.client_secret.clone().unwrap();
        let with = |secret: &str| credentials_form(&script, secret, None);
        let before = token(&db, &config, &request(&with(&old), "192.0.2.1"))
            .await
            .unwrap();

        let rotated = admin::rotate_client_secret(
            &db,
            store::oauth::ClientScope::Workspace(acme.workspace.id),
            &script.client_id,
            config.client_secret_overlap,
            "admin@acme.test",
        )
        .await
        .unwrap();
        let new = rotated.client_secret;
        // Both secrets work during the overlap, and so do the old secret's tokens.
        let during_old = token(&db, &config, &request(&with(&old), "192.0.2.1"))
            .await
            .unwrap();
        let during_new = token(&db, &config, &request(&with(&new), "192.0.2.1"))
            .await
            .unwrap();
        for t in [&before, &during_old, &during_new] {
            assert!(
                provisioning::authenticate(&db, &t.access_token)
                    .await
                    .unwrap()
                    .is_some()
            );
        }

        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let e = token(&db, &config, &request(&with(&old), "192.0.2.1"))
            .await
            .unwrap_err();
        assert_eq!(refused_with(e), ErrorCode::InvalidClient);
        for t in [&before, &during_old] {
            assert!(
                provisioning::authenticate(&db, &t.access_token)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            provisioning::authenticate(&db, &during_new.access_token)
                .await
                .unwrap()
                .is_some()
        );
        token(&db, &config, &request(&with(&new), "192.0.2.1"))
            .await
            .expect("the new secret works");
    }

    #[tokio::test]
    async fn a_token_opened_with_a_secret_rotated_away_meanwhile_ends_with_the_overlap() {
        // The client was read (and its secret checked) before a rotation; the token is
        // issued after it, into a new grant of the old secret that the rotation could
        // not mark. The token must still end when the old secret stops working.
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let script = workspace_client(&db, &acme.workspace, "scim:read scim:write").await;
        let before = store::oauth::client(&db, &script.client_id)
            .await
            .unwrap()
            .unwrap();
        store::oauth::rotate_secret(
            &db,
            store::oauth::ClientScope::Any,
            &script.client_id,
            &crate::secrets::digest("rc_cs_new"),
            store::now() + time::Duration::milliseconds(300),
        )
        .await
        .unwrap();
        let access = crate::secrets::generate(Kind::AccessToken);
        store::oauth::issue_client_token(
            &db,
            &before,
            before.secret_generation,
            "scim:read",
            &crate::secrets::digest(&access),
            store::now() + time::Duration::HOUR,
        )
        .await
        .unwrap()
        .expect("issued");
        assert!(
            provisioning::authenticate(&db, &access)
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(
            provisioning::authenticate(&db, &access)
                .await
                .unwrap()
                .is_none(),
            "a token of the replaced secret outlived the overlap"
        );
    }

    #[tokio::test]
    async fn deleting_a_client_ends_its_tokens_and_grants_at_once() {
        let db = testing::db().await;
        let config = testing::config(|_| {});
        let acme = testing::workspace(&db, "acme").await;
        let globex = testing::workspace(&db, "globex").await;
        let script = workspace_client(&db, &acme.workspace, "scim:read scim:write").await;
        let secret = script.client_secret.clone().unwrap();
        let body = credentials_form(&script, &secret, None);
        let issued = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap();

        // Another workspace cannot delete (or rotate) it.
        let theirs = store::oauth::ClientScope::Workspace(globex.workspace.id);
        let e = admin::delete_client(&db, theirs, &script.client_id, "admin@globex.test").await;
        assert!(matches!(e, Err(admin::AdminError::NoClient(_))), "{e:?}");
        let e = admin::rotate_client_secret(
            &db,
            theirs,
            &script.client_id,
            config.client_secret_overlap,
            "x",
        )
        .await;
        assert!(matches!(e, Err(admin::AdminError::NoClient(_))), "{e:?}");
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            admin::list_clients(&db, Some(&globex.workspace))
                .await
                .unwrap()
                .is_empty()
        );

        let ours = store::oauth::ClientScope::Workspace(acme.workspace.id);
        admin::delete_client(&db, ours, &script.client_id, "admin@acme.test")
            .await
            .unwrap();
        assert!(
            provisioning::authenticate(&db, &issued.access_token)
                .await
                .unwrap()
                .is_none()
        );
        let e = token(&db, &config, &request(&body, "192.0.2.1"))
            .await
            .unwrap_err();
        assert_eq!(refused_with(e), ErrorCode::InvalidClient);
        assert!(
            admin::list_clients(&db, Some(&acme.workspace))
                .await
                .unwrap()
                .is_empty()
        );
        let ended = store::oauth::ended_grants(&db, acme.workspace.id, 10)
            .await
            .unwrap();
        assert_eq!(ended[0].ended_reason.as_deref(), Some("deleted"));
    }

    #[tokio::test]
    async fn a_workspace_clients_request_goes_only_to_its_workspace() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let globex = testing::workspace(&db, "globex").await;
        let spec = admin::ClientSpec {
            name: "Entra",
            redirect_uris: &[REDIRECT.to_owned()],
            public: false,
            grants: &[],
            scopes: None,
        };
        let entra = admin::register_client(&db, Some(&acme.workspace), &spec, "cli")
            .await
            .unwrap();
        let raw = String::from_utf8(form(&[
            ("response_type", "code"),
            ("client_id", &entra.client_id),
            ("redirect_uri", REDIRECT),
        ]))
        .unwrap();
        let checked = check_request(&db, &raw).await.unwrap();
        let bound = bound_workspace(&db, &checked).await.unwrap();
        assert_eq!(bound.map(|w| w.id), Some(acme.workspace.id));
        assert!(check_workspace(&checked, &acme.workspace).is_ok());
        assert!(check_workspace(&checked, &globex.workspace).is_err());
        // Globex's own admin cannot consent for it on globex.
        let refused = consent(
            &db,
            "http://localhost:8080",
            &globex.workspace,
            &globex.admin,
            &checked,
            Decision::Allow,
        )
        .await;
        assert!(
            matches!(refused, Err(ConsentError::OtherWorkspace(_))),
            "{refused:?}"
        );
        // A global client asks which workspace.
        let okta = client(&db).await;
        let raw = raw.replace(&entra.client_id, &okta.client_id);
        let checked = check_request(&db, &raw).await.unwrap();
        assert!(bound_workspace(&db, &checked).await.unwrap().is_none());
        assert!(check_workspace(&checked, &globex.workspace).is_ok());
    }

    #[tokio::test]
    async fn only_admins_consent() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let okta = client(&db).await;
        let viewer = testing::member(&db, &acme.workspace, "v@acme.test", Role::Viewer, None).await;
        let raw = String::from_utf8(form(&[
            ("response_type", "code"),
            ("client_id", &okta.client_id),
            ("redirect_uri", REDIRECT),
        ]))
        .unwrap();
        let checked = check_request(&db, &raw).await.unwrap();
        let refused = consent(
            &db,
            "http://localhost:8080",
            &acme.workspace,
            &viewer,
            &checked,
            Decision::Allow,
        )
        .await;
        assert!(matches!(refused, Err(ConsentError::NotAdmin)));

        // An admin of another workspace cannot consent for this one.
        let globex = testing::workspace(&db, "globex").await;
        let refused = consent(
            &db,
            "http://localhost:8080",
            &acme.workspace,
            &globex.admin,
            &checked,
            Decision::Allow,
        )
        .await;
        assert!(matches!(refused, Err(ConsentError::NotAdmin)));

        // An unknown redirect URI is a page, never a redirect.
        let raw = format!(
            "response_type=code&client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F",
            okta.client_id
        );
        match check_request(&db, &raw).await {
            Err(AuthorizeError::Refused(Refusal::Page(_))) => {}
            other => panic!("expected an error page, got {other:?}"),
        }
    }
}
