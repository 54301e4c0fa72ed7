//! The signed-in workspace pages: members, and for admins the settings (SSO and
//! SCIM, Public API tokens, OAuth clients, authorized apps) and the provisioning
//! activity.

use super::extract::PageQuery;
use super::pages::{SignedIn, urlencode};
use super::views::*;
use super::{AppState, csrf};
use crate::app::admin::{self, AdminError};
use crate::domain::Role;
use crate::http::error::AppError;
use crate::store::members::{self, Cursor};
use crate::store::{activity, oauth, teams, tokens};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/members", get(members_page))
        .route("/members/{id}", get(member_page).post(member_update))
        .route("/settings", get(|| async { Redirect::to("/settings/sso") }))
        .route("/settings/sso", get(sso_settings))
        .route("/settings/scim", post(scim_switch))
        .route("/settings/scim-teams", post(scim_teams_switch))
        .route("/settings/password-signin", post(password_switch))
        .route("/settings/sso/oidc", post(sso_oidc))
        .route("/settings/sso/saml", post(sso_saml))
        .route("/settings/sso/off", post(sso_off))
        .route("/settings/sso/passwords", post(sso_passwords))
        .route("/settings/api", get(api_settings))
        .route("/settings/api/tokens", post(create_token))
        .route("/settings/api/tokens/{id}/revoke", post(revoke_token))
        .route(
            "/settings/clients",
            get(clients_settings).post(register_client),
        )
        .route("/settings/clients/{id}/rotate", post(rotate_client))
        .route("/settings/clients/{id}/delete", post(delete_client))
        .route("/settings/apps", get(apps_settings))
        .route("/settings/apps/{id}/revoke", post(revoke_app))
        .route("/activity", get(activity_page))
        .merge(super::teams::routes())
}

pub(super) const PAGE_SIZE: i64 = 50;

/// A form posted to an admin page: by a signed-in member of this workspace, with a
/// valid CSRF token, who is an admin. Every settings change goes through it.
pub(super) struct AdminPost<T> {
    pub me: SignedIn,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for AdminPost<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = SignedIn::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let unreadable = |e: String| {
            AppError::BadRequest(format!(
                "The form could not be read ({e}). Go back, reload the page and try again."
            ))
            .into_response()
        };
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| unreadable(e.body_text()))?;
        let CsrfField { csrf } =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| unreadable(e.to_string()))?;
        csrf::verify(&me.session, &headers, &csrf)
            .await
            .map_err(IntoResponse::into_response)?;
        require_admin(&me).map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| unreadable(e.to_string()))?;
        Ok(AdminPost { me, form })
    }
}
pub(super) const NOTICE: &str = "flash_notice";
pub(super) const ERROR: &str = "flash_error";

/// Say something on the next page shown.
pub(super) async fn flash(session: &Session, key: &str, text: impl Into<String>) {
    let _ = session.insert(key, text.into()).await;
}

pub(super) async fn shell(me: &SignedIn, tab: &'static str) -> Result<Shell, AppError> {
    Ok(Shell {
        workspace_name: me.workspace.name.clone(),
        me: me.member.user_name.clone(),
        csrf: csrf::token(&me.session).await?,
        is_admin: is_admin(me),
        tab,
        notice: me.session.remove::<String>(NOTICE).await.ok().flatten(),
        error: me.session.remove::<String>(ERROR).await.ok().flatten(),
    })
}

pub(super) fn is_admin(me: &SignedIn) -> bool {
    me.member.role == Role::Admin
}

fn require_admin(me: &SignedIn) -> Result<(), AppError> {
    if is_admin(me) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only admins of this workspace can open its settings. Ask an admin if you need a change.".into(),
        ))
    }
}

fn when(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

fn when_opt(t: Option<OffsetDateTime>) -> String {
    t.map(when).unwrap_or_else(|| "never".into())
}

#[derive(Deserialize)]
struct MembersQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    before: Option<String>,
}

