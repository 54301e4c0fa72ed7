//! OAuth clients that workspace admins register (issue 15): bound to their
//! workspace, the client credentials grant (RFC 6749 §4.4), secret rotation with an
//! overlap, deletion ending everything at once.

use crate::support::oauth::{
    REDIRECT, authorize_query, callback_params, cc_token, client_credentials, exchange, introspect,
    post, revoke, scim_status, sign_in_at,
};
use crate::support::ops::{self, GrantType};
use crate::support::{TestApp, enc, form_value, location, sign_in};
use reqwest::StatusCode;
use rollcall::store::{activity, oauth as grants};

/// A server with workspace `acme` (SCIM on); returns its admin's (email, password).
async fn acme(app: &TestApp) -> (String, String) {
    let admin = app.workspace("acme").await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    admin
}

#[tokio::test]
async fn client_credentials_by_basic_or_form_give_an_access_token_only() {
    let app = TestApp::spawn().await;
    acme(&app).await;
    let script = ops::script_client(&app.db, "acme", "Nightly sync").await;
    let secret = script.client_secret.as_deref().unwrap();

    let meta: serde_json::Value = app
        .api()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("client_credentials")),
        "{meta}"
    );

    for basic in [true, false] {
        let (status, headers, body) =
            client_credentials(&app, &script.client_id, secret, basic, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "scim:read scim:write");
        assert_eq!(body["expires_in"], 3600);
        assert!(body.get("refresh_token").is_none(), "{body}");
        let access = body["access_token"].as_str().unwrap();
        assert!(access.starts_with("rc_at_"));
        assert_eq!(scim_status(&app, access).await, 200);
    }
    // Narrowed to what was asked.
    let (status, _, body) =
        client_credentials(&app, &script.client_id, secret, true, Some("scim:read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "scim:read");
    let read_only = body["access_token"].as_str().unwrap().to_owned();
    let write = app
        .api()
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&read_only)
        .json(&crate::support::scim::okta_create("x@acme.test", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);

    // A wrong secret: invalid_client, asking for Basic when Basic was used.
    let (status, headers, body) =
        client_credentials(&app, &script.client_id, "rc_cs_wrong", true, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(headers.contains_key("www-authenticate"));
    let (status, headers, body) =
        client_credentials(&app, &script.client_id, "rc_cs_wrong", false, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(!headers.contains_key("www-authenticate"));
    // An unknown scope: invalid_scope.
    let (status, _, body) =
        client_credentials(&app, &script.client_id, secret, true, Some("openid")).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Introspection and revocation by the client itself.
    let info = introspect(&app, &script, &read_only).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], script.client_id.as_str());
    assert_eq!(info["workspace"], "acme");
    assert_eq!(revoke(&app, &script, &read_only).await, 200);
    assert_eq!(scim_status(&app, &read_only).await, 401);
    assert_eq!(introspect(&app, &script, &read_only).await["active"], false);

    // The activity log and the Authorized apps page.
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let log = activity::recent(&app.db, ws.id, None, false, 100)
        .await
        .unwrap();
    let issued = log
        .iter()
        .filter(|a| a.operation == "client credentials token")
        .count();
    assert_eq!(issued, 3, "one entry per token");
    assert!(log.iter().any(|a| a.operation == "register client"));
    app.stop().await;
}

/// The first tokens of a new client, asked for all at once: every one is issued,
/// all into one grant (opened once), and every one works.
#[tokio::test]
async fn concurrent_first_tokens_share_one_grant() {
    let app = TestApp::spawn().await;
    acme(&app).await;
    let script = ops::script_client(&app.db, "acme", "Nightly sync").await;
    let secret = script.client_secret.clone().unwrap();
    let asks: Vec<_> = (0..16)
        .map(|_| {
            let (app, id, secret) = (&app, script.client_id.clone(), secret.clone());
            async move { client_credentials(app, &id, &secret, true, None).await }
        })
        .collect();
    let answers = futures_util::future::join_all(asks).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            scim_status(&app, body["access_token"].as_str().unwrap()).await,
            200
        );
    }
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let listed = grants::list_grants(&app.db, ws.id).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].client_id, script.client_id);
    app.stop().await;
}

