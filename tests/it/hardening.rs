//! What the penetration test found, each as a test that failed before its fix: the
//! sign-in redirect, grants outliving their admin, codes presented by other clients,
//! rate limits that could be raced or used to lock others out, and the smaller
//! session, cache and client-authentication rules.

use crate::support::oauth::{
    CHALLENGE, VERIFIER, authorize_query, bearer, code_for, exchange, post, refresh, register,
    tokens_for,
};
use crate::support::ops;
use crate::support::{TestApp, csrf_of, form_value, location, page, s, sign_in};
use reqwest::StatusCode;
use rollcall::domain::{Email, Role};
use serde_json::{Value, json};

/// `next` values that a browser would resolve to another host, with whitespace and
/// control characters that browsers strip (WHATWG URL parsing).
const OFF_ORIGIN: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t/\t/evil.example",
    " /\t/evil.example",
    "/\\evil.example",
    "/\t\\evil.example",
    "\\\\evil.example",
    "//evil.example",
    "/.//evil.example",
    "/%2e//evil.example",
    "https://evil.example/",
    "https:evil.example",
    "/\u{0}/evil.example",
];

/// Where a Location header takes a browser that is on the workspace's origin.
fn resolved(app: &TestApp, loc: &str) -> url::Url {
    url::Url::parse(&app.ws_url("acme", "/"))
        .unwrap()
        .join(loc)
        .unwrap_or_else(|e| panic!("{loc:?}: {e}"))
}