async fn members_page(
    State(state): State<AppState>,
    me: SignedIn,
    PageQuery(query): PageQuery<MembersQuery>,
) -> Result<MembersPage, AppError> {
    let q = query.q.trim().to_owned();
    let cursor = match (&query.after, &query.before) {
        (Some(a), _) => Cursor::After(a),
        (None, Some(b)) => Cursor::Before(b),
        _ => Cursor::First,
    };
    // One extra row tells whether there is a further page.
    let mut rows = members::browse(&state.db, me.workspace.id, &q, cursor, PAGE_SIZE + 1).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    if more {
        match cursor_is_before(&query) {
            true => {
                rows.remove(0);
            }
            false => {
                rows.pop();
            }
        }
    }
    let link =
        |key: &str, value: &str| format!("/members?q={}&{key}={}", urlencode(&q), urlencode(value));
    let (first, last) = (
        rows.first().map(|m| m.user_name.clone()),
        rows.last().map(|m| m.user_name.clone()),
    );
    let backwards = cursor_is_before(&query);
    let has_prev = if backwards {
        more
    } else {
        query.after.is_some()
    };
    let has_next = if backwards { true } else { more };
    let prev = first.filter(|_| has_prev).map(|f| link("before", &f));
    let next = last.filter(|_| has_next).map(|l| link("after", &l));
    Ok(MembersPage {
        total: members::count(&state.db, me.workspace.id).await?,
        members: rows
            .into_iter()
            .map(|m| MemberRow {
                id: m.id.to_string(),
                display_name: m.display_name.clone().unwrap_or_default(),
                user_name: m.user_name,
                role: m.role,
                active: m.active,
                scim_managed: m.scim_managed,
            })
            .collect(),
        shell: shell(&me, "members").await?,
        q,
        prev,
        next,
    })
}

fn cursor_is_before(q: &MembersQuery) -> bool {
    q.after.is_none() && q.before.is_some()
}

async fn load_member(
    state: &AppState,
    me: &SignedIn,
    id: &str,
) -> Result<members::Member, AppError> {
    let missing = || AppError::NotFound("There is no such member in this workspace.".into());
    let id = Uuid::parse_str(id).map_err(|_| missing())?;
    members::by_id(&state.db, me.workspace.id, id)
        .await?
        .ok_or_else(missing)
}

