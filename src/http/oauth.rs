//! The OAuth2 endpoints. App host: `/oauth2/authorize` (which workspace?),
//! `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect` and the RFC 8414 metadata.
//! Workspace host: `/oauth2/authorize` again (sign-in, then consent). The use cases
//! are in `app::tokens`; this module parses requests and renders their outcomes.

use super::extract::PageForm;
use super::pages::SignedIn;
use super::views::{ConsentPage, OAuthWorkspacePage};
use super::{AppState, CurrentWorkspace, RemoteIp, csrf};
use crate::app::admin;
use crate::app::tokens::{
    self, AuthorizeError, CheckedRequest, ClientRequest, ConsentError, Decision, TokenError,
};
use crate::domain::Subdomain;
use crate::http::error::AppError;
use crate::oauth::authorize::{self, AuthorizeRequest, Refusal};
use crate::oauth::token::token_response;
use crate::oauth::{ErrorCode, OAuthError};
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

/// Check an authorization request. `Err` is the finished answer: an error page, or a
/// redirect back to the client.
async fn check_request(state: &AppState, raw: &str) -> Result<CheckedRequest, Response> {
    tokens::check_request(&state.db, raw)
        .await
        .map_err(|e| match e {
            AuthorizeError::Malformed(_) => AppError::BadRequest(e.to_string()).into_response(),
            AuthorizeError::Refused(refusal) => refused(state, refusal),
            AuthorizeError::Internal(what) => {
                AppError::Internal(anyhow::anyhow!(what)).into_response()
            }
            AuthorizeError::Store(e) => AppError::from(e).into_response(),
        })
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
    let checked = match check_request(&state, q.as_deref().unwrap_or("")).await {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    // A workspace client's workspace is known: no question, straight to its host.
    match tokens::bound_workspace(&state.db, &checked).await {
        Ok(Some(ws)) => return to_workspace(&state, &ws.subdomain, &checked.params),
        Ok(None) => {}
        Err(e) => return authorize_failure(e),
    }
    OAuthWorkspacePage {
        client_name: checked.request.client_name,
        request: checked.params.to_query(),
        subdomain: String::new(),
        error: None,
    }
    .into_response()
}

/// The same request on the workspace's host.
fn to_workspace(state: &AppState, subdomain: &str, params: &crate::oauth::Params) -> Response {
    Redirect::to(&format!(
        "{}/oauth2/authorize?{}",
        state.config.workspace_origin(subdomain),
        params.to_query()
    ))
    .into_response()
}

fn authorize_failure(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Store(e) => AppError::from(e).into_response(),
        other => AppError::Internal(anyhow::anyhow!(other.to_string())).into_response(),
    }
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
    let checked = match check_request(&state, &form.request).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    let CheckedRequest {
        params, request, ..
    } = &checked;
    let again = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            OAuthWorkspacePage {
                client_name: request.client_name.clone(),
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
    let ws = match admin::workspace(&state.db, &sub).await {
        Ok(ws) => ws,
        Err(admin::AdminError::NoWorkspace(_)) => {
            return Ok(again(format!("There is no workspace called '{sub}'.")));
        }
        Err(e) => return Err(admin_failure(e)),
    };
    tokens::check_workspace(&checked, &ws).map_err(AppError::BadRequest)?;
    Ok(to_workspace(&state, sub.as_str(), params))
}

/// An administration use case failed where no refusal was expected.
fn admin_failure(e: admin::AdminError) -> AppError {
    match e {
        admin::AdminError::Store(e) => e.into(),
        other => AppError::Internal(other.into()),
    }
}

/// Only admins may hand out access to the SCIM API.
fn admins_only(me: &SignedIn, req: &AuthorizeRequest) -> Result<(), AppError> {
    tokens::may_consent(&me.member).map_err(|e| consent_error(e, me, req))
}

fn consent_error(e: ConsentError, me: &SignedIn, req: &AuthorizeRequest) -> AppError {
    match e {
        ConsentError::NotAdmin => AppError::Forbidden(format!(
            "Only admins of {ws} can allow {client} to use the SCIM API. You are signed in as {me} \
             ({role}). Ask an admin of {ws} to connect {client}.",
            ws = me.workspace.name,
            client = req.client_name,
            me = me.member.user_name,
            role = me.member.role,
        )),
        ConsentError::OtherWorkspace(why) => AppError::BadRequest(why),
        ConsentError::Store(e) => e.into(),
    }
}

async fn authorize_on_workspace_host(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    RawQuery(q): RawQuery,
    signed_in: Result<SignedIn, Response>,
) -> Result<Response, AppError> {
    let checked = match check_request(&state, q.as_deref().unwrap_or("")).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    // A workspace client that reached another workspace goes no further here.
    tokens::check_workspace(&checked, &ws).map_err(AppError::BadRequest)?;
    let CheckedRequest {
        params, request, ..
    } = checked;
    // Not signed in: sign in first; the sign-in form brings the browser back here.
    let me = match signed_in {
        Ok(me) => me,
        Err(to_signin) => return Ok(to_signin),
    };
    admins_only(&me, &request)?;
    let return_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    Ok(ConsentPage {
        client_name: request.client_name.clone(),
        workspace_name: ws.name.clone(),
        workspace_host: state
            .config
            .workspace_origin(&ws.subdomain)
            .split_once("://")
            .map_or(String::new(), |(_, h)| h.to_owned()),
        member: me.member.user_name.clone(),
        access: request
            .scopes
            .iter()
            .map(|s| s.describe().to_owned())
            .collect(),
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
    let checked = match check_request(&state, &form.request).await {
        Ok(ok) => ok,
        Err(resp) => return Ok(resp),
    };
    tokens::check_workspace(&checked, &me.workspace).map_err(AppError::BadRequest)?;
    admins_only(&me, &checked.request)?;
    let Some(decision) = Decision::parse(&form.decision) else {
        return Err(AppError::BadRequest("Choose Allow or Deny.".into()));
    };
    let back = tokens::consent(
        &state.db,
        state.config.base(),
        &me.workspace,
        &me.member,
        &checked,
        decision,
    )
    .await
    .map_err(|e| consent_error(e, &me, &checked.request))?;
    Ok(Redirect::to(&back).into_response())
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

/// A refused token, revocation or introspection request, in RFC 6749 JSON.
fn token_error(e: TokenError) -> Response {
    match e {
        TokenError::TooManyRequests { retry_after_secs } => too_many(retry_after_secs),
        TokenError::Client(f) => error_response(&f.error, f.basic),
        TokenError::Refused(e) => error_response(&e, false),
        TokenError::Internal(what) => server_error(what),
        TokenError::Store(e) => server_error(e),
    }
}

/// The parts of a client-authenticated request that the use cases look at.
fn client_request<'a>(
    ip: &'a RemoteIp,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> ClientRequest<'a> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    ClientRequest {
        address: &ip.0,
        form_encoded,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        body,
    }
}

async fn token_endpoint(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = client_request(&ip, &headers, &body);
    match tokens::token(&state.db, &state.config, &req).await {
        Ok(t) => no_store(
            Json(token_response(
                &t.access_token,
                t.expires_in,
                t.refresh_token.as_deref(),
                t.scope,
            ))
            .into_response(),
        ),
        Err(e) => token_error(e),
    }
}

/// RFC 7009: an empty 200 whether or not the token was known.
async fn revoke(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = client_request(&ip, &headers, &body);
    match tokens::revoke(&state.db, &state.config, &req).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => token_error(e),
    }
}

/// RFC 7662, for a client's own tokens.
async fn introspect(
    State(state): State<AppState>,
    ip: RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = client_request(&ip, &headers, &body);
    match tokens::introspect(&state.db, &state.config, &req).await {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => token_error(e),
    }
}

async fn metadata(State(state): State<AppState>) -> Response {
    Json(crate::oauth::metadata::document(state.config.base())).into_response()
}
