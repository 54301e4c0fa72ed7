//! Sign-in through the workspace's identity provider. Thin: the protocol rules are
//! in `crate::sso`, storage in `crate::store::sso`, and who signs in once the IdP has
//! vouched for an account in `app::signin`.
//!
//! OIDC keeps its pending state (state, nonce, PKCE verifier, where to go next) in
//! the session: the callback is a top-level GET, so the SameSite=Lax cookie comes
//! back. SAML's answer is a cross-site POST, which does not carry Lax cookies, so
//! its pending request travels in a cookie of its own that a cross-site POST does
//! carry (see [`pending_cookie`]), sealed with the server key. That cookie binds the
//! response to the browser that started the sign-in (a member cannot post their
//! own response into someone else's browser), and nothing is stored before a
//! signed response comes back, so unauthenticated `/sso/start` writes nothing.
//!
//! After the first sign-in an IdP account is linked to its member by the IdP's
//! issuer and subject; the email the IdP sends is only used to find the member
//! the first time (see `app::signin::by_sso`).

use super::pages::{safe_next, start_session};
use super::{AppState, CurrentWorkspace};
use crate::app::signin::{self, IdpAccount, SsoError};
use crate::http::error::AppError;
use crate::sso::oidc::{OidcError, OidcSettings, Pending};
use crate::sso::saml::{SamlError, SamlSettings};
use crate::sso::{self, Protocol};
use crate::store::sso::SsoRow;
use crate::store::workspaces::Workspace;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/sso/start", get(start))
        .route("/sso/oidc/callback", get(oidc_callback))
        .route("/sso/saml/acs", post(saml_acs))
        .route("/sso/saml/metadata", get(saml_metadata))
}

const OIDC_PENDING: &str = "sso_oidc_pending";
/// The cookie holding the browser's pending SAML AuthnRequest.
const SAML_COOKIE: &str = "rollcall_saml";
/// Only the ACS needs it.
const SAML_COOKIE_PATH: &str = "/sso/saml";

/// `Set-Cookie` for the pending SAML request (`max_age` 0 clears it). Host-only (no
/// Domain) and HttpOnly. The IdP posts the response from its own site, so the
/// cookie must survive a cross-site top-level POST:
/// - on https it is `SameSite=None; Secure`, which browsers send on that POST;
/// - on http, an explicit `Lax` is never sent on that POST, and `SameSite=None`
///   is dropped without `Secure`, which an http origin may set only when it is
///   localhost (Chromium accepts it on `*.localhost`; other http hosts and simple
///   HTTP clients do not). So no SameSite attribute: Firefox and Safari then send
///   it (their default is None), and Chromium, whose default is Lax, still sends
///   it on a top-level cross-site POST within two minutes of setting it. Checked
///   with Chromium 156 posting from `http://127.0.0.1` to `http://acme.localhost`:
///   the cookie came at once and not after 130 s, while `None; Secure` came both
///   times. Plain http is for local development, where an IdP round trip within
///   two minutes is enough; deployments use https.
fn pending_cookie(value: &str, max_age: i64, https: bool) -> String {
    let mut cookie =
        format!("{SAML_COOKIE}={value}; Path={SAML_COOKIE_PATH}; Max-Age={max_age}; HttpOnly");
    if https {
        cookie.push_str("; Secure; SameSite=None");
    }
    cookie
}

/// The value of cookie `name` in the request, if sent.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The workspace's OIDC settings with the secret opened.
pub fn oidc_settings(
    state: &AppState,
    ws: &Workspace,
    row: &SsoRow,
) -> Result<OidcSettings, AppError> {
    let sealed = row.oidc_client_secret.as_deref().unwrap_or_default();
    let secret = state
        .sso
        .key
        .open(&sso::client_secret_context(ws.id), sealed)
        .map_err(|_| {
            AppError::Internal(anyhow::anyhow!(
                "the OIDC client secret of workspace {} cannot be opened with this server key",
                ws.subdomain
            ))
        })?;
    Ok(OidcSettings {
        issuer: row.oidc_issuer.clone().unwrap_or_default(),
        client_id: row.oidc_client_id.clone().unwrap_or_default(),
        client_secret: String::from_utf8_lossy(&secret).into_owned(),
        redirect_uri: sso::idp_values(&state.config, &ws.subdomain).oidc_redirect_uri,
    })
}

pub fn saml_settings(state: &AppState, ws: &Workspace, row: &SsoRow) -> SamlSettings {
    let values = sso::idp_values(&state.config, &ws.subdomain);
    SamlSettings {
        idp_entity_id: row.saml_idp_entity_id.clone().unwrap_or_default(),
        sso_url: row.saml_sso_url.clone().unwrap_or_default(),
        certificate_pem: row.saml_certificate.clone().unwrap_or_default(),
        sp_entity_id: values.saml_sp_entity_id,
        acs_url: values.saml_acs_url,
    }
}

