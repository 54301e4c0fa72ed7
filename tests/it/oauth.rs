//! The OAuth2 authorization server, end to end over HTTP: the "Authenticate with
//! Rollcall" flow through the real pages with a cookie jar, the token, revocation and
//! introspection endpoints, and every rule that keeps codes and tokens safe.

use crate::support::oauth::*;
use crate::support::ops::{self, CreatedClient};
use crate::support::{TestApp, enc, form_value, location, s};
use base64::Engine;
use reqwest::StatusCode;
use rollcall::store::sql::sql;
use serde_json::Value;

#[tokio::test]
async fn the_whole_flow_through_the_pages() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let browser = app.browser();
    let query = authorize_query(&okta.client_id, "");

    // App host: which workspace? An unknown one is said on the form.
    let page = browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_unframeable(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("Connect Okta"), "{html}");
    let request = form_value(&html, "request").unwrap();
    let r = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", "globex"), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("There is no workspace called &#39;globex&#39;"),
        "{html}"
    );
    assert_eq!(form_value(&html, "request").unwrap(), request);

    // Through sign-in to consent, which names the client, the workspace and the access.
    let consent = to_consent(&app, &browser, &query, &email, &password).await;
    assert!(
        consent.contains("Allow Okta to access acme Inc?"),
        "{consent}"
    );
    assert!(
        consent.contains("Read the workspace&#39;s members"),
        "{consent}"
    );
    assert!(consent.contains("Create, update, deactivate"), "{consent}");
    assert!(consent.contains(&email));
    let p = answer(&app, &browser, &consent, "allow").await;
    assert_eq!(p["state"], "xyz");
    assert_eq!(p["iss"], app.base);
    let code = &p["code"];
    assert!(code.starts_with("rc_ac_"));

    // Code for tokens, the client authenticating with HTTP Basic.
    let (status, headers, tokens) = post(
        &app,
        "/oauth2/token",
        Some((&okta.client_id, okta.client_secret.as_deref().unwrap())),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "scim:read scim:write");
    let access = s(&tokens["access_token"]).to_owned();
    let refresh_token = s(&tokens["refresh_token"]).to_owned();
    assert!(access.starts_with("rc_at_") && refresh_token.starts_with("rc_rt_"));

    // The access token opens acme's SCIM API, read and write.
    let who = bearer(&app, &access).await.expect("access token works");
    assert_eq!(who.workspace.subdomain, "acme");
    assert!(who.can_read && who.can_write);
    assert_eq!(who.actor, "oauth:Okta");
    assert!(
        bearer(&app, &refresh_token).await.is_none(),
        "a refresh token is not a bearer token"
    );

    // The workspace's grants show who authorized it.
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_name, "Okta");
    assert_eq!(grants[0].member_user_name.as_deref(), Some(email.as_str()));
    assert_eq!(grants[0].scope, "scim:read scim:write");

    // Refresh (client_secret_post this time): a new pair.
    let (status, fresh) = refresh(&app, &okta, &refresh_token, None).await;
    assert_eq!(status, 200, "{fresh}");
    let access2 = s(&fresh["access_token"]).to_owned();
    let refresh2 = s(&fresh["refresh_token"]).to_owned();
    assert_ne!(refresh2, refresh_token);
    assert!(bearer(&app, &access2).await.is_some());

    // Revoking the refresh token ends the grant: every token stops working.
    assert_eq!(revoke(&app, &okta, &refresh2).await, 200);
    assert!(bearer(&app, &access).await.is_none());
    assert!(bearer(&app, &access2).await.is_none());
    assert_eq!(introspect(&app, &okta, &access2).await["active"], false);
    let (status, body) = refresh(&app, &okta, &refresh2, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        rollcall::store::oauth::list_grants(&app.db, ws.id)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn deny_sends_access_denied_with_state_and_iss() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let browser = app.browser();
    let consent = to_consent(
        &app,
        &browser,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let p = answer(&app, &browser, &consent, "deny").await;
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "xyz");
    assert_eq!(p["iss"], app.base);
    assert!(!p.contains_key("code"));
    app.stop().await;
}

#[tokio::test]
async fn wrong_redirect_uri_or_client_is_shown_never_redirected() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let id = enc(&okta.client_id);
    let cases = [
        format!(
            "response_type=code&client_id={id}&redirect_uri={}&state=x",
            enc("https://evil.example/cb")
        ),
        format!(
            "response_type=code&client_id={id}&redirect_uri={}&state=x",
            enc("http://localhost:9999/callback/")
        ),
        format!("response_type=code&client_id={id}&state=x"),
        format!(
            "response_type=code&client_id=nope&redirect_uri={}&state=x",
            enc(REDIRECT)
        ),
        format!("response_type=code&redirect_uri={}&state=x", enc(REDIRECT)),
        format!(
            "response_type=code&client_id={id}&client_id={id}&redirect_uri={}",
            enc(REDIRECT)
        ),
    ];
    for q in &cases {
        for url in [
            app.url(&format!("/oauth2/authorize?{q}")),
            app.ws_url("acme", &format!("/oauth2/authorize?{q}")),
        ] {
            let r = app.api().get(&url).send().await.unwrap();
            assert_eq!(r.status(), 400, "{url}");
            assert!(r.headers().get("location").is_none(), "{url}");
            assert_unframeable(&r);
            let html = r.text().await.unwrap();
            assert!(html.contains("<html"), "an HTML page: {html}");
        }
    }
    // The workspace question re-checks the request too.
    let r = app
        .api()
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", "acme"), ("request", cases[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    app.stop().await;
}

