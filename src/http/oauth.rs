//! The OAuth2 endpoints. App host: `/oauth2/authorize` (which workspace?),
//! `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect` and the RFC 8414 metadata.
//! Workspace host: `/oauth2/authorize` again (sign-in, then consent). The rules are in
//! `crate::oauth`; state in `store::oauth`.

use super::extract::PageForm;
use super::pages::SignedIn;
use super::views::{ConsentPage, OAuthWorkspacePage};
use super::{AppState, CurrentWorkspace, RemoteIp, csrf};
use crate::domain::{Role, Subdomain};
use crate::http::error::AppError;
use crate::oauth::authorize::{self, AuthorizeRequest, Refusal};
use crate::oauth::client::{self, AuthFailure};
use crate::oauth::token::{self, Grant, RefreshDecision, TokenFacts, TokenKind};
use crate::oauth::{self as rules, ErrorCode, OAuthError, Params, Scopes};
use crate::secrets::{self, Kind};
use crate::store::oauth::{self as store, Client, NewTokens, Redeemed, RefreshPlan};
use crate::store::rate_limits::{self, Limit, Verdict};
use crate::store::{self as db, workspaces};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

pub fn app_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize_on_app_host).post(choose_workspace),
        )
        .route("/oauth2/token", post(token_endpoint))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/introspect", post(introspect))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new().route(
        "/oauth2/authorize",
        get(authorize_on_workspace_host).post(consent),
    )
}

// ---------------------------------------------------------------------------
// Authorization endpoint

/// Parse and check an authorization request. `Err` is the finished answer: an error
/// page, or a redirect back to the client.
async fn check_request(
    state: &AppState,
    raw: &str,
) -> Result<(Params, AuthorizeRequest, Client), Response> {
    let params = rules::parse_params(raw.as_bytes()).map_err(|e| {
        AppError::BadRequest(format!("This authorization request is malformed: {e}."))
            .into_response()
    })?;
    let client = match params.get("client_id") {
        Some(id) => store::client(&state.db, id)
            .await
            .map_err(|e| AppError::from(e).into_response())?,
        None => None,
    };
    match authorize::validate(&params, client.as_ref()) {
        Ok(req) => match client {
            Some(c) => Ok((params, req, c)),
            None => Err(
                AppError::Internal(anyhow::anyhow!("validated without a client")).into_response(),
            ),
        },
        Err(refusal) => Err(refused(state, refusal)),
    }
}

fn refused(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => AppError::BadRequest(message).into_response(),
        Refusal::Redirect {
            redirect_uri,
            state: client_state,
            error,
        } => Redirect::to(&authorize::error_redirect(
            &redirect_uri,
            &error,
            client_state.as_deref(),
            state.config.base(),
        ))
        .into_response(),
    }
}

async fn authorize_on_app_host(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let (params, req, _) = match check_request(&state, q.as_deref().unwrap_or("")).await {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    OAuthWorkspacePage {
        client_name: req.client_name,
        request: params.to_query(),
        subdomain: String::new(),
        error: None,
    }
    .into_response()
}

#[derive(Deserialize)]
struct WorkspaceForm {
    #[serde(default)]
    subdomain: String,
    #[serde(default)]
    request: String,
}

/// The app host's workspace question answered: on to the same request on the
/// workspace's host.
async fn choose_workspace(
    State(state): State<AppState>,
    PageForm(form): PageForm<WorkspaceForm>,
) -> Result<Response, AppError> {
    let (params, req, _) = match check_request(&state, &form.request).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    let again = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            OAuthWorkspacePage {
                client_name: req.client_name.clone(),
                request: params.to_query(),
                subdomain: form.subdomain.clone(),
                error: Some(error),
            },
        )
            .into_response()
    };
    let sub = match Subdomain::parse(&form.subdomain) {
        Ok(s) => s,
        Err(e) => return Ok(again(e.0)),
    };
    if workspaces::by_subdomain(&state.db, sub.as_str())
        .await?
        .is_none()
    {
        return Ok(again(format!("There is no workspace called '{sub}'.")));
    }
    Ok(Redirect::to(&format!(
        "{}/oauth2/authorize?{}",
        state.config.workspace_origin(sub.as_str()),
        params.to_query()
    ))
    .into_response())
}