/// Hand the browser to the workspace's IdP.
async fn start(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    session: Session,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    let row = crate::store::sso::get(&state.db, ws.id).await?;
    let next = safe_next(q.next.as_deref());
    match sso::active_protocol(&row) {
        None => Err(AppError::NotFound(
            "Single sign-on is not set up for this workspace.".into(),
        )),
        Some(Protocol::Oidc) => {
            let settings = oidc_settings(&state, &ws, &row)?;
            let (url, pending) = state
                .sso
                .oidc
                .start(&settings, next)
                .await
                .map_err(oidc_error)?;
            session
                .insert(OIDC_PENDING, pending)
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("session: {e}")))?;
            Ok(Redirect::to(url.as_str()).into_response())
        }
        Some(Protocol::Saml) => {
            let settings = saml_settings(&state, &ws, &row);
            let id = sso::saml::new_request_id();
            let url = sso::saml::authn_request_url(&settings, &id).map_err(saml_error)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let pending = sso::saml::Pending::new(id, next, now);
            let sealed = sso::saml::seal_pending(&state.sso.key, ws.id, &pending);
            let cookie = pending_cookie(
                &sealed,
                sso::saml::PENDING_TTL_SECS,
                state.config.secure_cookies(),
            );
            let mut response = Redirect::to(url.as_str()).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie)
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("cookie: {e}")))?,
            );
            Ok(response)
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn oidc_callback(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    session: Session,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    // Single use: whatever happens next, this pending sign-in is gone.
    let pending: Option<Pending> = session
        .remove(OIDC_PENDING)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("session: {e}")))?;
    let pending = sso::oidc::check_state(pending, q.state.as_deref().unwrap_or_default())
        .map_err(oidc_error)?;
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or(error);
        return Err(oidc_error(OidcError::Refused(detail)));
    }
    let code = q
        .code
        .ok_or_else(|| AppError::BadRequest("The identity provider sent no code.".into()))?;
    let row = crate::store::sso::get(&state.db, ws.id).await?;
    if sso::active_protocol(&row) != Some(Protocol::Oidc) {
        return Err(AppError::BadRequest(
            "OpenID Connect sign-in is not set up for this workspace.".into(),
        ));
    }
    let settings = oidc_settings(&state, &ws, &row)?;
    let identity = state
        .sso
        .oidc
        .finish(&settings, &pending, &code)
        .await
        .map_err(oidc_error)?;
    let account = IdpAccount {
        issuer: &settings.issuer,
        subject: Some(&identity.subject),
        email: &identity.email,
    };
    complete(&state, &ws, &row, &session, &account, &pending.next).await
}

#[derive(Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
}