#[tokio::test]
async fn other_authorization_errors_go_back_to_the_client() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let public = register(&app, "Desktop", true).await;
    let cases = [
        (
            &okta,
            authorize_query(&okta.client_id, "")
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            &okta,
            authorize_query(&okta.client_id, "&scope=admin"),
            "invalid_scope",
        ),
        (
            &okta,
            authorize_query(
                &okta.client_id,
                &format!("&code_challenge={CHALLENGE}&code_challenge_method=plain"),
            ),
            "invalid_request",
        ),
        (
            &okta,
            authorize_query(&okta.client_id, &format!("&code_challenge={CHALLENGE}")),
            "invalid_request",
        ),
        (
            &okta,
            authorize_query(
                &okta.client_id,
                "&code_challenge=tooshort&code_challenge_method=S256",
            ),
            "invalid_request",
        ),
        (
            &public,
            authorize_query(&public.client_id, ""),
            "invalid_request",
        ),
    ];
    for (_, q, error) in &cases {
        for url in [
            app.url(&format!("/oauth2/authorize?{q}")),
            app.ws_url("acme", &format!("/oauth2/authorize?{q}")),
        ] {
            let r = app.api().get(&url).send().await.unwrap();
            assert_eq!(r.status(), 303, "{url}");
            let p = callback_params(&location(&r));
            assert_eq!(p["error"], *error, "{url}");
            assert!(!p["error_description"].is_empty());
            assert_eq!(p["state"], "xyz");
            assert_eq!(p["iss"], app.base);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn pkce_is_enforced_and_cannot_be_downgraded() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let public = register(&app, "Desktop", true).await;
    let okta = register(&app, "Okta", false).await;
    let pkce = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256");

    // Public client: challenge sent, verifier missing, then wrong: refused.
    for verifier in [None, Some("x".repeat(43)), Some(CHALLENGE.to_owned())] {
        let code = code_for(
            &app,
            &authorize_query(&public.client_id, &pkce),
            &email,
            &password,
        )
        .await;
        let (status, body) = exchange(&app, &public, &code, verifier.as_deref()).await;
        assert_eq!(status, 400, "{verifier:?}");
        assert_eq!(body["error"], "invalid_grant", "{verifier:?}");
    }
    // The right verifier works, for the public client with no secret.
    let code = code_for(
        &app,
        &authorize_query(&public.client_id, &pkce),
        &email,
        &password,
    )
    .await;
    let (status, body) = exchange(&app, &public, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{body}");

    // Confidential client: PKCE optional, but enforced once a challenge was sent...
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, &pkce),
        &email,
        &password,
    )
    .await;
    let (status, body) = exchange(&app, &okta, &code, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // ...and a verifier for a code issued without a challenge is refused too.
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let (status, body) = exchange(&app, &okta, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let (status, _) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_code_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let (status, tokens) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 200);
    let access = s(&tokens["access_token"]);
    let refresh_token = s(&tokens["refresh_token"]);
    assert!(bearer(&app, access).await.is_some());

    let (status, body) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        bearer(&app, access).await.is_none(),
        "replay must revoke the access token"
    );
    assert_eq!(refresh(&app, &okta, refresh_token, None).await.0, 400);
    app.stop().await;
}