async fn member_page(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<MemberPage, AppError> {
    let m = load_member(&state, &me, &id).await?;
    let name = |k: &str| {
        m.resource
            .0
            .get("name")
            .and_then(|n| n.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (editable, why_not) = match admin::may_edit(&m) {
        _ if !is_admin(&me) => (false, "Only admins can change members.".to_owned()),
        Ok(()) => (true, String::new()),
        Err(why) => (false, why.to_string()),
    };
    let teams = teams::teams_of(&state.db, me.workspace.id, &[m.id])
        .await?
        .into_iter()
        .map(|t| TeamLink {
            id: t.team_id.to_string(),
            name: t.display_name,
        })
        .collect();
    Ok(MemberPage {
        teams,
        id: m.id.to_string(),
        version: m.version,
        given_name: name("givenName"),
        family_name: name("familyName"),
        display_name: m.display_name.clone().unwrap_or_default(),
        role: m.role,
        roles: Role::ALL,
        active: m.active,
        scim_managed: m.scim_managed,
        user_name: m.user_name,
        editable,
        why_not,
        shell: shell(&me, "members").await?,
    })
}

#[derive(Deserialize)]
struct MemberForm {
    version: i64,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    display_name: String,
    role: String,
    active: Option<String>,
}

async fn member_update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, form }: AdminPost<MemberForm>,
) -> Result<Response, AppError> {
    let m = load_member(&state, &me, &id).await?;
    let role = Role::parse(&form.role).map_err(|e| AppError::BadRequest(e.0))?;
    let edit = admin::MemberEdit {
        given_name: form.given_name,
        family_name: form.family_name,
        display_name: form.display_name,
        role,
        active: form.active.is_some(),
    };
    match admin::edit_member(&state.db, &me.member, &m, edit, form.version).await {
        Ok(_) => flash(&me.session, NOTICE, format!("Saved {}.", m.user_name)).await,
        Err(admin::EditError::Store(e)) => {
            tracing::error!(error = %e, "member edit failed");
            flash(&me.session, ERROR, SOMETHING_WENT_WRONG).await
        }
        Err(why) => flash(&me.session, ERROR, why.to_string()).await,
    }
    Ok(Redirect::to(&format!("/members/{}", m.id)).into_response())
}

fn scim_url(state: &AppState) -> String {
    format!("{}/scim/v2", state.config.base())
}

async fn sso_settings(
    State(state): State<AppState>,
    me: SignedIn,
) -> Result<SsoSettingsPage, AppError> {
    require_admin(&me)?;
    let sso = admin::sso_settings(&state.db, &state.config, &me.workspace)
        .await
        .map_err(admin_failure)?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(SsoSettingsPage {
        scim_enabled: me.workspace.scim_enabled,
        scim_teams: me.workspace.scim_teams,
        scim_url: scim_url(&state),
        authorize_url: format!("{}/oauth2/authorize", state.config.base()),
        token_url: format!("{}/oauth2/token", state.config.base()),
        password_signin: me.workspace.password_signin,
        oidc_issuer: text(&sso.oidc_issuer),
        oidc_client_id: text(&sso.oidc_client_id),
        saml_metadata_url: text(&sso.saml_metadata_url),
        saml_entity_id: text(&sso.saml_idp_entity_id),
        saml_sso_url: text(&sso.saml_sso_url),
        saml_certificate: text(&sso.saml_certificate),
        break_glass: text(&sso.break_glass_email),
        sso,
        shell: shell(&me, "sso").await?,
    })
}

/// What a page says when a change failed for a reason that is not the admin's.
pub(super) const SOMETHING_WENT_WRONG: &str =
    "Not saved: something went wrong on our side; try again.";

/// An administration use case failed where no refusal was expected.
fn admin_failure(e: AdminError) -> AppError {
    match e {
        AdminError::Store(e) => e.into(),
        other => AppError::Internal(other.into()),
    }
}

/// Report the outcome of a settings change on the next page.
async fn settle(me: &SignedIn, result: Result<(), AdminError>, done: &str) -> Redirect {
    match result {
        Ok(()) => flash(&me.session, NOTICE, done).await,
        // Only refusals written for the admin are shown; anything else (a database
        // error, say) goes to the log.
        Err(AdminError::Refused(r)) => flash(&me.session, ERROR, format!("Not saved: {r}")).await,
        Err(e) => {
            tracing::error!(error = %e, "settings change failed");
            flash(&me.session, ERROR, SOMETHING_WENT_WRONG).await
        }
    }
    Redirect::to("/settings/sso")
}

#[derive(Deserialize)]
struct OidcForm {
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

async fn sso_oidc(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<OidcForm>,
) -> Result<Redirect, AppError> {
    let secret = Some(form.client_secret.as_str()).filter(|s| !s.trim().is_empty());
    let result = admin::set_oidc(
        &state.db,
        &state.sso,
        &me.workspace,
        &form.issuer,
        &form.client_id,
        secret,
        true,
    )
    .await;
    Ok(settle(
        &me,
        result,
        "Single sign-on uses OpenID Connect now. Try it with Test sign-in.",
    )
    .await)
}

#[derive(Deserialize)]
struct SamlForm {
    #[serde(default)]
    metadata_url: String,
    #[serde(default)]
    entity_id: String,
    #[serde(default)]
    sso_url: String,
    #[serde(default)]
    certificate: String,
}

async fn sso_saml(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<SamlForm>,
) -> Result<Redirect, AppError> {
    let source = match form.metadata_url.trim() {
        "" => admin::SamlSource::Values {
            entity_id: form.entity_id,
            sso_url: form.sso_url,
            certificate: form.certificate,
        },
        url => admin::SamlSource::MetadataUrl(url.to_owned()),
    };
    let result = admin::set_saml(&state.db, &state.sso.fetch, &me.workspace, source).await;
    Ok(settle(
        &me,
        result,
        "Single sign-on uses SAML now. Try it with Test sign-in.",
    )
    .await)
}

async fn sso_off(
    State(state): State<AppState>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Redirect, AppError> {
    let result = admin::sso_off(&state.db, &me.workspace).await;
    Ok(settle(
        &me,
        result,
        "Single sign-on is off; members sign in with a password.",
    )
    .await)
}

#[derive(Deserialize)]
struct PasswordRulesForm {
    everyone: Option<String>,
    #[serde(default)]
    break_glass: String,
}

async fn sso_passwords(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<PasswordRulesForm>,
) -> Result<Redirect, AppError> {
    let result = admin::set_password_policy(
        &state.db,
        &me.workspace,
        form.everyone.is_some(),
        Some(form.break_glass.as_str()),
    )
    .await;
    Ok(settle(&me, result, "Password rules saved.").await)
}

#[derive(Deserialize)]
struct SwitchForm {
    enabled: String,
}

async fn scim_switch(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<SwitchForm>,
) -> Result<Redirect, AppError> {
    let on = form.enabled == "on";
    admin::set_scim(&state.db, &me.workspace, on)
        .await
        .map_err(admin_failure)?;
    let text = if on {
        "SCIM provisioning is on. Your identity provider can now create and update members."
    } else {
        "SCIM provisioning is off. The API now refuses every request."
    };
    flash(&me.session, NOTICE, text).await;
    Ok(Redirect::to("/settings/sso"))
}

async fn scim_teams_switch(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<SwitchForm>,
) -> Result<Redirect, AppError> {
    let on = form.enabled == "on";
    admin::set_scim_teams(&state.db, &me.workspace, on)
        .await
        .map_err(admin_failure)?;
    let text = if on {
        "Teams are managed with SCIM now. Teams your identity provider pushes are read-only on the Teams pages."
    } else {
        "Teams are managed here now. The SCIM Groups API refuses every request."
    };
    flash(&me.session, NOTICE, text).await;
    Ok(Redirect::to("/settings/sso"))
}

async fn password_switch(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<SwitchForm>,
) -> Result<Redirect, AppError> {
    let on = form.enabled == "on";
    admin::set_password_signin(&state.db, &me.workspace, on)
        .await
        .map_err(admin_failure)?;
    flash(
        &me.session,
        NOTICE,
        if on {
            "Password sign-in is on."
        } else {
            "Password sign-in is off."
        },
    )
    .await;
    Ok(Redirect::to("/settings/sso"))
}

async fn api_page(
    state: &AppState,
    me: &SignedIn,
    new_token: Option<String>,
) -> Result<Response, AppError> {
    let rows = tokens::list(&state.db, me.workspace.id).await?;
    let page = ApiSettingsPage {
        scim_url: scim_url(state),
        new_token,
        tokens: rows
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                name: t.name,
                prefix: t.prefix,
                created_by: t.created_by,
                created: when(t.created_at),
                last_used: when_opt(t.last_used_at),
                revoked: t.revoked_at.is_some(),
            })
            .collect(),
        shell: shell(me, "api").await?,
    };
    let mut resp = page.into_response();
    // The page may carry a secret shown once: never cache it.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn api_settings(State(state): State<AppState>, me: SignedIn) -> Result<Response, AppError> {
    require_admin(&me)?;
    api_page(&state, &me, None).await
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
}

async fn create_token(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<TokenForm>,
) -> Result<Response, AppError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        flash(
            &me.session,
            ERROR,
            "Give the token a name of up to 100 characters.",
        )
        .await;
        return Ok(Redirect::to("/settings/api").into_response());
    }
    let token = admin::create_api_token(&state.db, &me.workspace, name, &me.member.user_name)
        .await
        .map_err(admin_failure)?;
    flash(&me.session, NOTICE, format!("Token “{name}” created.")).await;
    api_page(&state, &me, Some(token)).await
}

