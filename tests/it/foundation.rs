//! The foundation: health, hosts, password sign-in and sessions, security headers,
//! the CLI.

use crate::support::{TestApp, form_value, sign_in};
use reqwest::StatusCode;

#[tokio::test]
async fn healthz_checks_the_database() {
    let app = TestApp::spawn().await;
    let resp = app.api().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    // Addressed by IP, as load balancers do.
    let by_ip = app
        .api()
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(by_ip.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn hosts_route_to_workspaces_or_404() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let api = app.api();

    let unknown = api.get(app.ws_url("nope", "/signin")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("no workspace called")
    );

    let known = api.get(app.ws_url("acme", "/signin")).send().await.unwrap();
    assert_eq!(known.status(), 200);
    assert!(known.text().await.unwrap().contains("Sign in to acme Inc"));

    let stranger = api
        .get(app.url("/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 404);

    let home = api.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Workspace subdomain"));
    app.stop().await;
}

#[tokio::test]
async fn app_host_sends_people_to_their_workspace() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let api = app.api();
    let go = api
        .post(app.url("/"))
        .form(&[("subdomain", "Acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(go.status(), 303);
    assert_eq!(
        go.headers()["location"],
        app.ws_url("acme", "/signin").as_str()
    );

    let missing = api
        .post(app.url("/"))
        .form(&[("subdomain", "globex")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("There is no workspace called &#39;globex&#39;")
    );
    app.stop().await;
}

#[tokio::test]
async fn password_sign_in_rotates_the_session_and_shows_members() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let browser = app.browser();

    // Not signed in: members page sends to sign-in, keeping the destination.
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin?next=%2Fmembers");

    let page = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap();
    let before = session_cookie(&page).expect("anonymous session for CSRF");
    let page = page.text().await.unwrap();
    let csrf = form_value(&page, "csrf").unwrap();

    // Wrong password and unknown email get the same generic answer.
    for (e, p) in [
        (email.as_str(), "wrong"),
        ("nobody@acme.test", password.as_str()),
    ] {
        let r = browser
            .post(app.ws_url("acme", "/signin"))
            .form(&[("email", e), ("password", p), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("do not match an active member")
        );
    }

    let r = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email.to_uppercase().as_str()),
            ("password", &password),
            ("csrf", &csrf),
            ("next", "/members"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/members");
    let after = session_cookie(&r).expect("new session cookie at sign-in");
    assert_ne!(before, after, "session id must change at sign-in");

    let members = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), 200);
    let html = members.text().await.unwrap();
    assert!(html.contains(&email) && html.contains("admin"), "{html}");

    // The old (pre-sign-in) session id is worthless.
    let fixated = app
        .api()
        .get(app.ws_url("acme", "/members"))
        .header("cookie", format!("rollcall_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fixated.status(), 303);

    // Sign out ends the session.
    let csrf = form_value(&html, "csrf").unwrap();
    let out = browser
        .post(app.ws_url("acme", "/signout"))
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn a_session_is_good_for_one_workspace_only() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    app.workspace("globex").await;
    let cookie = signed_in_cookie(&app, "acme", &email, &password).await;
    let ok = app
        .api()
        .get(app.ws_url("acme", "/members"))
        .header("cookie", format!("rollcall_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // Carry acme's cookie to globex by hand (a browser would not send it).
    let r = app
        .api()
        .get(app.ws_url("globex", "/members"))
        .header("cookie", format!("rollcall_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "acme's session must not open globex");
    app.stop().await;
}

#[tokio::test]
async fn forms_refuse_cross_site_posts_and_missing_tokens() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let browser = app.browser();
    let page = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&page, "csrf").unwrap();

    let no_token = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email.as_str()),
            ("password", &password),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);

    let cross = browser
        .post(app.ws_url("acme", "/signin"))
        .header("origin", "https://evil.example")
        .form(&[
            ("email", email.as_str()),
            ("password", &password),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn pages_cannot_be_framed_and_cookies_are_strict() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let r = app
        .browser()
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.to_ascii_lowercase().contains("domain="),
        "cookie must be host-only: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "http base URL: no Secure flag");
    app.stop().await;
}

#[tokio::test]
async fn next_after_sign_in_is_never_another_site() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let browser = app.browser();
    let page = browser
        .get(app.ws_url("acme", "/signin?next=//evil.example/x"))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert_eq!(form_value(&page, "next").as_deref(), Some("/members"));
    let csrf = form_value(&page, "csrf").unwrap();
    let r = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email.as_str()),
            ("password", &password),
            ("csrf", &csrf),
            ("next", "https://evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/members");
    app.stop().await;
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let rest = v.strip_prefix("rollcall_session=")?;
        Some(rest.split(';').next()?.to_owned())
    })
}

/// Sign in with a cookie-less client and return the signed-in session id.
pub(crate) async fn signed_in_cookie(
    app: &TestApp,
    sub: &str,
    email: &str,
    password: &str,
) -> String {
    let api = app.api();
    let page = api.get(app.ws_url(sub, "/signin")).send().await.unwrap();
    let anon = session_cookie(&page).unwrap();
    let csrf = form_value(&page.text().await.unwrap(), "csrf").unwrap();
    let r = api
        .post(app.ws_url(sub, "/signin"))
        .header("cookie", format!("rollcall_session={anon}"))
        .form(&[("email", email), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    session_cookie(&r).unwrap()
}

#[tokio::test]
async fn cli_creates_workspaces_and_tokens_and_names_bad_settings() {
    let db_url = crate::support::fresh_database_url().await;
    let bin = env!("CARGO_BIN_EXE_rollcall");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .output()
            .expect("run rollcall")
    };
    let out = run(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "boss@acme.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        password.trim().len(),
        20,
        "stdout is the password alone: {password:?}"
    );

    let out = run(&["token", "create", "--workspace", "acme", "--name", "Okta"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(
        token.starts_with("rc_pat_") && token.trim().lines().count() == 1,
        "{token:?}"
    );

    let out = run(&["workspace", "scim", "acme", "on"]);
    assert!(out.status.success());

    let out = run(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Again",
        "--admin-email",
        "x@acme.test",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let out = run(&["token", "create", "--workspace", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workspace 'nope'"));

    let out = std::process::Command::new(bin)
        .args(["serve", "--base-url", "not a url"])
        .env("ROLLCALL_DATABASE_URL", &db_url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("invalid setting base_url"), "{err}");
}

#[tokio::test]
async fn demo_seeds_once() {
    let app = TestApp::spawn().await;
    let demo = crate::support::ops::seed_demo(&app.db)
        .await
        .unwrap()
        .expect("seeded on empty db");
    assert!(demo.api_token.starts_with("rc_pat_"));
    assert!(
        crate::support::ops::seed_demo(&app.db)
            .await
            .unwrap()
            .is_none()
    );
    let browser = sign_in(&app, "acme", &demo.admin_email, &demo.admin_password).await;
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}
