//! Sign-in through the workspace's identity provider. Thin: the protocol rules are
//! in `crate::sso`, storage in `crate::store::sso`.
//!
//! OIDC keeps its pending state (state, nonce, PKCE verifier, where to go next) in
//! the session: the callback is a top-level GET, so the SameSite=Lax cookie comes
//! back. SAML's answer is a cross-site POST, which does not carry Lax cookies, so
//! its pending requests live in the database, keyed by the AuthnRequest id.

use super::pages::{safe_next, start_session};
use super::{AppState, CurrentWorkspace};
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::sso::oidc::{OidcError, OidcSettings, Pending};
use crate::sso::saml::{SamlError, SamlSettings};
use crate::sso::{self, Protocol};
use crate::store::sso::SsoRow;
use crate::store::{members, sso as store, workspaces::Workspace};
use axum::extract::{Query, State};
use axum::http::header;
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
/// How long an AuthnRequest may wait for its answer.
const SAML_REQUEST_TTL: time::Duration = time::Duration::minutes(10);

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
    let row = store::get(&state.db, ws.id).await?;
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
            let expires = crate::store::now() + SAML_REQUEST_TTL;
            store::saml_request_sent(&state.db, ws.id, &id, &next, expires).await?;
            Ok(Redirect::to(url.as_str()).into_response())
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
    let row = store::get(&state.db, ws.id).await?;
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
    complete(&state, &ws, &row, &session, &identity.email, &pending.next).await
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
    Form(form): Form<AcsForm>,
) -> Result<Response, AppError> {
    let row = store::get(&state.db, ws.id).await?;
    if sso::active_protocol(&row) != Some(Protocol::Saml) {
        return Err(AppError::BadRequest(
            "SAML sign-in is not set up for this workspace.".into(),
        ));
    }
    let settings = saml_settings(&state, &ws, &row);
    let xml = sso::saml::decode_response(&form.saml_response).map_err(saml_error)?;
    let request_id = sso::saml::claimed_request_id(&xml).map_err(saml_error)?;
    let verified = sso::saml::verify_response(&settings, &xml, &request_id).map_err(saml_error)?;
    // Only now, with the response verified, use up the request (once) ...
    let next = store::take_saml_request(&state.db, ws.id, &request_id)
        .await?
        .ok_or_else(|| saml_error(SamlError::Unsolicited))?;
    // ... and the assertion (once, across every process on this database).
    if !store::use_assertion(
        &state.db,
        ws.id,
        &verified.assertion_id,
        verified.remember_until,
    )
    .await?
    {
        return Err(saml_error(SamlError::Replayed));
    }
    complete(&state, &ws, &row, &session, &verified.email, &next).await
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

/// The IdP vouched for `email`: find (or, when allowed, create) the member, start
/// a fresh session, and go where they were going.
async fn complete(
    state: &AppState,
    ws: &Workspace,
    row: &SsoRow,
    session: &Session,
    email: &str,
    next: &str,
) -> Result<Response, AppError> {
    let member = match members::by_email(&state.db, ws.id, email).await? {
        Some(m) => m,
        None if row.auto_create => {
            let email = Email::parse(email).map_err(|_| {
                AppError::BadRequest(format!(
                    "The identity provider's email address '{email}' is not valid."
                ))
            })?;
            let data = crate::ops::local_member(&email, Role::Contributor);
            match members::create(&state.db, ws.id, &data, None).await {
                Ok(m) => m,
                // Created by a parallel sign-in a moment ago.
                Err(crate::store::StoreError::Conflict(_)) => {
                    members::by_email(&state.db, ws.id, email.as_str())
                        .await?
                        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("member vanished")))?
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            return Err(not_a_member(&format!(
                "{email} is not a member of {}. Ask your workspace admin to add you.",
                ws.name
            )));
        }
    };
    if !member.active {
        return Err(not_a_member(&format!(
            "The account {email} is deactivated in {}. Ask your workspace admin to reactivate it.",
            ws.name
        )));
    }
    start_session(session, ws.id, member.id).await?;
    Ok(Redirect::to(&safe_next(Some(next))).into_response())
}

fn not_a_member(message: &str) -> AppError {
    AppError::Forbidden(message.to_owned())
}

fn oidc_error(e: OidcError) -> AppError {
    tracing::warn!(error = %e, "OIDC sign-in failed");
    match e {
        OidcError::Unreachable(_) | OidcError::BadIssuer(_) => AppError::BadGateway(e.to_string()),
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