/// A post whose only field is the CSRF token.
#[derive(Deserialize)]
pub(super) struct NoFields {}

async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Redirect, AppError> {
    admin::revoke_api_token(&state.db, &me.workspace, id)
        .await
        .map_err(admin_failure)?;
    flash(
        &me.session,
        NOTICE,
        "Token revoked. Requests that use it are refused from now on.",
    )
    .await;
    Ok(Redirect::to("/settings/api"))
}

async fn apps_settings(
    State(state): State<AppState>,
    me: SignedIn,
) -> Result<AppsSettingsPage, AppError> {
    require_admin(&me)?;
    let grants = oauth::list_grants(&state.db, me.workspace.id).await?;
    let ended = oauth::ended_grants(&state.db, me.workspace.id, ENDED_GRANTS_SHOWN).await?;
    let row = |g: oauth::GrantSummary| {
        let by = g
            .member_user_name
            .clone()
            .unwrap_or_else(|| "client credentials, no user".to_owned());
        GrantRow {
            id: g.id,
            ended: g
                .ended_at()
                .map(|_| ended_because(g.ended_reason.as_deref(), &by)),
            client: g.client_name,
            by,
            created: when(g.created_at),
            scope: g.scope,
            last_used: when_opt(g.last_used_at),
        }
    };
    Ok(AppsSettingsPage {
        grants: grants.into_iter().map(row).collect(),
        ended: ended.into_iter().map(row).collect(),
        shell: shell(&me, "apps").await?,
    })
}