/// POST a form to `url` from a task of its own (for concurrent requests).
fn spawn_post(
    url: String,
    form: Vec<(&'static str, String)>,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    })
}

fn client_form(c: &CreatedClient) -> Vec<(&'static str, String)> {
    let mut form = vec![("client_id", c.client_id.clone())];
    if let Some(secret) = &c.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    form
}

#[tokio::test]
async fn racing_redemptions_of_one_code_never_both_win() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let mut form = client_form(&okta);
        form.extend([
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
        ]);
        tasks.push(spawn_post(app.url("/oauth2/token"), form));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            winners.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    // The others were replays: they ended the grant the winner got.
    assert!(bearer(&app, s(&winners[0]["access_token"])).await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri_and_expires() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let a = register(&app, "A", false).await;
    let b = register(&app, "B", false).await;
    let code = code_for(&app, &authorize_query(&a.client_id, ""), &email, &password).await;
    let (status, body) = exchange(&app, &b, &code, None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    let code = code_for(&app, &authorize_query(&a.client_id, ""), &email, &password).await;
    let (status, _, body) = post(
        &app,
        "/oauth2/token",
        Some((&a.client_id, a.client_secret.as_deref().unwrap())),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    // A code past its ten minutes (written straight into the store).
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let admin = rollcall::store::members::credentials(&app.db, ws.id, &email)
        .await
        .unwrap()
        .unwrap()
        .0;
    let old = rollcall::secrets::generate(rollcall::secrets::Kind::AuthCode);
    rollcall::store::oauth::create_code(
        &app.db,
        &rollcall::store::oauth::NewCode {
            digest: &rollcall::secrets::digest(&old),
            client_id: &a.client_id,
            workspace_id: ws.id,
            member_id: admin.id,
            redirect_uri: REDIRECT,
            scope: "scim:read",
            code_challenge: None,
            expires_at: rollcall::store::now() - time::Duration::seconds(1),
        },
    )
    .await
    .unwrap();
    let (status, body) = exchange(&app, &a, &old, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(s(&body["error_description"]).contains("expired"), "{body}");
    let (status, body) = exchange(&app, &a, "rc_ac_unknown", None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.stop().await;
}

#[tokio::test]
async fn refresh_reuse_after_the_grace_period_revokes_the_grant() {
    let app = TestApp::spawn_with(|s| s.refresh_grace_secs = Some(1)).await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let first = tokens_for(&app, &okta, &email, &password).await;
    let (status, second) = refresh(&app, &okta, s(&first["refresh_token"]), None).await;
    assert_eq!(status, 200);
    assert!(bearer(&app, s(&second["access_token"])).await.is_some());

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = refresh(&app, &okta, s(&first["refresh_token"]), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    // The whole grant is gone: the newer tokens too.
    assert!(bearer(&app, s(&second["access_token"])).await.is_none());
    let (status, _) = refresh(&app, &okta, s(&second["refresh_token"]), None).await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn refresh_reuse_within_the_grace_period_works_without_forking() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let first = tokens_for(&app, &okta, &email, &password).await;
    let rt1 = s(&first["refresh_token"]);
    let (status, second) = refresh(&app, &okta, rt1, None).await;
    assert_eq!(status, 200);
    // The answer was "lost": the client tries again with the same token.
    let (status, third) = refresh(&app, &okta, rt1, None).await;
    assert_eq!(status, 200, "{third}");
    assert_ne!(third["refresh_token"], second["refresh_token"]);
    assert!(bearer(&app, s(&third["access_token"])).await.is_some());

    // One family: only the newest refresh token is the family's head.
    let grant = introspect(&app, &okta, s(&third["refresh_token"])).await;
    assert_eq!(grant["active"], true);
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        rollcall::store::oauth::newest_refresh_tokens(&app.db, grants[0].id)
            .await
            .unwrap(),
        1
    );
    // Refreshing from the newest works and keeps it one family.
    let (status, fourth) = refresh(&app, &okta, s(&third["refresh_token"]), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        rollcall::store::oauth::newest_refresh_tokens(&app.db, grants[0].id)
            .await
            .unwrap(),
        1
    );
    assert!(bearer(&app, s(&fourth["access_token"])).await.is_some());
    app.stop().await;
}

/// Housekeeping deletes long-expired tokens without taking the grant's lock, so a
/// refresh token can vanish between the refresh's lock on its grant and its read of
/// the token. A trigger deletes it at exactly that point (the lock is an UPDATE of
/// the grant): the answer is the RFC's `invalid_grant`, as for any unknown token,
/// not a 500.
#[tokio::test]
async fn a_refresh_token_deleted_under_the_refresh_is_an_invalid_grant() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let first = tokens_for(&app, &okta, &email, &password).await;
    let trigger: &[&str] = match app.db.backend() {
        rollcall::store::Backend::Sqlite => {
            &["CREATE TRIGGER housekeeping AFTER UPDATE ON oauth_grants \
             BEGIN DELETE FROM oauth_tokens WHERE grant_id = NEW.id AND kind = 'refresh'; END"]
        }
        rollcall::store::Backend::Postgres => &[
            "CREATE FUNCTION housekeeping() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN DELETE FROM oauth_tokens WHERE grant_id = NEW.id AND kind = 'refresh'; \
             RETURN NEW; END $$",
            "CREATE TRIGGER housekeeping AFTER UPDATE ON oauth_grants \
             FOR EACH ROW EXECUTE FUNCTION housekeeping()",
        ],
    };
    for statement in trigger {
        app.db.execute(sql(*statement)).await.unwrap();
    }
    let (status, body) = refresh(&app, &okta, s(&first["refresh_token"]), None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "{body}"
    );
    // Nothing was half-done: the grant's access token still works, and no new
    // token was issued.
    assert!(bearer(&app, s(&first["access_token"])).await.is_some());
    app.stop().await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_leave_one_live_family() {
    let app = TestApp::spawn_with(|s| s.refresh_grace_secs = Some(3)).await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let first = tokens_for(&app, &okta, &email, &password).await;
    let rt = s(&first["refresh_token"]).to_owned();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut form = client_form(&okta);
            form.extend([
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", rt.clone()),
            ]);
            spawn_post(app.url("/oauth2/token"), form)
        })
        .collect();
    let mut issued = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        issued.push(s(&body["refresh_token"]).to_owned());
    }
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1, "one grant");
    assert_eq!(
        rollcall::store::oauth::newest_refresh_tokens(&app.db, grants[0].id)
            .await
            .unwrap(),
        1,
        "one newest refresh token"
    );
    // Once the grace period is over, exactly one of the ten still works.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let mut active = Vec::new();
    for t in &issued {
        if introspect(&app, &okta, t).await["active"] == true {
            active.push(t.clone());
        }
    }
    assert_eq!(active.len(), 1, "one live family");
    let (status, _) = refresh(&app, &okta, &active[0], None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_not_widen_it() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, "&scope=scim:read"),
        &email,
        &password,
    )
    .await;
    let (status, tokens) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 200);
    assert_eq!(tokens["scope"], "scim:read");
    let who = bearer(&app, s(&tokens["access_token"])).await.unwrap();
    assert!(who.can_read && !who.can_write, "read-only token");
    let (status, body) = refresh(
        &app,
        &okta,
        s(&tokens["refresh_token"]),
        Some("scim:read scim:write"),
    )
    .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    // The refused request changed nothing: the token still refreshes.
    let (status, body) = refresh(&app, &okta, s(&tokens["refresh_token"]), Some("scim:read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "scim:read");

    let all = tokens_for(&app, &okta, &email, &password).await;
    let (status, narrow) = refresh(&app, &okta, s(&all["refresh_token"]), Some("scim:write")).await;
    assert_eq!(status, 200);
    assert_eq!(narrow["scope"], "scim:write");
    let who = bearer(&app, s(&narrow["access_token"])).await.unwrap();
    assert!(
        !who.can_read && who.can_write,
        "write needs scim:write; read needs scim:read"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_tokens_stop_working() {
    let app = TestApp::spawn_with(|s| {
        s.access_token_ttl_secs = Some(1);
        s.refresh_token_ttl_secs = Some(1);
    })
    .await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    assert_eq!(tokens["expires_in"], 1);
    let access = s(&tokens["access_token"]);
    assert!(bearer(&app, access).await.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(bearer(&app, access).await.is_none());
    assert_eq!(introspect(&app, &okta, access).await["active"], false);
    let (status, body) = refresh(&app, &okta, s(&tokens["refresh_token"]), None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.stop().await;
}

#[tokio::test]
async fn only_admins_may_allow_access() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let email = rollcall::domain::Email::parse("viewer@acme.test").unwrap();
    let hash = rollcall::secrets::hash_password("viewer-password".into()).await;
    rollcall::store::members::create(
        &app.db,
        ws.id,
        &ops::local_member(&email, rollcall::domain::Role::Viewer),
        Some(&hash),
    )
    .await
    .unwrap();
    let browser = app.browser();
    let query = authorize_query(&okta.client_id, "");
    let r = browser
        .get(app.ws_url("acme", &format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = sign_in_at(
        &app,
        &browser,
        &location(&r),
        "viewer@acme.test",
        "viewer-password",
    )
    .await;
    let r = browser.get(app.ws_url("acme", &back)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Only admins of acme Inc can allow Okta"),
        "{html}"
    );

    // Posting an Allow by hand does not get round it.
    let page = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&page, "csrf").unwrap();
    let r = browser
        .post(app.ws_url("acme", "/oauth2/authorize"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", query.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    // Refused as a non-admin (not, say, by the CSRF check), and no code exists.
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Only admins of acme Inc can allow Okta"),
        "{html}"
    );
    let codes: i64 = app
        .db
        .read_one(sql("SELECT COUNT(*) FROM oauth_codes"))
        .await
        .unwrap();
    assert_eq!(codes, 0, "a code was stored for a viewer's Allow");
    app.stop().await;
}

#[tokio::test]
async fn consent_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let browser = app.browser();
    let consent = to_consent(
        &app,
        &browser,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let request = form_value(&consent, "request").unwrap();
    let csrf = form_value(&consent, "csrf").unwrap();
    for form in [
        vec![("request", request.as_str()), ("decision", "allow")],
        vec![
            ("csrf", "forged"),
            ("request", request.as_str()),
            ("decision", "allow"),
        ],
    ] {
        let r = browser
            .post(app.ws_url("acme", "/oauth2/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("location").is_none());
    }
    let r = browser
        .post(app.ws_url("acme", "/oauth2/authorize"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // With no session at all the answer is a trip to sign-in, not a code.
    let r = app
        .api()
        .post(app.ws_url("acme", "/oauth2/authorize"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/signin"));
    app.stop().await;
}

#[tokio::test]
async fn client_authentication_at_the_token_endpoint() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let secret = okta.client_secret.clone().unwrap();
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", "rc_ac_x"),
        ("redirect_uri", REDIRECT),
    ];

    // Basic and form secret at once.
    let mut both = grant.to_vec();
    both.push(("client_secret", &secret));
    let (status, _, body) = post(
        &app,
        "/oauth2/token",
        Some((&okta.client_id, &secret)),
        &both,
    )
    .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // Wrong secret by Basic: 401 with a Basic challenge.
    let (status, headers, body) = post(
        &app,
        "/oauth2/token",
        Some((&okta.client_id, "wrong")),
        &grant,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(headers["www-authenticate"], "Basic realm=\"rollcall\"");
    assert_eq!(headers["cache-control"], "no-store");
    // Garbage Basic.
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .header("authorization", "Basic %%%")
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));

    // Wrong secret, unknown client, no secret: 401 invalid_client.
    for form_auth in [
        vec![
            ("client_id", okta.client_id.as_str()),
            ("client_secret", "wrong"),
        ],
        vec![("client_id", "nobody"), ("client_secret", "x")],
        vec![("client_id", okta.client_id.as_str())],
        vec![],
    ] {
        let mut form = grant.to_vec();
        form.extend(form_auth);
        let (status, _, body) = post(&app, "/oauth2/token", None, &form).await;
        assert_eq!(status, 401, "{form:?}");
        assert_eq!(body["error"], "invalid_client");
    }

    // Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1).
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        enc(&okta.client_id),
        enc(&secret)
    ));
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .header("authorization", format!("Basic {encoded}"))
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "authenticated; the code is what is wrong");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // Unsupported grant types and non-form bodies.
    let (status, _, body) = post(
        &app,
        "/oauth2/token",
        Some((&okta.client_id, &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type")
    );
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .basic_auth(&okta.client_id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_is_rate_limited() {
    let app = TestApp::spawn_with(|s| s.token_rate_per_client = Some(3)).await;
    app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let other = register(&app, "Other", false).await;
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "rc_rt_x"),
    ];
    for _ in 0..3 {
        let (status, _, _) = post(
            &app,
            "/oauth2/token",
            Some((&okta.client_id, okta.client_secret.as_deref().unwrap())),
            &grant,
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, headers, body) = post(
        &app,
        "/oauth2/token",
        Some((&okta.client_id, okta.client_secret.as_deref().unwrap())),
        &grant,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Per client: another client is not affected.
    let (status, _, _) = post(
        &app,
        "/oauth2/token",
        Some((&other.client_id, other.client_secret.as_deref().unwrap())),
        &grant,
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;

    // Per remote address, counted before client authentication.
    let app = TestApp::spawn_with(|s| s.token_rate_per_address = Some(2)).await;
    for expected in [401, 401, 429] {
        let (status, headers, _) = post(&app, "/oauth2/token", Some(("nobody", "x")), &grant).await;
        assert_eq!(status.as_u16(), expected);
        if expected == 429 {
            assert!(headers.contains_key("retry-after"));
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn password_sign_in_is_rate_limited() {
    let app = TestApp::spawn_with(|s| {
        s.signin_failures_per_account = Some(3);
        s.signin_failures_per_address = Some(5);
    })
    .await;
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
    let try_password = |who: String, pw: String| {
        let browser = browser.clone();
        let csrf = csrf.clone();
        let url = app.ws_url("acme", "/signin");
        async move {
            browser
                .post(url)
                .form(&[
                    ("email", who.as_str()),
                    ("password", pw.as_str()),
                    ("csrf", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(
            try_password(email.clone(), "wrong".into()).await.status(),
            401
        );
    }
    // The account is locked for the window, even with the right password.
    let r = try_password(email.clone(), password.clone()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Per address: two more failures on another account use up the address's five.
    for _ in 0..2 {
        assert_eq!(
            try_password("someone@acme.test".into(), "x".into())
                .await
                .status(),
            401
        );
    }
    let r = try_password("third@acme.test".into(), "x".into()).await;
    assert_eq!(r.status(), 429);
    app.stop().await;
}

#[tokio::test]
async fn metadata_document() {
    let app = TestApp::spawn().await;
    let r = app
        .api()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    let base = &app.base;
    assert_eq!(m["issuer"], *base);
    assert_eq!(
        m["authorization_endpoint"],
        format!("{base}/oauth2/authorize")
    );
    assert_eq!(m["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(m["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{base}/oauth2/introspect")
    );
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["scim:read", "scim:write"])
    );
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    // Only on the app host.
    app.workspace("acme").await;
    let r = app
        .api()
        .get(app.ws_url("acme", "/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn introspection_and_revocation() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let other = register(&app, "Other", false).await;
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    let access = s(&tokens["access_token"]);
    let refresh_token = s(&tokens["refresh_token"]);

    let i = introspect(&app, &okta, access).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["scope"], "scim:read scim:write");
    assert_eq!(i["client_id"], okta.client_id);
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["iss"], app.base);
    assert_eq!(i["workspace"], "acme");
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let admin = rollcall::store::members::credentials(&app.db, ws.id, &email)
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(i["sub"], admin.id.to_string());
    let (exp, iat) = (i["exp"].as_i64().unwrap(), i["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    let i = introspect(&app, &okta, refresh_token).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "refresh_token");

    // Other clients learn nothing about it, and cannot revoke it.
    assert_eq!(
        introspect(&app, &other, access).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(revoke(&app, &other, refresh_token).await, 200);
    assert!(bearer(&app, access).await.is_some());
    // Unknown tokens: inactive, and revoking them is fine.
    assert_eq!(
        introspect(&app, &okta, "rc_at_nope").await,
        serde_json::json!({"active": false})
    );
    assert_eq!(revoke(&app, &okta, "rc_rt_nope").await, 200);
    // Introspection and revocation need client authentication and a token.
    let (status, _, body) = post(
        &app,
        "/oauth2/introspect",
        Some((&okta.client_id, "wrong")),
        &[("token", access)],
    )
    .await;
    assert_eq!(
        (status.as_u16(), s(&body["error"])),
        (401, "invalid_client")
    );
    let (status, _, body) = post(&app, "/oauth2/revoke", None, &[("token", access)]).await;
    assert_eq!(
        (status.as_u16(), s(&body["error"])),
        (401, "invalid_client")
    );
    let (status, _, body) = post(
        &app,
        "/oauth2/revoke",
        Some((&okta.client_id, okta.client_secret.as_deref().unwrap())),
        &[],
    )
    .await;
    assert_eq!(
        (status.as_u16(), s(&body["error"])),
        (400, "invalid_request")
    );

    // Revoking the access token ends only it.
    assert_eq!(revoke(&app, &okta, access).await, 200);
    assert!(bearer(&app, access).await.is_none());
    assert_eq!(introspect(&app, &okta, access).await["active"], false);
    let (status, fresh) = refresh(&app, &okta, refresh_token, None).await;
    assert_eq!(status, 200);
    assert!(bearer(&app, s(&fresh["access_token"])).await.is_some());
    // Revoking a refresh token ends the grant.
    assert_eq!(revoke(&app, &okta, s(&fresh["refresh_token"])).await, 200);
    assert!(bearer(&app, s(&fresh["access_token"])).await.is_none());

    // An admin can revoke a grant from the store API.
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    rollcall::store::oauth::revoke_grant(&app.db, ws.id, grants[0].id)
        .await
        .unwrap();
    assert!(bearer(&app, s(&tokens["access_token"])).await.is_none());
    assert!(matches!(
        rollcall::store::oauth::revoke_grant(&app.db, ws.id, grants[0].id).await,
        Err(rollcall::store::StoreError::NotFound)
    ));
    app.stop().await;
}

#[tokio::test]
async fn cli_registers_clients() {
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
        "client",
        "create",
        "--name",
        "Okta",
        "--redirect-uri",
        "https://system-admin.okta.com/admin/app/cpc/rollcall/oauth/callback",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON alone");
    assert!(s(&created["client_id"]).starts_with("rc_client_"));
    assert!(s(&created["client_secret"]).starts_with("rc_cs_"));

    let out = run(&[
        "client",
        "create",
        "--name",
        "CLI",
        "--redirect-uri",
        "http://localhost:8400/",
        "--public",
    ]);
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["client_secret"], Value::Null);

    let out = run(&[
        "client",
        "create",
        "--name",
        "Bad",
        "--redirect-uri",
        "http://example.com/cb",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must use https"));
    let out = run(&["client", "create", "--name", "None"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn demo_has_an_oauth_client() {
    let app = TestApp::spawn().await;
    let demo = ops::seed_demo(&app.db).await.unwrap().unwrap();
    let c = rollcall::store::oauth::client(&app.db, &demo.client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.redirect_uris, vec![ops::DEMO_REDIRECT_URI.to_owned()]);
    assert!(!c.public && demo.client.client_secret.is_some());
    app.stop().await;
}

/// The Python that has authlib: `ROLLCALL_TEST_PYTHON` (scripts/test sets it, and
/// then the test must run), else the venv scripts/test makes under target/.
pub(crate) fn authlib_python() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("ROLLCALL_TEST_PYTHON")
        && !p.is_empty()
    {
        return Some(p.into());
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    venv.exists().then_some(venv)
}

/// Kills the server process when the test ends, however it ends.
pub(crate) struct Server(pub(crate) std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn authlib_completes_the_flow_against_rollcall_serve() {
    let Some(python) = authlib_python() else {
        eprintln!(
            "skipped: no Python with authlib (scripts/test creates target/pyenv; or set ROLLCALL_TEST_PYTHON)"
        );
        return;
    };
    let db_url = crate::support::fresh_database_url().await;
    let bin = env!("CARGO_BIN_EXE_rollcall");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .output()
            .expect("run rollcall");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let password = cli(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "admin@acme.test",
    ]);
    // A public client's tokens are checked on the SCIM API (it may not introspect).
    cli(&["workspace", "scim", "acme", "on"]);
    let confidential: Value = serde_json::from_str(&cli(&[
        "client",
        "create",
        "--name",
        "Okta",
        "--redirect-uri",
        REDIRECT,
    ]))
    .unwrap();
    let public: Value = serde_json::from_str(&cli(&[
        "client",
        "create",
        "--name",
        "Desktop",
        "--redirect-uri",
        REDIRECT,
        "--public",
    ]))
    .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let _server = Server(
        std::process::Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--base-url",
                &base,
            ])
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .env("ROLLCALL_SECRET_KEY", crate::support::TEST_SERVER_KEY)
            .env("ROLLCALL_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start rollcall serve"),
    );
    let probe = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = probe
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "rollcall serve did not come up");

    for client in [&confidential, &public] {
        let mut args = vec![
            "tests/oauth_client_authlib.py".to_owned(),
            "--base".into(),
            base.clone(),
            "--client-id".into(),
            s(&client["client_id"]).to_owned(),
            "--workspace".into(),
            "acme".into(),
            "--email".into(),
            "admin@acme.test".into(),
            "--password".into(),
            password.clone(),
            "--redirect-uri".into(),
            REDIRECT.into(),
        ];
        if let Some(secret) = client["client_secret"].as_str() {
            args.extend(["--client-secret".to_owned(), secret.to_owned()]);
        }
        let out = std::process::Command::new(&python)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "authlib client ({}) failed:\n{}\n{}",
            s(&client["client_id"]),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn rate_limits_are_shared_by_servers_on_one_database() {
    let url = crate::support::fresh_database_url().await;
    let one = TestApp::spawn_on(&url, |s| s.token_rate_per_client = Some(3)).await;
    let two = TestApp::spawn_on(&url, |s| s.token_rate_per_client = Some(3)).await;
    let okta = register(&one, "Okta", false).await;
    let secret = okta.client_secret.as_deref().unwrap();
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "rc_rt_x"),
    ];
    for (app, expected) in [(&one, 400), (&two, 400), (&one, 400), (&two, 429)] {
        let (status, _, _) = post(
            app,
            "/oauth2/token",
            Some((&okta.client_id, secret)),
            &grant,
        )
        .await;
        assert_eq!(status.as_u16(), expected);
    }
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn access_tokens_call_the_scim_api_within_their_scopes() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    let okta = register(&app, "Okta", false).await;
    let scim = |token: String, method: reqwest::Method, body: Option<Value>| {
        let mut req = app
            .api()
            .request(method, app.url("/scim/v2/Users"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { crate::support::scim::answer(req.send().await.unwrap()).await }
    };
    let new_user = serde_json::json!({"userName": "via-oauth@acme.test"});

    // Read-only grant: reads work, writes are 403 insufficient_scope.
    let query = authorize_query(&okta.client_id, &format!("&scope={}", enc("scim:read")));
    let code = code_for(&app, &query, &email, &password).await;
    let (status, read_only) = exchange(&app, &okta, &code, None).await;
    assert_eq!(status, 200, "{read_only}");
    assert_eq!(read_only["scope"], "scim:read");
    let token = s(&read_only["access_token"]).to_owned();
    assert_eq!(
        scim(token.clone(), reqwest::Method::GET, None).await.status,
        200
    );
    let denied = scim(token, reqwest::Method::POST, Some(new_user.clone())).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    // Full grant: the SCIM write goes through and is logged as the client's.
    let full = tokens_for(&app, &okta, &email, &password).await;
    let token = s(&full["access_token"]).to_owned();
    let created = scim(token.clone(), reqwest::Method::POST, Some(new_user)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let log = rollcall::store::activity::recent(&app.db, 1, None, false, 1)
        .await
        .unwrap();
    assert_eq!(log[0].actor, "oauth:Okta");

    // Revoked: the API answers 401 at once.
    assert_eq!(revoke(&app, &okta, &token).await, 200);
    assert_eq!(scim(token, reqwest::Method::GET, None).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_refresh_racing_a_revocation_leaves_nothing_alive() {
    // About the race, not the rate limiter: ~35 token-endpoint calls per round.
    let app = TestApp::spawn_with(|s| {
        s.token_rate_per_client = Some(100_000);
        s.token_rate_per_address = Some(100_000);
    })
    .await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    for round in 0..5 {
        let tokens = tokens_for(&app, &okta, &email, &password).await;
        let rt = s(&tokens["refresh_token"]).to_owned();
        // Eight refreshes and one revocation of the same refresh token, at once.
        let mut refreshes = Vec::new();
        for _ in 0..8 {
            let (app_base, c, rt) = (app.base.clone(), okta.clone(), rt.clone());
            let client = app.api();
            refreshes.push(tokio::spawn(async move {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", rt),
                    ("client_id", c.client_id.clone()),
                ];
                if let Some(secret) = c.client_secret.clone() {
                    form.push(("client_secret", secret));
                }
                let r = client
                    .post(format!("{app_base}/oauth2/token"))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }));
        }
        assert_eq!(revoke(&app, &okta, &rt).await, 200);
        let mut issued = Vec::new();
        for r in refreshes {
            let (status, body) = r.await.unwrap();
            if status == 200 {
                issued.push(body);
            } else {
                assert_eq!(body["error"], "invalid_grant", "round {round}: {body}");
            }
        }
        // Whatever won the race, the revocation ended the grant: nothing it issued
        // before or during the race still works.
        for body in &issued {
            for key in ["access_token", "refresh_token"] {
                let t = s(&body[key]);
                assert_eq!(
                    introspect(&app, &okta, t).await["active"],
                    false,
                    "round {round}: {key} alive"
                );
            }
            let (status, again) = refresh(&app, &okta, s(&body["refresh_token"]), None).await;
            assert_eq!(
                (status, again["error"].clone()),
                (StatusCode::BAD_REQUEST, Value::from("invalid_grant"))
            );
        }
        assert_eq!(
            introspect(&app, &okta, s(&tokens["access_token"])).await["active"],
            false
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_grant_for_one_workspace_never_reaches_another() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let (other_email, _) = app.workspace("globex").await;
    for sub in ["acme", "globex"] {
        ops::set_scim(&app.db, sub, true).await.unwrap();
    }
    let okta = register(&app, "Okta", false).await;
    let tokens = tokens_for(&app, &okta, &email, &password).await;
    let access = s(&tokens["access_token"]).to_owned();
    // The token reads acme's members only.
    let list: Value = app
        .api()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, [email.as_str()], "{list}");
    assert!(!list.to_string().contains(&other_email));
    // Introspection names the workspace; a refresh stays in it.
    assert_eq!(introspect(&app, &okta, &access).await["workspace"], "acme");
    let (status, refreshed) = refresh(&app, &okta, s(&tokens["refresh_token"]), None).await;
    assert_eq!(status, 200);
    let principal = bearer(&app, s(&refreshed["access_token"])).await.unwrap();
    assert_eq!(principal.workspace.subdomain, "acme");
    // An acme session does not authorize on globex's host: sign-in is asked for.
    let browser = crate::support::sign_in(&app, "acme", &email, &password).await;
    let r = browser
        .get(app.ws_url(
            "globex",
            &format!("/oauth2/authorize?{}", authorize_query(&okta.client_id, "")),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/signin"), "{}", location(&r));
    // The cookie jar would not send acme's host-only cookie to globex; carry it
    // there by hand, so the server's own check is what refuses it.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let acme = app.browser_with_jar(jar.clone());
    let page = acme
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&page, "csrf").unwrap();
    let r = acme
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", email.as_str()),
            ("password", password.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let acme_url = url::Url::parse(&app.ws_url("acme", "/")).unwrap();
    let cookie = reqwest::cookie::CookieStore::cookies(&*jar, &acme_url).expect("session cookie");
    let query = authorize_query(&okta.client_id, "");
    let carried = app
        .api()
        .get(app.ws_url("globex", &format!("/oauth2/authorize?{query}")))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        carried.status(),
        303,
        "acme's session was accepted on globex"
    );
    assert!(
        location(&carried).starts_with("/signin"),
        "{}",
        location(&carried)
    );
    let consent = acme
        .get(app.ws_url("acme", &format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&consent, "csrf").unwrap();
    let allow = app
        .api()
        .post(app.ws_url("globex", "/oauth2/authorize"))
        .header("cookie", cookie)
        .header("origin", app.ws_url("globex", "").trim_end_matches('/'))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", query.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(allow.status(), 200);
    assert!(
        allow
            .headers()
            .get("location")
            .is_none_or(|l| l.to_str().unwrap().starts_with("/signin")),
        "{:?}",
        allow.headers().get("location")
    );
    let globex = ops::workspace(&app.db, "globex").await.unwrap();
    let codes: i64 = app
        .db
        .read_one(sql("SELECT COUNT(*) FROM oauth_codes WHERE workspace_id = $1").bind(globex.id))
        .await
        .unwrap();
    assert_eq!(
        codes, 0,
        "a code was issued for globex from an acme session"
    );
    app.stop().await;
}

/// PostgreSQL makes refresh-token presentations many to a transaction
/// (`store::refresh_batch`). A batch that holds a presentation by the wrong client
/// and an unknown token gives each of those its own `invalid_grant`, issues to
/// every other, and changes nothing for the refused one; a batch of good
/// presentations is committed together, each family keeping one newest token. (On
/// SQLite the same requests give the same answers, one transaction each.)
#[tokio::test]
async fn a_refresh_that_fails_in_a_batch_fails_alone() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let other = register(&app, "Other", false).await;
    let mut refresh_tokens = Vec::new();
    for _ in 0..6 {
        let t = tokens_for(&app, &okta, &email, &password).await;
        refresh_tokens.push(s(&t["refresh_token"]).to_owned());
    }
    let db = app.db.clone();
    let pg = db.backend() == rollcall::store::Backend::Postgres;
    let all_at_once = |asks: Vec<(&CreatedClient, String)>| {
        let forms: Vec<_> = asks
            .into_iter()
            .map(|(client, token)| {
                let mut form = client_form(client);
                form.extend([
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", token),
                ]);
                form
            })
            .collect();
        let db = db.clone();
        let url = app.url("/oauth2/token");
        async move {
            db.pause_batched_writes(true);
            let n = forms.len();
            let tasks: Vec<_> = forms
                .into_iter()
                .map(|form| spawn_post(url.clone(), form))
                .collect();
            crate::support::release_when_queued(&db, n, |db| db.refresh_batches().0).await;
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            answers
        }
    };

    let mut asks: Vec<(&CreatedClient, String)> = vec![
        (&other, refresh_tokens[0].clone()),
        (&okta, "rc_rt_unknown".to_owned()),
    ];
    for t in &refresh_tokens[1..] {
        asks.push((&okta, t.clone()));
    }
    let n = asks.len();
    let answers = all_at_once(asks).await;
    for (status, body) in &answers[..2] {
        assert_eq!(
            (*status, s(&body["error"])),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{body}"
        );
    }
    let mut newer = Vec::new();
    for (status, body) in &answers[2..] {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(bearer(&app, s(&body["access_token"])).await.is_some());
        newer.push(s(&body["refresh_token"]).to_owned());
    }
    if pg {
        let (_, tried, _, split) = db.refresh_batches();
        assert_eq!(tried, n, "all {n} presentations were tried together");
        assert_eq!(split, 1, "the batch with refusals went one by one");
    }

    // The refused presentation changed nothing: its family still refreshes. The
    // others, once more, in one batch.
    let mut asks = vec![(&okta, refresh_tokens[0].clone())];
    asks.extend(newer.iter().map(|t| (&okta, t.clone())));
    let n = asks.len();
    for (status, body) in all_at_once(asks).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(bearer(&app, s(&body["access_token"])).await.is_some());
    }
    if pg {
        let (_, _, written, split) = db.refresh_batches();
        assert_eq!(written, n, "{n} presentations committed together");
        assert_eq!(split, 1);
    }
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    assert_eq!(grants.len(), 6);
    for g in &grants {
        assert_eq!(
            rollcall::store::oauth::newest_refresh_tokens(&app.db, g.id)
                .await
                .unwrap(),
            1,
            "grant {} has one newest refresh token",
            g.id
        );
    }
    app.stop().await;
}

/// A family is rotated at its own presentation's time even when a later
/// presentation shares its batch (`store::refresh_batch`): the grace period for the
/// replaced token runs from its own refresh, not from the batch's latest time.
#[tokio::test]
async fn a_replaced_tokens_grace_runs_from_its_own_refresh() {
    let app = TestApp::spawn_with(|s| s.refresh_grace_secs = Some(1)).await;
    let (email, password) = app.workspace("acme").await;
    let okta = register(&app, "Okta", false).await;
    let one = tokens_for(&app, &okta, &email, &password).await;
    let two = tokens_for(&app, &okta, &email, &password).await;
    let db = app.db.clone();
    let pg = db.backend() == rollcall::store::Backend::Postgres;
    let present = |token: &Value| {
        let mut form = client_form(&okta);
        form.extend([
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", s(&token["refresh_token"]).to_owned()),
        ]);
        spawn_post(app.url("/oauth2/token"), form)
    };
    db.pause_batched_writes(true);
    let first = present(&one);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = present(&two);
    crate::support::release_when_queued(&db, 2, |db| db.refresh_batches().0).await;
    for t in [first, second] {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    if pg {
        assert_eq!(db.refresh_batches().2, 2, "both refreshes in one batch");
    }
    // 1.5 s after its own refresh: past the grace period, so the replay ends the
    // grant.
    let (status, body) = refresh(&app, &okta, s(&one["refresh_token"]), None).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "{body}"
    );
    app.stop().await;
}