async fn saml_acs(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Response {
    let mut answered = false;
    let result = saml_answer(&state, &ws, &session, &headers, &form, &mut answered).await;
    let mut response = result.into_response();
    // Once its request is answered the cookie has done its work.
    if answered {
        let clear = pending_cookie("", 0, state.config.secure_cookies());
        if let Ok(v) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

async fn saml_answer(
    state: &AppState,
    ws: &Workspace,
    session: &Session,
    headers: &HeaderMap,
    form: &AcsForm,
    answered: &mut bool,
) -> Result<Response, AppError> {
    let row = crate::store::sso::get(&state.db, ws.id).await?;
    if sso::active_protocol(&row) != Some(Protocol::Saml) {
        return Err(AppError::BadRequest(
            "SAML sign-in is not set up for this workspace.".into(),
        ));
    }
    let settings = saml_settings(state, ws, &row);
    let xml = sso::saml::decode_response(&form.saml_response).map_err(saml_error)?;
    sso::saml::check_shape(&xml).map_err(saml_error)?;
    let request_id = sso::saml::claimed_request_id(&xml).map_err(saml_error)?;
    // The request must be this browser's own: its sealed cookie names it.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pending = cookie_value(headers, SAML_COOKIE)
        .and_then(|c| sso::saml::open_pending(&state.sso.key, ws.id, c, now))
        .filter(|p| sso::saml::answers(p, &request_id))
        .ok_or_else(|| saml_error(SamlError::OtherBrowser))?;
    let verified = sso::saml::verify_response(&settings, &xml, &pending.id).map_err(saml_error)?;
    // Only now, with the response verified, use up the request (once, across every
    // process on this database, until its cookie has expired anyway) ...
    let until = time::OffsetDateTime::from_unix_timestamp(pending.expires)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        + time::Duration::minutes(1);
    if !crate::store::sso::saml_request_answered(&state.db, ws.id, &pending.id, until).await? {
        return Err(saml_error(SamlError::Replayed));
    }
    *answered = true;
    // ... and the assertion.
    if !crate::store::sso::use_assertion(
        &state.db,
        ws.id,
        &verified.assertion_id,
        verified.remember_until,
    )
    .await?
    {
        return Err(saml_error(SamlError::Replayed));
    }
    let account = IdpAccount {
        issuer: row.saml_idp_entity_id.as_deref().unwrap_or_default(),
        subject: verified.subject.as_deref(),
        email: &verified.email,
    };
    complete(state, ws, &row, session, &account, &pending.next).await
}

async fn saml_metadata(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
) -> Response {
    let v = sso::idp_values(&state.config, &ws.subdomain);
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        sso::saml::sp_metadata_xml(&v.saml_sp_entity_id, &v.saml_acs_url),
    )
        .into_response()
}

/// The IdP vouched for `account`: find its member (`app::signin::by_sso`), start a
/// fresh session, and go where they were going.
async fn complete(
    state: &AppState,
    ws: &Workspace,
    row: &SsoRow,
    session: &Session,
    account: &IdpAccount<'_>,
    next: &str,
) -> Result<Response, AppError> {
    let member = signin::by_sso(&state.db, ws, row, account)
        .await
        .map_err(|e| sso_signin_error(e, ws))?;
    start_session(session, ws.id, member.id).await?;
    Ok(Redirect::to(&safe_next(Some(next))).into_response())
}

fn sso_signin_error(e: SsoError, ws: &Workspace) -> AppError {
    match e {
        SsoError::NotAMember => AppError::Forbidden(format!(
            "The account you signed in with is not a member of {}. Ask your workspace admin to \
             add you.",
            ws.name
        )),
        SsoError::Deactivated => AppError::Forbidden(format!(
            "Your account is deactivated in {}. Ask your workspace admin to reactivate it.",
            ws.name
        )),
        SsoError::LinkedElsewhere => AppError::Forbidden(
            "The member with this email address is already linked to a different account at \
             your identity provider, so this account cannot sign in as them. Ask your \
             workspace admin."
                .into(),
        ),
        SsoError::InvalidEmail => {
            AppError::BadRequest("The identity provider's email address is not valid.".into())
        }
        SsoError::Vanished => AppError::Internal(anyhow::anyhow!("member vanished")),
        SsoError::Store(e) => e.into(),
    }
}

fn oidc_error(e: OidcError) -> AppError {
    tracing::warn!(error = ?e, "OIDC sign-in failed");
    // What the IdP sent (error descriptions, answers, why a fetch failed) goes to
    // the log only; the page names the kind of failure.
    match e {
        OidcError::Unreachable(_) | OidcError::BadIssuer(_) => AppError::BadGateway(
            "The identity provider could not be reached or answered badly. Try again later, \
             or ask your workspace admin to check the single sign-on settings."
                .into(),
        ),
        OidcError::Refused(_) => AppError::BadRequest(
            "The identity provider refused the sign-in. Try again, or ask your workspace \
             admin."
                .into(),
        ),
        OidcError::Token(_) => AppError::BadRequest(
            "The identity provider's answer could not be used. Try again, or ask your \
             workspace admin."
                .into(),
        ),
        _ => AppError::BadRequest(e.to_string()),
    }
}

fn saml_error(e: SamlError) -> AppError {
    tracing::warn!(error = %e, "SAML sign-in failed");
    match e {
        SamlError::Settings(_) => AppError::Internal(anyhow::anyhow!("{e}")),
        _ => AppError::BadRequest(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_cookie_survives_a_cross_site_post() {
        assert_eq!(
            pending_cookie("v", 600, true),
            "rollcall_saml=v; Path=/sso/saml; Max-Age=600; HttpOnly; Secure; SameSite=None"
        );
        // On http: no Secure (not stored) and no SameSite (see `pending_cookie`).
        assert_eq!(
            pending_cookie("v", 600, false),
            "rollcall_saml=v; Path=/sso/saml; Max-Age=600; HttpOnly"
        );
        assert!(
            pending_cookie("", 0, true).starts_with("rollcall_saml=; Path=/sso/saml; Max-Age=0;")
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x_rollcall_saml=no; a=b"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("rollcall_saml=yes"),
        );
        assert_eq!(cookie_value(&h, SAML_COOKIE), Some("yes"));
        assert_eq!(cookie_value(&h, "a"), Some("b"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }
}