/// How many ended grants the Authorized apps page lists.
const ENDED_GRANTS_SHOWN: i64 = 50;

/// Why a grant ended, for admins.
fn ended_because(reason: Option<&str>, by: &str) -> String {
    match reason {
        Some("deactivated") => format!("{by}, who authorized it, was deactivated"),
        Some("demoted") => format!("{by}, who authorized it, is no longer an admin"),
        Some("revoked") => "an admin revoked it".to_owned(),
        Some("client") => "the app revoked it".to_owned(),
        Some("reused") => "a used code or refresh token was presented again".to_owned(),
        Some("deleted") => "an admin deleted the OAuth client".to_owned(),
        Some("rotated") => "the client's secret was rotated and the old one expired".to_owned(),
        _ => "revoked".to_owned(),
    }
}

async fn revoke_app(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Redirect, AppError> {
    admin::revoke_grant(&state.db, &me.workspace, id)
        .await
        .map_err(admin_failure)?;
    flash(
        &me.session,
        NOTICE,
        "Access revoked. The app's tokens no longer work (a client credentials client can \
         get new ones with its secret until the secret is rotated or the client deleted).",
    )
    .await;
    Ok(Redirect::to("/settings/apps"))
}

/// "24 hours", "90 minutes", "30 seconds".
fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

async fn clients_page(
    state: &AppState,
    me: &SignedIn,
    new_secret: Option<NewClientSecret>,
) -> Result<Response, AppError> {
    let clients = admin::list_clients(&state.db, Some(&me.workspace))
        .await
        .map_err(admin_failure)?;
    let page = ClientsSettingsPage {
        clients: clients
            .into_iter()
            .map(|c| ClientRow {
                kind: if c.public {
                    "Public (PKCE)".into()
                } else {
                    "Confidential".into()
                },
                confidential: !c.public,
                grants: c
                    .grant_types
                    .iter()
                    .map(|g| g.replace('_', " "))
                    .collect::<Vec<_>>()
                    .join(", "),
                scopes: c.scopes,
                created: when(c.created_at),
                created_by: c.created_by.unwrap_or_default(),
                old_secret_until: c.previous_secret_expires_at.map(when),
                redirect_uris: c.redirect_uris,
                id: c.client_id,
                name: c.name,
            })
            .collect(),
        new_secret,
        token_url: format!("{}/oauth2/token", state.config.base()),
        authorize_url: format!("{}/oauth2/authorize", state.config.base()),
        scim_url: scim_url(state),
        overlap: span(state.config.client_secret_overlap),
        shell: shell(me, "clients").await?,
    };
    let mut resp = page.into_response();
    // The page may carry a secret shown once: never cache it.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn clients_settings(
    State(state): State<AppState>,
    me: SignedIn,
) -> Result<Response, AppError> {
    require_admin(&me)?;
    clients_page(&state, &me, None).await
}

#[derive(Deserialize)]
struct ClientForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
    grant_authorization_code: Option<String>,
    grant_client_credentials: Option<String>,
    scope_read: Option<String>,
    scope_write: Option<String>,
}