/// Only admins may hand out access to the SCIM API.
fn admins_only(me: &SignedIn, req: &AuthorizeRequest) -> Result<(), AppError> {
    if me.member.role == Role::Admin {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "Only admins of {ws} can allow {client} to use the SCIM API. You are signed in as {me} \
         ({role}). Ask an admin of {ws} to connect {client}.",
        ws = me.workspace.name,
        client = req.client_name,
        me = me.member.user_name,
        role = me.member.role,
    )))
}

async fn authorize_on_workspace_host(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    RawQuery(q): RawQuery,
    signed_in: Result<SignedIn, Response>,
) -> Result<Response, AppError> {
    let (params, req, _) = match check_request(&state, q.as_deref().unwrap_or("")).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    // Not signed in: sign in first; the sign-in form brings the browser back here.
    let me = match signed_in {
        Ok(me) => me,
        Err(to_signin) => return Ok(to_signin),
    };
    admins_only(&me, &req)?;
    let return_host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| req.redirect_uri.clone());
    Ok(ConsentPage {
        client_name: req.client_name.clone(),
        workspace_name: ws.name.clone(),
        workspace_host: state
            .config
            .workspace_origin(&ws.subdomain)
            .split_once("://")
            .map_or(String::new(), |(_, h)| h.to_owned()),
        member: me.member.user_name.clone(),
        access: req.scopes.iter().map(|s| s.describe().to_owned()).collect(),
        return_host,
        scim_enabled: ws.scim_enabled,
        csrf: csrf::token(&me.session).await?,
        request: params.to_query(),
    }
    .into_response())
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
}

/// Allow or Deny. The request rides along in a hidden field and is checked again
/// from scratch; the CSRF token ties the answer to this member's own page.
async fn consent(
    State(state): State<AppState>,
    me: SignedIn,
    headers: HeaderMap,
    PageForm(form): PageForm<ConsentForm>,
) -> Result<Response, AppError> {
    csrf::verify(&me.session, &headers, &form.csrf).await?;
    let (_, req, client) = match check_request(&state, &form.request).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    admins_only(&me, &req)?;
    let issuer = state.config.base();
    match form.decision.as_str() {
        "allow" => {
            let code = secrets::generate(Kind::AuthCode);
            let scope = req.scopes.to_string();
            store::create_code(
                &state.db,
                &store::NewCode {
                    digest: &secrets::digest(&code),
                    client_id: &client.id,
                    workspace_id: me.workspace.id,
                    member_id: me.member.id,
                    redirect_uri: &req.redirect_uri,
                    scope: &scope,
                    code_challenge: req.code_challenge.as_deref(),
                    expires_at: db::now() + rules::CODE_TTL,
                },
            )
            .await?;
            tracing::info!(client = %client.id, workspace = %me.workspace.subdomain, "oauth access allowed");
            Ok(Redirect::to(&authorize::success_redirect(&req, &code, issuer)).into_response())
        }
        "deny" => {
            let error = OAuthError::new(ErrorCode::AccessDenied, "the member denied access");
            Ok(Redirect::to(&authorize::error_redirect(
                &req.redirect_uri,
                &error,
                req.state.as_deref(),
                issuer,
            ))
            .into_response())
        }
        _ => Err(AppError::BadRequest("Choose Allow or Deny.".into())),
    }
}

// ---------------------------------------------------------------------------
// Token, revocation and introspection endpoints

