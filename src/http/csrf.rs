//! CSRF protection for forms: a per-session token in a hidden field, compared in
//! constant time, plus a same-origin check on `Origin` / `Sec-Fetch-Site`.

use crate::http::error::AppError;
use crate::secrets;
use axum::http::HeaderMap;
use tower_sessions::Session;

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub async fn token(session: &Session) -> Result<String, AppError> {
    if let Some(t) = session.get::<String>(KEY).await.map_err(internal)? {
        return Ok(t);
    }
    let t = secrets::generate(secrets::Kind::Csrf);
    session.insert(KEY, &t).await.map_err(internal)?;
    Ok(t)
}

/// Refuse a form post that did not come from our own page.
pub async fn verify(
    session: &Session,
    headers: &HeaderMap,
    submitted: &str,
) -> Result<(), AppError> {
    let refused = || {
        AppError::Forbidden(
            "This form expired or came from another site. Go back, reload the page and try again."
                .into(),
        )
    };
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(refused());
    }
    if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        // Browsers send `Origin: null` under strict referrer policies; accept that
        // only when the browser itself says the post is same-origin.
        let same_origin_fetch =
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin");
        let null_but_same = origin == "null" && same_origin_fetch;
        if !null_but_same && !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    let expected = session.get::<String>(KEY).await.map_err(internal)?;
    match expected {
        Some(e) if secrets::constant_time_eq(e.as_bytes(), submitted.as_bytes()) => Ok(()),
        _ => Err(refused()),
    }
}

fn internal(e: tower_sessions::session::Error) -> AppError {
    AppError::Internal(anyhow::anyhow!("session: {e}"))
}