async fn register_client(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<ClientForm>,
) -> Result<Response, AppError> {
    use crate::oauth::client::GrantType;
    use crate::oauth::{Scope, Scopes};
    let uris: Vec<String> = form
        .redirect_uris
        .lines()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let grants: Vec<GrantType> = [
        (
            form.grant_authorization_code.is_some(),
            GrantType::AuthorizationCode,
        ),
        (
            form.grant_client_credentials.is_some(),
            GrantType::ClientCredentials,
        ),
    ]
    .into_iter()
    .filter_map(|(on, g)| on.then_some(g))
    .collect();
    let scopes = [
        (form.scope_read.is_some(), Scope::ScimRead),
        (form.scope_write.is_some(), Scope::ScimWrite),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(String::new(), |acc, (_, s)| format!("{acc} {}", s.as_str()));
    let scopes = Scopes::parse(&scopes).unwrap_or_default();
    if grants.is_empty() {
        flash(
            &me.session,
            ERROR,
            "Not registered: allow at least one grant.",
        )
        .await;
        return Ok(Redirect::to("/settings/clients").into_response());
    }
    let spec = admin::ClientSpec {
        name: &form.name,
        redirect_uris: &uris,
        public: form.kind == "public",
        grants: &grants,
        scopes: Some(scopes),
    };
    match admin::register_client(&state.db, Some(&me.workspace), &spec, &me.member.user_name).await
    {
        Ok(created) => {
            let name = form.name.trim();
            flash(&me.session, NOTICE, format!("Client “{name}” registered.")).await;
            let note = match &created.client_secret {
                Some(_) => {
                    format!("{name}: give the client these values. The secret is shown only once.")
                }
                None => format!("{name}: a public client has no secret; it must use PKCE."),
            };
            clients_page(
                &state,
                &me,
                Some(NewClientSecret {
                    note,
                    client_id: created.client_id,
                    secret: created.client_secret,
                }),
            )
            .await
        }
        Err(AdminError::Refused(why)) => {
            flash(&me.session, ERROR, format!("Not registered: {why}")).await;
            Ok(Redirect::to("/settings/clients").into_response())
        }
        Err(e) => Err(admin_failure(e)),
    }
}

/// A client id from the path that cannot name one of this workspace's clients.
fn no_such_client() -> AppError {
    AppError::NotFound("There is no such OAuth client in this workspace.".into())
}

async fn rotate_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Response, AppError> {
    let rotated = match admin::rotate_client_secret(
        &state.db,
        oauth::ClientScope::Workspace(me.workspace.id),
        &id,
        state.config.client_secret_overlap,
        &me.member.user_name,
    )
    .await
    {
        Ok(r) => r,
        Err(AdminError::NoClient(_)) => return Err(no_such_client()),
        Err(e) => return Err(admin_failure(e)),
    };
    flash(&me.session, NOTICE, "New secret generated.").await;
    let note = format!(
        "The new secret is shown only once. The old one keeps working until {}.",
        when(rotated.previous_secret_expires_at)
    );
    clients_page(
        &state,
        &me,
        Some(NewClientSecret {
            note,
            client_id: rotated.client_id,
            secret: Some(rotated.client_secret),
        }),
    )
    .await
}

async fn delete_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Redirect, AppError> {
    match admin::delete_client(
        &state.db,
        oauth::ClientScope::Workspace(me.workspace.id),
        &id,
        &me.member.user_name,
    )
    .await
    {
        Ok(()) => {}
        Err(AdminError::NoClient(_)) => return Err(no_such_client()),
        Err(e) => return Err(admin_failure(e)),
    }
    flash(
        &me.session,
        NOTICE,
        "Client deleted. Its tokens no longer work.",
    )
    .await;
    Ok(Redirect::to("/settings/clients"))
}

#[derive(Deserialize)]
struct ActivityQuery {
    member: Option<String>,
    #[serde(default)]
    member_email: String,
    outcome: Option<String>,
}

async fn activity_page(
    State(state): State<AppState>,
    me: SignedIn,
    PageQuery(q): PageQuery<ActivityQuery>,
) -> Result<ActivityPage, AppError> {
    require_admin(&me)?;
    let failures_only = q.outcome.as_deref() == Some("failures");
    let mut member_email = q.member_email.trim().to_owned();
    let mut member_id = q.member.as_deref().and_then(|m| Uuid::parse_str(m).ok());
    if let Some(id) = member_id {
        if let Some(m) = members::by_id(&state.db, me.workspace.id, id).await? {
            member_email = m.user_name;
        }
    } else if !member_email.is_empty() {
        // An unknown email shows nothing rather than everything.
        member_id = Some(
            members::credentials(&state.db, me.workspace.id, &member_email)
                .await?
                .map_or(Uuid::nil(), |(m, _)| m.id),
        );
    }
    let entries =
        activity::recent(&state.db, me.workspace.id, member_id, failures_only, 200).await?;
    Ok(ActivityPage {
        entries: entries
            .into_iter()
            .map(|a| ActivityRow {
                at: when(a.at),
                operation: a.operation,
                user_name: a.user_name.unwrap_or_default(),
                team: a.team_id.map(|id| TeamLink {
                    id: id.to_string(),
                    name: a.team_name.unwrap_or_default(),
                }),
                ok: a.status < 400,
                status: a.status,
                detail: a.detail,
                actor: a.actor,
            })
            .collect(),
        member_email,
        failures_only,
        shell: shell(&me, "activity").await?,
    })
}
