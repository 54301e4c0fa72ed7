//! `GET /metrics` (Prometheus text) and the middleware that counts requests by
//! matched route. The figures live in `crate::metrics`.

use super::AppState;
use super::host::{self, Site};
use crate::http::error::AppError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The matched route template, carried from the inner routers to `count`.
#[derive(Clone)]
struct RouteLabel(Arc<str>);

/// On matched routes only: note which template matched.
pub async fn label_route(req: Request, next: Next) -> Response {
    let label = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| RouteLabel(Arc::from(m.as_str())));
    let mut resp = next.run(req).await;
    if let Some(l) = label {
        resp.extensions_mut().insert(l);
    }
    resp
}

/// Outermost: time every request and count it under its route ("unmatched" when no
/// route took it).
pub async fn count(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |l| &l.0);
    crate::metrics::record_request(
        route,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// On the app host, or by IP (a scraper on another machine); not on workspace hosts.
pub async fn endpoint(State(state): State<AppState>, req: Request) -> Response {
    let config = &state.config;
    let host = host::request_host(req.headers(), req.uri(), config.trust_forwarded_host);
    let allowed = host.as_deref().is_some_and(|h| {
        host::site_of(h, config.base_host()) == Site::App
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
    });
    if !allowed {
        return AppError::NotFound("Metrics are served on the app host.".into()).into_response();
    }
    let body = crate::metrics::render(&state.db.pool_use(), state.db.sqlite_heap());
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
