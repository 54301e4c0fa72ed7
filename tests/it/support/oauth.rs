//! The OAuth flows the tests drive: registering clients, the browser part of the
//! authorization-code flow through the real pages, and the token, revocation and
//! introspection endpoints.

use super::ops::{self, CreatedClient};
use super::{TestApp, enc, form_value, location};
use reqwest::{Client as Http, Response, StatusCode};
use serde_json::Value;
use std::collections::HashMap;

pub(crate) const REDIRECT: &str = "http://localhost:9999/callback";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(crate) async fn register(app: &TestApp, name: &str, public: bool) -> CreatedClient {
    ops::create_client(&app.db, name, &[REDIRECT.to_owned()], public)
        .await
        .expect("client")
}

/// `response_type=code&client_id=..&redirect_uri=..&state=xyz` plus `extra`.
pub(crate) fn authorize_query(client_id: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz{extra}",
        enc(client_id),
        enc(REDIRECT)
    )
}

/// The query parameters of a redirect to the client.
pub(crate) fn callback_params(loc: &str) -> HashMap<String, String> {
    let url = url::Url::parse(loc).expect("absolute redirect");
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path(),
        REDIRECT,
        "{loc}"
    );
    url.query_pairs().into_owned().collect()
}

pub(crate) fn assert_unframeable(r: &Response) {
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

/// Sign in through the password form the workspace shows at `signin_location`
/// (relative, with `next`), and return where the form sent the browser.
pub(crate) async fn sign_in_at(
    app: &TestApp,
    browser: &Http,
    signin_location: &str,
    email: &str,
    password: &str,
) -> String {
    let page = browser
        .get(app.ws_url("acme", signin_location))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_unframeable(&page);
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf").expect("csrf");
    let next = form_value(&html, "next").expect("next");
    let r = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("next", &next),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in");
    location(&r)
}

/// Follow an authorization request from the app host up to the consent page;
/// returns the consent page's HTML.
pub(crate) async fn to_consent(
    app: &TestApp,
    browser: &Http,
    query: &str,
    email: &str,
    password: &str,
) -> String {
    let r = browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "workspace question");
    assert_unframeable(&r);
    let html = r.text().await.unwrap();
    let request = form_value(&html, "request").expect("request field");
    let r = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", "acme"), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let on_workspace = location(&r);
    assert!(
        on_workspace.starts_with(&app.ws_url("acme", "/oauth2/authorize?")),
        "{on_workspace}"
    );
    let r = browser.get(&on_workspace).send().await.unwrap();
    let r = if r.status() == 303 {
        let signin = location(&r);
        assert!(signin.starts_with("/signin?next="), "{signin}");
        let back = sign_in_at(app, browser, &signin, email, password).await;
        assert!(back.starts_with("/oauth2/authorize?"), "{back}");
        browser.get(app.ws_url("acme", &back)).send().await.unwrap()
    } else {
        r
    };
    assert_eq!(r.status(), 200, "consent page");
    assert_unframeable(&r);
    r.text().await.unwrap()
}

/// Press Allow (or Deny) on a consent page; returns the redirect's parameters.
pub(crate) async fn answer(
    app: &TestApp,
    browser: &Http,
    consent: &str,
    decision: &str,
) -> HashMap<String, String> {
    let r = browser
        .post(app.ws_url("acme", "/oauth2/authorize"))
        .form(&[
            ("csrf", form_value(consent, "csrf").unwrap().as_str()),
            ("request", form_value(consent, "request").unwrap().as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    callback_params(&location(&r))
}

/// The whole browser part: a code for `query`.
pub(crate) async fn code_for(app: &TestApp, query: &str, email: &str, password: &str) -> String {
    let browser = app.browser();
    let consent = to_consent(app, &browser, query, email, password).await;
    let p = answer(app, &browser, &consent, "allow").await;
    assert_eq!(p["state"], "xyz");
    assert_eq!(p["iss"], app.base);
    p["code"].clone()
}

/// POST a form to an OAuth endpoint, with HTTP Basic when `basic` is given.
pub(crate) async fn post(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.api().post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, headers, body)
}

pub(crate) async fn exchange(
    app: &TestApp,
    c: &CreatedClient,
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let (status, _, body) = match &c.client_secret {
        Some(secret) => post(app, "/oauth2/token", Some((&c.client_id, secret)), &form).await,
        None => {
            form.push(("client_id", &c.client_id));
            post(app, "/oauth2/token", None, &form).await
        }
    };
    (status, body)
}

pub(crate) async fn refresh(
    app: &TestApp,
    c: &CreatedClient,
    token: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", c.client_id.as_str()),
    ];
    if let Some(secret) = &c.client_secret {
        form.push(("client_secret", secret));
    }
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let (status, _, body) = post(app, "/oauth2/token", None, &form).await;
    (status, body)
}

pub(crate) async fn introspect(app: &TestApp, c: &CreatedClient, token: &str) -> Value {
    let (status, headers, body) = post(
        app,
        "/oauth2/introspect",
        Some((&c.client_id, c.client_secret.as_deref().unwrap_or(""))),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

pub(crate) async fn revoke(app: &TestApp, c: &CreatedClient, token: &str) -> StatusCode {
    post(
        app,
        "/oauth2/revoke",
        Some((&c.client_id, c.client_secret.as_deref().unwrap_or(""))),
        &[("token", token)],
    )
    .await
    .0
}

/// What the SCIM API will see for this bearer token.
pub(crate) async fn bearer(
    app: &TestApp,
    token: &str,
) -> Option<rollcall::http::bearer::Principal> {
    let state = &app.running.as_ref().unwrap().state;
    rollcall::http::bearer::authenticate(state, token)
        .await
        .unwrap()
}

pub(crate) async fn tokens_for(
    app: &TestApp,
    c: &CreatedClient,
    email: &str,
    password: &str,
) -> Value {
    let code = code_for(app, &authorize_query(&c.client_id, ""), email, password).await;
    let (status, tokens) = exchange(app, c, &code, None).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// `grant_type=client_credentials` with `secret`, by HTTP Basic or in the form.
pub(crate) async fn client_credentials(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    basic: bool,
    scope: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    if basic {
        post(app, "/oauth2/token", Some((client_id, secret)), &form).await
    } else {
        form.extend([("client_id", client_id), ("client_secret", secret)]);
        post(app, "/oauth2/token", None, &form).await
    }
}

/// A client-credentials access token (Basic), which must be issued.
pub(crate) async fn cc_token(app: &TestApp, c: &CreatedClient) -> String {
    let (status, _, body) = client_credentials(
        app,
        &c.client_id,
        c.client_secret.as_deref().expect("a secret"),
        true,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// The status of `GET /scim/v2/Users` with this bearer token.
pub(crate) async fn scim_status(app: &TestApp, token: &str) -> u16 {
    app.api()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `token` is refused by `app`: at once on SQLite; on PostgreSQL as soon as the
/// notification of the change reaches this server (within two seconds), when the
/// change was made by another process (`store::auth_cache`).
pub(crate) async fn refused_soon(app: &TestApp, token: &str) {
    let start = std::time::Instant::now();
    while scim_status(app, token).await != 401 {
        assert!(
            app.database_url.starts_with("postgres")
                && start.elapsed() < std::time::Duration::from_secs(2),
            "still accepted: a token ended by another process"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(scim_status(app, token).await, 401);
}