#[tokio::test]
async fn the_grant_is_for_confidential_workspace_clients_allowed_it() {
    let app = TestApp::spawn().await;
    acme(&app).await;
    let okta = crate::support::oauth::register(&app, "Okta", false).await;
    let entra = ops::register_client(&app.db, "acme", "Entra", &[REDIRECT.to_owned()], &[])
        .await
        .unwrap();
    for c in [&okta, &entra] {
        let (status, _, body) = client_credentials(
            &app,
            &c.client_id,
            c.client_secret.as_deref().unwrap(),
            true,
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unauthorized_client");
    }
    // A client allowed only client credentials has no authorization code grant.
    let script = ops::script_client(&app.db, "acme", "Script").await;
    let r = app
        .api()
        .get(app.url(&format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}",
            enc(&script.client_id),
            enc(REDIRECT)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an error page, no redirect");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_works_until_the_overlap_ends_then_invalid_client() {
    let app = TestApp::spawn_with(|s| s.client_secret_overlap_secs = Some(3)).await;
    acme(&app).await;
    let script = ops::script_client(&app.db, "acme", "Script").await;
    let old = script.client_secret.clone().unwrap();
    let before = cc_token(&app, &script).await;
    let rotated = rollcall::app::admin::rotate_client_secret(
        &app.db,
        ops::ClientScope::Any,
        &script.client_id,
        std::time::Duration::from_secs(3),
        "test",
    )
    .await
    .unwrap();
    let new = rotated.client_secret;
    assert_ne!(new, old);
    // Both work during the overlap; so do tokens the old secret obtained.
    let (status, _, body) = client_credentials(&app, &script.client_id, &old, true, None).await;
    assert_eq!(status, 200, "old secret during the overlap: {body}");
    let during = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = client_credentials(&app, &script.client_id, &new, false, None).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    for t in [&before, &during, &fresh] {
        assert_eq!(scim_status(&app, t).await, 200);
    }

    let ends = rotated.previous_secret_expires_at;
    let wait = (ends - rollcall::store::now()).whole_milliseconds().max(0) as u64 + 200;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let (status, headers, body) =
        client_credentials(&app, &script.client_id, &old, true, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
    // The old secret's tokens ended with it; the new secret's did not.
    assert_eq!(scim_status(&app, &before).await, 401);
    assert_eq!(scim_status(&app, &during).await, 401);
    assert_eq!(scim_status(&app, &fresh).await, 200);
    let (status, _, _) = client_credentials(&app, &script.client_id, &new, true, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_client_ends_its_tokens_at_once() {
    let app = TestApp::spawn().await;
    let (email, password) = acme(&app).await;
    let script = ops::script_client(&app.db, "acme", "Script").await;
    let cc = cc_token(&app, &script).await;
    // A workspace client with the code grant, authorized through the pages.
    let entra = ops::register_client(
        &app.db,
        "acme",
        "Entra",
        &[REDIRECT.to_owned()],
        &[GrantType::AuthorizationCode, GrantType::ClientCredentials],
    )
    .await
    .unwrap();
    let browser = app.browser();
    let r = browser
        .get(app.url(&format!(
            "/oauth2/authorize?{}",
            authorize_query(&entra.client_id, "")
        )))
        .send()
        .await
        .unwrap();
    // No workspace question: straight to its workspace, which asks for sign-in.
    assert_eq!(r.status(), 303);
    let on_acme = location(&r);
    assert!(
        on_acme.starts_with(&app.ws_url("acme", "/oauth2/authorize?")),
        "{on_acme}"
    );
    let r = browser.get(&on_acme).send().await.unwrap();
    let back = sign_in_at(&app, &browser, &location(&r), &email, &password).await;
    let consent = browser
        .get(app.ws_url("acme", &back))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let p = crate::support::oauth::answer(&app, &browser, &consent, "allow").await;
    let (status, tokens) = exchange(&app, &entra, &p["code"], None).await;
    assert_eq!(status, 200, "{tokens}");
    let code_access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let entra_cc = cc_token(&app, &entra).await;
    for t in [&cc, &code_access, &entra_cc] {
        assert_eq!(scim_status(&app, t).await, 200);
    }

    ops::delete_client(&app.db, &entra.client_id).await.unwrap();
    ops::delete_client(&app.db, &script.client_id)
        .await
        .unwrap();
    for t in [&cc, &code_access, &entra_cc] {
        assert_eq!(scim_status(&app, t).await, 401, "a deleted client's token");
    }
    let (status, _, body) = post(
        &app,
        "/oauth2/token",
        Some((&entra.client_id, entra.client_secret.as_deref().unwrap())),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(
        ops::delete_client(&app.db, &entra.client_id)
            .await
            .map_err(|e| e.to_string()),
        Err(format!("no OAuth client '{}' here", entra.client_id))
    );
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    assert!(
        grants::list_grants(&app.db, ws.id)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_workspace_client_never_reaches_another_workspace() {
    let app = TestApp::spawn().await;
    let (email, password) = acme(&app).await;
    let (g_email, g_password) = app.workspace("globex").await;
    let entra = ops::register_client(&app.db, "acme", "Entra", &[REDIRECT.to_owned()], &[])
        .await
        .unwrap();
    let query = authorize_query(&entra.client_id, "");

    // On globex's host: an error page at once, signed in there or not.
    let anonymous = app.browser();
    let signed_in = sign_in(&app, "globex", &g_email, &g_password).await;
    for browser in [&anonymous, &signed_in] {
        let r = browser
            .get(app.ws_url("globex", &format!("/oauth2/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        let page = r.text().await.unwrap();
        assert!(page.contains("belongs to another workspace"), "{page}");
    }
    // Allow posted to globex's host with its own session and CSRF token: refused.
    let csrf = crate::support::csrf_of(&signed_in, &app.ws_url("globex", "/members")).await;
    let r = signed_in
        .post(app.ws_url("globex", "/oauth2/authorize"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", query.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // The app host's workspace question answered with globex: refused, no redirect.
    let r = anonymous
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", "globex"), ("request", query.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());

    // Its own workspace works, and the code's tokens act for acme.
    let browser = app.browser();
    let r = browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    let r = browser.get(location(&r)).send().await.unwrap();
    let back = sign_in_at(&app, &browser, &location(&r), &email, &password).await;
    let consent = browser
        .get(app.ws_url("acme", &back))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(consent.contains("Entra"), "{consent}");
    let r = browser
        .post(app.ws_url("acme", "/oauth2/authorize"))
        .form(&[
            ("csrf", form_value(&consent, "csrf").unwrap().as_str()),
            ("request", form_value(&consent, "request").unwrap().as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    let p = callback_params(&location(&r));
    let (status, tokens) = exchange(&app, &entra, &p["code"], None).await;
    assert_eq!(status, 200, "{tokens}");
    let info = introspect(&app, &entra, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["workspace"], "acme");
    app.stop().await;
}

/// `rollcall serve` on `db_url`, as a child process, once `/healthz` answers.
async fn serve(db_url: &str) -> (crate::oauth::Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let server = crate::oauth::Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--base-url",
                &base,
            ])
            .env("ROLLCALL_DATABASE_URL", db_url)
            .env("ROLLCALL_SECRET_KEY", crate::support::TEST_SERVER_KEY)
            .env("ROLLCALL_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start rollcall serve"),
    );
    let probe = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = probe
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status() == 200
        {
            return (server, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("rollcall serve did not come up");
}

/// The CLI registers, lists, rotates and deletes workspace clients while a server
/// runs on the same database; authlib gets tokens by client credentials.
#[tokio::test]
async fn authlib_uses_client_credentials_and_the_cli_manages_clients() {
    let Some(python) = crate::oauth::authlib_python() else {
        eprintln!("skipped: no Python with authlib (scripts/test creates target/pyenv)");
        return;
    };
    let db_url = crate::support::fresh_database_url().await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .output()
            .expect("run rollcall");
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (success, stdout, stderr) = cli(args);
        assert!(success, "{args:?}: {stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap_or(serde_json::Value::Null)
    };
    ok(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "admin@acme.test",
    ]);
    ok(&[
        "workspace",
        "create",
        "globex",
        "--name",
        "Globex",
        "--admin-email",
        "admin@globex.test",
    ]);
    ok(&["workspace", "scim", "acme", "on"]);
    let script = ok(&[
        "client",
        "create",
        "--workspace",
        "acme",
        "--name",
        "Nightly sync",
        "--grant",
        "client_credentials",
    ]);
    let id = script["client_id"].as_str().unwrap().to_owned();
    let secret = script["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rc_cs_"));
    // Refused: client credentials for a global or a public client; an unknown grant.
    for bad in [
        vec![
            "client",
            "create",
            "--name",
            "G",
            "--grant",
            "client_credentials",
        ],
        vec![
            "client",
            "create",
            "--workspace",
            "acme",
            "--name",
            "P",
            "--public",
            "--grant",
            "client_credentials",
        ],
        vec![
            "client",
            "create",
            "--workspace",
            "acme",
            "--name",
            "N",
            "--grant",
            "password",
        ],
        vec![
            "client",
            "create",
            "--workspace",
            "acme",
            "--name",
            "Code without URI",
        ],
    ] {
        let (success, _, stderr) = cli(&bad);
        assert!(!success, "{bad:?} was accepted");
        assert!(!stderr.is_empty());
    }
    ok(&[
        "client",
        "create",
        "--name",
        "Okta",
        "--redirect-uri",
        REDIRECT,
    ]);
    let listed = ok(&["client", "list", "--workspace", "acme"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["client_id"], id.as_str());
    assert_eq!(listed[0]["workspace"], "acme");
    assert_eq!(
        listed[0]["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert!(
        !listed.to_string().contains(&secret),
        "a list never shows secrets"
    );
    assert_eq!(ok(&["client", "list"]).as_array().unwrap().len(), 2);
    assert_eq!(
        ok(&["client", "list", "--workspace", "globex"]),
        serde_json::json!([])
    );

    let (_server, base) = serve(&db_url).await;
    let out = std::process::Command::new(&python)
        .args([
            "tests/oauth_client_credentials_authlib.py",
            "--base",
            &base,
            "--client-id",
            &id,
            "--client-secret",
            &secret,
            "--workspace",
            "acme",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "authlib client credentials failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI rotates while the server runs: both secrets work (default overlap).
    let http = reqwest::Client::new();
    let token_with = |secret: String| {
        let (http, url, id) = (http.clone(), format!("{base}/oauth2/token"), id.clone());
        async move {
            let r = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let rotated = ok(&["client", "rotate-secret", &id]);
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, secret);
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    let (status, old_token) = token_with(secret.clone()).await;
    assert_eq!(
        status, 200,
        "the old secret during the overlap: {old_token}"
    );
    let (status, new_token) = token_with(new.clone()).await;
    assert_eq!(status, 200, "{new_token}");
    let scim = |token: &serde_json::Value| {
        let (http, url) = (http.clone(), format!("{base}/scim/v2/Users"));
        let token = token["access_token"].as_str().unwrap().to_owned();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(scim(&old_token).await, 200);

    // The CLI deletes it: the server refuses its tokens and secrets at once.
    let deleted = ok(&["client", "delete", &id]);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(scim(&old_token).await, 401);
    assert_eq!(scim(&new_token).await, 401);
    assert_eq!(token_with(new).await.0, 401);
    let (success, _, stderr) = cli(&["client", "delete", &id]);
    assert!(!success && stderr.contains("no OAuth client"), "{stderr}");
    assert_eq!(
        ok(&["client", "list", "--workspace", "acme"]),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn client_credentials_count_against_the_token_endpoint_limits() {
    let app = TestApp::spawn_with(|s| s.token_rate_per_client = Some(2)).await;
    acme(&app).await;
    let script = ops::script_client(&app.db, "acme", "Script").await;
    let secret = script.client_secret.as_deref().unwrap();
    for _ in 0..2 {
        let (status, _, body) =
            client_credentials(&app, &script.client_id, secret, true, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) =
        client_credentials(&app, &script.client_id, secret, false, None).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    app.stop().await;
}