/// Token-endpoint answers must never be cached (RFC 6749 §5.1).
fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn error_response(e: &OAuthError, basic: bool) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, Json(e.to_json())).into_response();
    if e.code == ErrorCode::InvalidClient && basic {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"rollcall\""),
        );
    }
    no_store(resp)
}

fn failure(f: AuthFailure) -> Response {
    error_response(&f.error, f.basic)
}

fn too_many(retry_after_secs: u64) -> Response {
    let e = OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("too many requests; try again in {retry_after_secs} seconds"),
    );
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(e.to_json())).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, retry_after_secs.into());
    no_store(resp)
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "oauth endpoint failed");
    error_response(
        &OAuthError::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        ),
        false,
    )
}

const PER_MINUTE: u32 = 60;

/// Count a request against a limit; `Err` is the 429 (or 500) to send.
async fn limit(state: &AppState, key: &str, max: u32, window_secs: u32) -> Result<(), Response> {
    match rate_limits::hit_batched(&state.db, key, Limit { max, window_secs }).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Limited { retry_after_secs }) => Err(too_many(retry_after_secs)),
        Err(e) => Err(server_error(e)),
    }
}

/// The common front of the client-authenticated endpoints: the per-address limit,
/// a form body, and an authenticated client.
async fn authenticated_client(
    state: &AppState,
    ip: &RemoteIp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Client), Response> {
    limit(
        state,
        &format!("oauth:addr:{}", ip.0),
        state.config.limits.token_per_address,
        PER_MINUTE,
    )
    .await?;
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(error_response(
            &OAuthError::invalid_request(
                "send the parameters as application/x-www-form-urlencoded",
            ),
            false,
        ));
    }
    let params = rules::parse_params(body)
        .map_err(|e| error_response(&OAuthError::invalid_request(e), false))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let creds = client::credentials(authorization, &params).map_err(failure)?;
    let found = store::client(&state.db, &creds.client_id)
        .await
        .map_err(server_error)?;
    client::authenticate(&creds, found.as_ref()).map_err(failure)?;
    match found {
        Some(c) => Ok((params, c)),
        None => Err(server_error("authenticated without a client")),
    }
}

/// Introspection and revocation need a client that proved who it is (RFC 7662
/// §2.1): a public client's id alone is not authentication, and would let anyone
/// who learns a user's token probe or revoke it.
async fn confidential_client(
    state: &AppState,
    ip: &RemoteIp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Client), Response> {
    let (params, client) = authenticated_client(state, ip, headers, body).await?;
    if client.public {
        return Err(error_response(
            &OAuthError::new(
                ErrorCode::InvalidClient,
                "this endpoint needs client authentication; public clients cannot use it",
            ),
            false,
        ));
    }
    Ok((params, client))
}