#[tokio::test]
async fn sign_in_never_leaves_the_workspace_origin() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let browser = app.browser();
    let origin = resolved(&app, "/");
    for next in OFF_ORIGIN {
        // The sign-in page's own form carries only a safe `next`.
        let page = browser
            .get(app.ws_url("acme", "/signin"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let shown = form_value(&page, "next").expect("next field");
        assert_eq!(
            resolved(&app, &shown).origin(),
            origin.origin(),
            "{next:?} -> {shown:?}"
        );
        // A form posted with it anyway.
        let csrf = form_value(&page, "csrf").expect("csrf");
        let r = browser
            .post(app.ws_url("acme", "/signin"))
            .form(&[
                ("email", email.as_str()),
                ("password", password.as_str()),
                ("csrf", csrf.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next:?}");
        let to = resolved(&app, &location(&r));
        assert_eq!(to.origin(), origin.origin(), "{next:?} -> {to}");
        assert_eq!(
            to.path(),
            "/members",
            "{next:?} lands on the workspace home"
        );
    }
    // A path on the workspace is still followed.
    let csrf = csrf_of(&browser, &app.ws_url("acme", "/signin")).await;
    let r = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email.as_str()),
            ("password", password.as_str()),
            ("csrf", csrf.as_str()),
            ("next", "/settings/sso?tab=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/settings/sso?tab=1");
    app.stop().await;
}

// ---- Grants live only while their admin does ------------------------------------

/// Another admin with a password, created in Rollcall itself.
async fn second_admin(app: &TestApp, email: &str) -> String {
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let password = "second-admin-password".to_owned();
    let hash = rollcall::secrets::hash_password(password.clone()).await;
    rollcall::store::members::create(
        &app.db,
        ws.id,
        &ops::local_member(&Email::parse(email).unwrap(), Role::Admin),
        Some(&hash),
    )
    .await
    .unwrap();
    password
}

async fn member_id(app: &TestApp, email: &str) -> String {
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    rollcall::store::members::credentials(&app.db, ws.id, email)
        .await
        .unwrap()
        .unwrap()
        .0
        .id
        .to_string()
}

async fn scim_patch(app: &TestApp, token: &str, id: &str, op: Value) -> StatusCode {
    app.api()
        .patch(app.url(&format!("/scim/v2/Users/{id}")))
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [op],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .status()
}

async fn scim_list(app: &TestApp, token: &str) -> StatusCode {
    app.api()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn introspected(app: &TestApp, c: &crate::support::ops::CreatedClient, token: &str) -> Value {
    crate::support::oauth::introspect(app, c, token).await
}

#[tokio::test]
async fn a_grant_ends_when_its_admin_is_deactivated_even_by_the_grant_itself() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    let api = ops::create_api_token(&app.db, "acme", "IdP", "test")
        .await
        .unwrap();
    let other_password = second_admin(&app, "other-admin@acme.test").await;
    let okta = register(&app, "Okta", false).await;
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    let (access, refresh_token) = (s(&tokens["access_token"]), s(&tokens["refresh_token"]));
    let id = member_id(&app, &email).await;

    // The IdP deactivates the very admin who authorized it, with this grant's token:
    // that call succeeds, the next one does not.
    let off = json!({"op": "replace", "value": {"active": false}});
    assert_eq!(scim_patch(&app, access, &id, off).await, 200);
    assert_eq!(scim_list(&app, access).await, 401);
    let (status, body) = refresh(&app, &okta, refresh_token, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_eq!(introspected(&app, &okta, access).await["active"], false);
    assert_eq!(
        introspected(&app, &okta, refresh_token).await["active"],
        false
    );

    // Reactivating them does not bring the grant back.
    let on = json!({"op": "replace", "path": "active", "value": true});
    assert_eq!(scim_patch(&app, &api, &id, on).await, 200);
    assert_eq!(scim_list(&app, access).await, 401);
    let (status, _) = refresh(&app, &okta, refresh_token, None).await;
    assert_eq!(status, 400);
    assert_eq!(introspected(&app, &okta, access).await["active"], false);

    // Admins see which grant ended and why, and the activity log has it.
    let browser = sign_in(&app, "acme", "other-admin@acme.test", &other_password).await;
    let apps = page(&browser, &app.ws_url("acme", "/settings/apps")).await;
    assert!(apps.contains("Ended"), "{apps}");
    assert!(
        apps.contains(&format!("{email}, who authorized it, was deactivated")),
        "{apps}"
    );
    assert!(
        apps.contains("Public API token"),
        "the page points to API tokens: {apps}"
    );
    let activity = page(&browser, &app.ws_url("acme", "/activity")).await;
    assert!(
        activity.contains(&format!(
            "OAuth access of Okta ended: {email} was deactivated"
        )),
        "{activity}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_grant_ends_when_its_admin_is_demoted_on_every_process() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    let api = ops::create_api_token(&app.db, "acme", "IdP", "test")
        .await
        .unwrap();
    let okta = register(&app, "Okta", false).await;
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    let (access, refresh_token) = (s(&tokens["access_token"]), s(&tokens["refresh_token"]));
    // A second process on the same database.
    let second = TestApp::spawn_on(&app.database_url, |_| {}).await;
    assert_eq!(scim_list(&second, access).await, 200);

    let id = member_id(&app, &email).await;
    let viewer =
        json!({"op": "replace", "path": "roles", "value": [{"value": "viewer", "primary": true}]});
    assert_eq!(scim_patch(&app, &api, &id, viewer).await, 200);
    // At once where the change was made; on the other process as soon as
    // PostgreSQL's notification reaches it.
    assert_eq!(scim_list(&app, access).await, 401);
    crate::support::oauth::refused_soon(&second, access).await;
    for server in [&app, &second] {
        assert_eq!(scim_list(server, access).await, 401);
        assert!(bearer(server, access).await.is_none());
    }
    let (status, _) = refresh(&second, &okta, refresh_token, None).await;
    assert_eq!(status, 400);

    // Made admin again: the grant stays ended.
    let admin =
        json!({"op": "replace", "path": "roles", "value": [{"value": "admin", "primary": true}]});
    assert_eq!(scim_patch(&app, &api, &id, admin).await, 200);
    assert_eq!(scim_list(&second, access).await, 401);
    assert_eq!(introspected(&second, &okta, access).await["active"], false);
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let ended = rollcall::store::oauth::ended_grants(&app.db, ws.id, 10)
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].ended_reason.as_deref(), Some("demoted"));
    // A new authorization by the admin works again.
    let fresh = tokens_for(&app, &okta, &email, &password).await;
    assert_eq!(scim_list(&second, s(&fresh["access_token"])).await, 200);
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_code_redeemed_after_its_admin_was_demoted_gives_nothing() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    let api = ops::create_api_token(&app.db, "acme", "IdP", "test")
        .await
        .unwrap();
    let okta = register(&app, "Okta", false).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let id = member_id(&app, &email).await;
    let viewer =
        json!({"op": "replace", "path": "roles", "value": [{"value": "viewer", "primary": true}]});
    assert_eq!(scim_patch(&app, &api, &id, viewer).await, 200);
    let (status, body) = exchange(&app, &okta, &code, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.stop().await;
}

// ---- Codes belong to their client -------------------------------------------------

#[tokio::test]
async fn only_the_client_a_code_was_issued_to_can_use_or_burn_it() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let public = register(&app, "Someone's public client", true).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;

    // A public client needs only its id to present the code: it learns nothing ...
    let (status, body) = exchange(&app, &public, &code, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let unknown = exchange(&app, &public, "rc_ac_no-such-code", None).await.1;
    assert_eq!(
        body, unknown,
        "another client's code reads like no code at all"
    );
    // ... and the code still works for its own client.
    let (status, tokens) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 200, "{tokens}");
    let access = s(&tokens["access_token"]);

    // Replaying the redeemed code from another client does not end Okta's grant.
    let (status, body) = exchange(&app, &public, &code, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_eq!(body, unknown);
    assert!(bearer(&app, access).await.is_some(), "the grant survived");
    // Okta's own replay still ends it.
    let (status, _) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 400);
    assert!(bearer(&app, access).await.is_none());
    app.stop().await;
}

// ---- Rate limits -------------------------------------------------------------------

/// POST the token endpoint from a given loopback source address.
async fn token_request_from(app: &TestApp, source: [u8; 4], form: &[(&str, &str)]) -> StatusCode {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{}/oauth2/token", app.addr.port()))
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_public_clients_token_limit_is_counted_per_address() {
    let app = TestApp::spawn_with(|s| s.token_rate_per_client = Some(3)).await;
    app.workspace("acme").await;
    let public = register(&app, "CLI", true).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "rc_rt_x"),
        ("client_id", public.client_id.as_str()),
    ];
    // Someone who knows the client id uses up the limit from one address ...
    for _ in 0..3 {
        assert_eq!(token_request_from(&app, [127, 0, 0, 2], &form).await, 400);
    }
    assert_eq!(token_request_from(&app, [127, 0, 0, 2], &form).await, 429);
    // ... and the client's other users are not locked out.
    assert_eq!(token_request_from(&app, [127, 0, 0, 3], &form).await, 400);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_token_requests_cannot_overshoot_the_client_limit() {
    let app = TestApp::spawn_with(|s| s.token_rate_per_client = Some(5)).await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let secret = okta.client_secret.clone().unwrap();
    let racing: Vec<_> = (0..20)
        .map(|_| {
            let req = app
                .api()
                .post(app.url("/oauth2/token"))
                .basic_auth(&okta.client_id, Some(&secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "rc_rt_x"),
                ]);
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut all = Vec::new();
    for r in racing {
        all.push(r.await.unwrap());
    }
    let served = all.iter().filter(|s| **s == 400).count();
    let limited = all.iter().filter(|s| **s == 429).count();
    // Never more than the limit. Fewer is possible: the batched count treats events
    // in flight as seen, and when the database's answers come back out of order an
    // event can be counted twice for a moment (refused early, never let through).
    // Seen in full-suite runs on a loaded 2-core machine: 4 served, 16 limited.
    assert!((1..=5).contains(&served), "{all:?}");
    assert_eq!(served + limited, 20, "{all:?}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_overshoot_the_limit() {
    let app = TestApp::spawn_with(|s| s.signin_failures_per_account = Some(5)).await;
    let (email, password) = app.workspace("acme").await;
    let browser = app.browser();
    let csrf = csrf_of(&browser, &app.ws_url("acme", "/signin")).await;
    let attempt = |pw: &str| {
        let browser = browser.clone();
        let form = [
            ("email", email.clone()),
            ("password", pw.to_owned()),
            ("csrf", csrf.clone()),
        ];
        let url = app.ws_url("acme", "/signin");
        async move {
            browser
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Successful sign-ins (each in its own browser) are not failures: they use up
    // nothing.
    for _ in 0..3 {
        sign_in(&app, "acme", &email, &password).await;
    }
    let racing: Vec<_> = (0..20).map(|_| tokio::spawn(attempt("wrong"))).collect();
    let mut all = Vec::new();
    for r in racing {
        all.push(r.await.unwrap());
    }
    let checked = all.iter().filter(|s| **s == 401).count();
    let limited = all.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, limited), (5, 15), "{all:?}");
    assert_eq!(attempt(&password).await, 429, "locked for the window");
    app.stop().await;
}

// ---- Smaller rules -------------------------------------------------------------------

#[tokio::test]
async fn introspection_and_revocation_need_an_authenticated_client() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let public = register(&app, "CLI", true).await;
    let code = code_for(
        &app,
        &authorize_query(
            &public.client_id,
            &format!("&code_challenge={}&code_challenge_method=S256", CHALLENGE),
        ),
        &email,
        &password,
    )
    .await;
    let (status, tokens) = exchange(&app, &public, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = s(&tokens["access_token"]);
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let (status, _, body) = post(
            &app,
            path,
            None,
            &[("token", access), ("client_id", public.client_id.as_str())],
        )
        .await;
        assert_eq!(
            (status.as_u16(), s(&body["error"])),
            (401, "invalid_client"),
            "{path}"
        );
    }
    assert!(bearer(&app, access).await.is_some(), "not revoked");
    let meta: Value = app
        .api()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert!(
            !meta[key].as_array().unwrap().contains(&json!("none")),
            "{key}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn personal_pages_are_never_cached() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let anonymous = app.browser();
    let r = anonymous
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store", "sign-in");
    let r = anonymous
        .get(app.url(&format!(
            "/oauth2/authorize?{}",
            authorize_query(&okta.client_id, "")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "no-store",
        "workspace question"
    );
    let browser = sign_in(&app, "acme", &email, &password).await;
    for path in [
        "/members".to_owned(),
        "/settings/sso".to_owned(),
        "/settings/api".to_owned(),
        "/settings/apps".to_owned(),
        format!("/oauth2/authorize?{}", authorize_query(&okta.client_id, "")),
    ] {
        let r = browser.get(app.ws_url("acme", &path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    // Static assets may still be cached.
    let r = anonymous
        .get(app.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["cache-control"], "no-store");
    app.stop().await;
}

#[tokio::test]
async fn sessions_end_after_their_absolute_lifetime_however_active() {
    let app = TestApp::spawn_with(|s| s.session_absolute_secs = Some(5)).await;
    let (email, password) = app.workspace("acme").await;
    let signed_in = std::time::Instant::now();
    let browser = sign_in(&app, "acme", &email, &password).await;
    // Active all along: a request every half second, well inside the lifetime.
    while signed_in.elapsed() < std::time::Duration::from_secs(2) {
        let r = browser
            .get(app.ws_url("acme", "/members"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let after = std::time::Duration::from_millis(5_500);
    tokio::time::sleep(after.saturating_sub(signed_in.elapsed())).await;
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/signin"), "{}", location(&r));
    // Signing in again starts a new lifetime.
    let browser = sign_in(&app, "acme", &email, &password).await;
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}
