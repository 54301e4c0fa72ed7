//! axum: the router, host dispatch, middleware, and one module per area. Handlers
//! stay thin: they parse, call the protocol and store layers, and render.

pub mod admin;
pub mod bearer;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod host;
pub mod metrics;
pub mod oauth;
pub mod pages;
pub mod scim;
pub mod scim_groups;
pub mod serve;
pub mod sso;
pub mod teams;
pub mod views;

use crate::config::Config;
use crate::http::error::AppError;
use crate::store::{Db, sessions::DbSessionStore, workspaces};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use host::Site;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What every request shares. Behind one `Arc`: axum clones the state into every
/// handler and middleware a request passes through, and a clone of one reference
/// count is one atomic where three parts were three (profiles of the existence
/// check showed those clones and drops, on counters both cores write).
pub struct Shared {
    pub db: Db,
    pub config: Arc<Config>,
    /// Sign-in through workspace IdPs: the server key and the OIDC client.
    pub sso: Arc<crate::sso::Sso>,
}

impl AppState {
    pub fn new(db: Db, config: Arc<Config>, sso: Arc<crate::sso::Sso>) -> AppState {
        AppState(Arc::new(Shared { db, config, sso }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The workspace whose host the request came to; set by the dispatcher.
#[derive(Clone, Debug)]
pub struct CurrentWorkspace(pub workspaces::Workspace);

/// The address of the connection's peer (never a forwarded header): what rate
/// limits count by. "unknown" when the server runs without connect info.
pub struct RemoteIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RemoteIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RemoteIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

pub const SESSION_COOKIE: &str = "rollcall_session";

/// Pages load only our own assets and may not be framed. Forms may post to
/// http(s) targets because the consent form's answer is a redirect to the client.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The whole application.
pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
        .with_secure(state.config.secure_cookies())
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(12)));

    let sites = Sites {
        app: pages::app_routes()
            .merge(oauth::app_routes())
            .route_layer(axum::middleware::from_fn(metrics::label_route))
            .layer(no_store())
            .with_state(state.clone()),
        workspace: pages::workspace_routes()
            .merge(oauth::workspace_routes())
            .merge(admin::routes())
            .merge(sso::workspace_routes())
            .route_layer(axum::middleware::from_fn(metrics::label_route))
            .layer(sessions)
            .layer(no_store())
            .with_state(state.clone()),
        state: state.clone(),
    };

    Router::new()
        .route("/healthz", get(healthz))
        .route("/static/style.css", get(stylesheet))
        .route("/static/copy.js", get(copy_script))
        .route("/metrics", get(metrics::endpoint))
        .route_layer(axum::middleware::from_fn(metrics::label_route))
        .fallback(move |req: Request| {
            let sites = sites.clone();
            async move { sites.dispatch(req).await }
        })
        // Slow clients (a trickled body, a stalled upload) are cut off with 408.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        // Framing, sniffing and referrer protections on every response.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Path only: query strings can carry codes and state.
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .layer(axum::middleware::from_fn(metrics::count))
        .with_state(state)
}

/// Pages (sign-in, consent, settings, member lists) and API answers are personal:
/// no browser or proxy cache may keep them. Static assets set their own.
fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    )
}

#[derive(Clone)]
struct Sites {
    app: Router,
    workspace: Router,
    state: AppState,
}

impl Sites {
    async fn dispatch(self, mut req: Request) -> Response {
        let config = &self.state.config;
        let host = host::request_host(req.headers(), req.uri(), config.trust_forwarded_host);
        let site = host
            .as_deref()
            .map_or(Site::Other, |h| host::site_of(h, config.base_host()));
        let routed = match site {
            Site::App => self.app.oneshot(req).await,
            Site::Workspace(sub) => match workspaces::by_subdomain(&self.state.db, &sub).await {
                Ok(Some(ws)) => {
                    req.extensions_mut().insert(CurrentWorkspace(ws));
                    self.workspace.oneshot(req).await
                }
                Ok(None) => {
                    return AppError::NotFound(format!("There is no workspace called '{sub}'."))
                        .into_response();
                }
                Err(e) => return AppError::from(e).into_response(),
            },
            Site::Other => {
                return AppError::NotFound("This server does not serve that host name.".into())
                    .into_response();
            }
        };
        match routed {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "database unavailable"})),
            )
                .into_response()
        }
    }
}

/// The one script: copy buttons. Pages work without it.
async fn copy_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/copy.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}