async fn token_endpoint(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, client) = match authenticated_client(&state, &ip, &headers, &body).await {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    // A public client authenticates by its id alone, which anyone can send: count
    // it per address too, so nobody can use up the limit of all its users.
    let client_key = if client.public {
        format!("oauth:client:{}:{}", client.id, ip.0)
    } else {
        format!("oauth:client:{}", client.id)
    };
    if let Err(resp) = limit(
        &state,
        &client_key,
        state.config.limits.token_per_client,
        PER_MINUTE,
    )
    .await
    {
        return resp;
    }
    let grant = match token::parse_grant(&params) {
        Ok(g) => g,
        Err(e) => return error_response(&e, false),
    };
    let config = &state.config;
    let now = db::now();
    let access = secrets::generate(Kind::AccessToken);
    let refresh = secrets::generate(Kind::RefreshToken);
    let new = NewTokens {
        access_digest: secrets::digest(&access),
        access_expires_at: now + config.access_token_ttl,
        refresh_digest: secrets::digest(&refresh),
        refresh_expires_at: now + config.refresh_token_ttl,
    };
    let grant_type = match &grant {
        Grant::AuthorizationCode { .. } => "authorization_code",
        Grant::RefreshToken { .. } => "refresh_token",
    };
    let issued = match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let presented_by = client.id.clone();
            let outcome = store::redeem_code(
                &state.db,
                &secrets::digest(&code),
                &client.id,
                &new,
                move |c| {
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
                },
            )
            .await;
            match outcome {
                Ok(Redeemed::Issued(i)) => Ok(i),
                Ok(Redeemed::Refused(e)) => Err(e),
                Ok(Redeemed::Unknown) => {
                    Err(OAuthError::invalid_grant("unknown authorization code"))
                }
                Ok(Redeemed::Replayed) => {
                    tracing::warn!(client = %client.id, "authorization code replayed; its grant is revoked");
                    Err(OAuthError::invalid_grant(
                        "the code was already used; every token issued for it is revoked",
                    ))
                }
                Err(e) => return server_error(e),
            }
        }
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => {
            let grace = config.refresh_grace;
            let client_id = client.id.clone();
            let outcome = store::refresh(
                &state.db,
                &secrets::digest(&refresh_token),
                &new,
                move |s| refresh_plan(s, &client_id, scope, now, grace),
            )
            .await;
            match outcome {
                Ok(Some(result)) => result,
                Ok(None) => Err(OAuthError::invalid_grant("unknown refresh token")),
                Err(e) => return server_error(e),
            }
        }
    };
    match issued {
        Ok(i) => {
            crate::metrics::token_issued(grant_type);
            let scope = Scopes::parse(&i.scope).unwrap_or_default();
            no_store(
                Json(token::token_response(
                    &access,
                    config.access_token_ttl,
                    &refresh,
                    scope,
                ))
                .into_response(),
            )
        }
        Err(e) => error_response(&e, false),
    }
}

/// The refresh rules (`oauth::token::decide_refresh`) as the store carries them out.
fn refresh_plan(
    s: &store::RefreshState,
    client_id: &str,
    requested: Option<Scopes>,
    now: time::OffsetDateTime,
    grace: std::time::Duration,
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

/// RFC 7009. Revoking a refresh token ends its grant; an access token, only itself.
/// Unknown tokens, and tokens of other clients, get the same empty 200.
async fn revoke(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, client) = match confidential_client(&state, &ip, &headers, &body).await {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let Some(presented) = params.get("token") else {
        return error_response(&OAuthError::invalid_request("token is missing"), false);
    };
    let found = match store::token(&state.db, &secrets::digest(presented)).await {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    if let Some(t) = found.filter(|t| t.client_id == client.id) {
        let done = match TokenKind::parse(&t.kind) {
            Some(TokenKind::Refresh) => store::end_grant(&state.db, t.grant_id).await,
            _ => store::revoke_token(&state.db, t.id).await,
        };
        if let Err(e) = done {
            return server_error(e);
        }
    }
    no_store(StatusCode::OK.into_response())
}

/// RFC 7662, for a client's own tokens.
async fn introspect(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, client) = match confidential_client(&state, &ip, &headers, &body).await {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let Some(presented) = params.get("token") else {
        return error_response(&OAuthError::invalid_request("token is missing"), false);
    };
    let found = match store::token(&state.db, &secrets::digest(presented)).await {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    let facts = found.filter(|t| t.client_id == client.id).and_then(|t| {
        Some(TokenFacts {
            kind: TokenKind::parse(&t.kind)?,
            revoked: !t.live(),
            scope: t.scope,
            client_id: t.client_id,
            member_id: t.member_id.to_string(),
            workspace: t.subdomain,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            rotated_at: t.rotated_at,
        })
    });
    let answer = token::introspection(
        facts.as_ref(),
        state.config.base(),
        db::now(),
        state.config.refresh_grace,
    );
    no_store(Json(answer).into_response())
}

async fn metadata(State(state): State<AppState>) -> Response {
    Json(rules::metadata::document(state.config.base())).into_response()
}
