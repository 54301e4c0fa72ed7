//! Browser pages: the app host's start page; a workspace's sign-in, sign-out and
//! member list.

use super::extract::{PageForm, PageQuery};
use super::views::{HomePage, SignInPage};
use super::{AppState, CurrentWorkspace, RemoteIp, csrf};
use crate::app::admin::{self, AdminError};
use crate::app::signin::{self, PasswordAttempt, PasswordError};
use crate::domain::Subdomain;
use crate::http::error::AppError;
use crate::secrets;
use crate::store::{members, workspaces};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

pub fn app_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home).post(go_to_workspace))
        .nest("/scim/v2", super::scim::routes())
        .fallback(not_found)
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(workspace_home))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .fallback(not_found)
}

async fn not_found() -> AppError {
    AppError::NotFound("There is no page at this address.".into())
}

async fn home() -> HomePage {
    HomePage {
        error: None,
        subdomain: String::new(),
    }
}

#[derive(Deserialize)]
struct SubdomainForm {
    subdomain: String,
}

async fn go_to_workspace(
    State(state): State<AppState>,
    PageForm(form): PageForm<SubdomainForm>,
) -> Result<Response, AppError> {
    let again = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            HomePage {
                error: Some(error),
                subdomain: form.subdomain.clone(),
            },
        )
            .into_response()
    };
    let sub = match Subdomain::parse(&form.subdomain) {
        Ok(s) => s,
        Err(e) => return Ok(again(e.0)),
    };
    match admin::workspace(&state.db, &sub).await {
        Ok(_) => {}
        Err(AdminError::NoWorkspace(_)) => {
            return Ok(again(format!("There is no workspace called '{sub}'.")));
        }
        Err(AdminError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::Internal(e.into())),
    }
    Ok(Redirect::to(&format!(
        "{}/signin",
        state.config.workspace_origin(sub.as_str())
    ))
    .into_response())
}

/// Session keys.
const MEMBER_ID: &str = "member_id";
const WORKSPACE_ID: &str = "workspace_id";
/// Unix seconds of the sign-in: the session's absolute lifetime counts from it.
const SIGNED_IN_AT: &str = "signed_in_at";

/// The signed-in member of the current workspace. Without one, the request is sent
/// to sign in and brought back afterwards.
pub struct SignedIn {
    pub member: members::Member,
    pub workspace: workspaces::Workspace,
    pub session: Session,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let err = |e: AppError| e.into_response();
        let Extension(CurrentWorkspace(workspace)) =
            Extension::<CurrentWorkspace>::from_request_parts(parts, state)
                .await
                .map_err(|e| e.into_response())?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(s, m)| (s, m).into_response())?;
        let to_signin = || {
            let next = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            Redirect::to(&format!("/signin?next={}", urlencode(next))).into_response()
        };
        let session_ws: Option<i64> = session.get(WORKSPACE_ID).await.ok().flatten();
        let member_id: Option<Uuid> = session.get(MEMBER_ID).await.ok().flatten();
        // A session belongs to one workspace; the cookie is host-only, and this
        // check keeps it so even if a cookie is carried to another host.
        let (Some(ws_id), Some(member_id)) = (session_ws, member_id) else {
            return Err(to_signin());
        };
        if ws_id != workspace.id {
            return Err(to_signin());
        }
        // However active, a session ends `session_absolute` after sign-in.
        let signed_in_at: Option<i64> = session.get(SIGNED_IN_AT).await.ok().flatten();
        let max_age = i64::try_from(state.config.session_absolute.as_secs()).unwrap_or(i64::MAX);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if signed_in_at.is_none_or(|at| now.saturating_sub(at) >= max_age) {
            let _ = session.flush().await;
            return Err(to_signin());
        }
        match members::by_id(&state.db, workspace.id, member_id).await {
            Ok(Some(member)) if member.active => Ok(SignedIn {
                member,
                workspace,
                session,
            }),
            Ok(_) => {
                let _ = session.flush().await;
                Err(to_signin())
            }
            Err(e) => Err(err(e.into())),
        }
    }
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Where to go after sign-in: a path on the workspace's own origin as a browser
/// would resolve it, else the workspace home. The check resolves `next` the way
/// browsers do (WHATWG URL parsing: tabs and newlines dropped, backslashes read as
/// slashes), so `/\t/evil.example` is seen as the `//evil.example` a browser
/// would follow; what comes back is the parser's own serialisation.
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/members";
    let Some(next) = next else {
        return HOME.to_owned();
    };
    // Controls and leading spaces are where parsers disagree: never worth it.
    if !next.starts_with('/') || next.chars().any(|c| c.is_control()) {
        return HOME.to_owned();
    }
    let Ok(base) = url::Url::parse("http://workspace.invalid/") else {
        return HOME.to_owned();
    };
    match base.join(next) {
        // A path starting `//` would be read as another host in a Location header.
        Ok(u) if u.origin() == base.origin() && !u.path().starts_with("//") => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        _ => HOME.to_owned(),
    }
}

async fn workspace_home(session: Session) -> Redirect {
    let signed_in = session
        .get::<Uuid>(MEMBER_ID)
        .await
        .ok()
        .flatten()
        .is_some();
    Redirect::to(if signed_in { "/members" } else { "/signin" })
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn signin_page(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    session: Session,
    PageQuery(q): PageQuery<NextQuery>,
) -> Result<SignInPage, AppError> {
    let next = safe_next(q.next.as_deref());
    let methods = signin::methods(&state.db, &ws).await?;
    Ok(SignInPage {
        workspace_name: ws.name,
        csrf: csrf::token(&session).await?,
        password_allowed: methods.password,
        sso_start: sso_start(methods.sso, &next),
        next,
        email: String::new(),
        error: None,
    })
}

/// The link that starts SSO sign-in, when the workspace has it.
fn sso_start(sso: bool, next: &str) -> Option<String> {
    sso.then(|| format!("/sso/start?next={}", urlencode(next)))
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn signin(
    State(state): State<AppState>,
    Extension(CurrentWorkspace(ws)): Extension<CurrentWorkspace>,
    session: Session,
    headers: HeaderMap,
    ip: RemoteIp,
    PageForm(form): PageForm<SignInForm>,
) -> Result<Response, AppError> {
    csrf::verify(&session, &headers, &form.csrf).await?;
    let attempt = PasswordAttempt {
        email: &form.email,
        password: form.password,
        address: &ip.0,
    };
    let member = match signin::by_password(&state.db, &state.config.limits, &ws, attempt).await {
        Ok(member) => member,
        Err(e @ PasswordError::PasswordsOff) => return Err(AppError::Forbidden(e.to_string())),
        Err(PasswordError::TooManyRequests { retry_after_secs }) => {
            return Err(AppError::TooManyRequests { retry_after_secs });
        }
        Err(e @ PasswordError::NoMatch { .. }) => {
            let sso = matches!(e, PasswordError::NoMatch { sso: true });
            let next = safe_next(form.next.as_deref());
            let page = SignInPage {
                workspace_name: ws.name,
                csrf: csrf::token(&session).await?,
                sso_start: sso_start(sso, &next),
                next,
                email: form.email,
                error: Some(e.to_string()),
                password_allowed: true,
            };
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
        Err(PasswordError::Store(e)) => return Err(e.into()),
    };
    start_session(&session, ws.id, member.id).await?;
    Ok(Redirect::to(&safe_next(form.next.as_deref())).into_response())
}

/// Sign a member in: a fresh session id (no fixation), a fresh CSRF token.
pub async fn start_session(
    session: &Session,
    workspace_id: i64,
    member_id: Uuid,
) -> Result<(), AppError> {
    let internal =
        |e: tower_sessions::session::Error| AppError::Internal(anyhow::anyhow!("session: {e}"));
    session.cycle_id().await.map_err(internal)?;
    session
        .insert(WORKSPACE_ID, workspace_id)
        .await
        .map_err(internal)?;
    session
        .insert(MEMBER_ID, member_id)
        .await
        .map_err(internal)?;
    session
        .insert(
            SIGNED_IN_AT,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
        .map_err(internal)?;
    session
        .insert("csrf", secrets::generate(secrets::Kind::Csrf))
        .await
        .map_err(internal)?;
    Ok(())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn signout(
    session: Session,
    headers: HeaderMap,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Redirect, AppError> {
    csrf::verify(&session, &headers, &form.csrf).await?;
    session
        .flush()
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("session: {e}")))?;
    Ok(Redirect::to("/signin"))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_same_host_path_only() {
        assert_eq!(
            safe_next(Some("/oauth2/authorize?x=1")),
            "/oauth2/authorize?x=1"
        );
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "evil",
            "",
            "/a\r\nSet-Cookie: x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\u{0}/evil.example",
            "/.//evil.example",
            "/%2e//evil.example",
            "/\\/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/\u{7f}/evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/members", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/members");
        assert_eq!(safe_next(Some("/settings/sso")), "/settings/sso");
        assert_eq!(safe_next(Some("/a/../b?x=1%202")), "/b?x=1%202");
    }
}
