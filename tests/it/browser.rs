//! The admin pages in a real headless Chromium (Debian's chromium + chromedriver),
//! driven through WebDriver. Every page is screenshotted to target/screenshots/.
//!
//! `scripts/test` sets ROLLCALL_BROWSER_TESTS=1 (and installs Chromium), which makes
//! these tests mandatory; elsewhere they skip when chromedriver is not installed.

use crate::support::TestApp;
use crate::support::scim::okta_create;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Browser {
    client: Client,
    driver: Child,
    _profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group: Chromium and its helpers go too.
        // (Never through kill(1): its option parsing read `-KILL -1234` as a kill of
        // every process, which once ended a whole CI run.)
        let group = self.driver.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; the guard keeps it off init and off our
        // own group.
        if group > 1 && group != unsafe { libc::getpgrp() } {
            unsafe { libc::killpg(group, libc::SIGKILL) };
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// None when browsers are not available and not required.
    async fn start() -> Option<Browser> {
        let required = std::env::var("ROLLCALL_BROWSER_TESTS").is_ok_and(|v| v == "1");
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !std::path::Path::new(&driver_bin).exists() {
            assert!(
                !required,
                "ROLLCALL_BROWSER_TESTS=1 but {driver_bin} is missing"
            );
            eprintln!("skipping: no chromedriver (scripts/test installs it)");
            return None;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile =
            std::env::temp_dir().join(format!("rollcall-chrome-{}", uuid::Uuid::new_v4().simple()));
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display())
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_err = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("tls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver,
                        _profile: profile,
                    });
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start: {last_err:?}");
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Click something that submits a form or follows a link, and wait until the
    /// next page has replaced this one.
    async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"))
            .click()
            .await
            .unwrap();
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                // Stale: the new document is loading; wait for its body.
                for _ in 0..200 {
                    if self.client.find(Locator::Css("body")).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clicking {css} did not load a new page");
    }

    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn url(&self) -> url::Url {
        self.client.current_url().await.unwrap()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, app: &TestApp, sub: &str, email: &str, password: &str) {
        self.goto(&app.ws_url(sub, "/signin")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/signin'] button[type=submit]")
            .await;
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// The client's back channel: a code for tokens (client_secret_basic).
async fn exchange_code(
    app: &TestApp,
    client: &crate::support::ops::CreatedClient,
    code: &str,
    redirect: &str,
) -> Value {
    app.api()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.client_id, client.client_secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn scim_status(app: &TestApp, token: &str) -> u16 {
    app.api()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn okta_admin_authenticates_with_rollcall() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let redirect = "http://localhost:9/okta/callback";
    let okta = crate::support::ops::create_client(&app.db, "Okta", &[redirect.to_owned()], false)
        .await
        .unwrap();

    // What Okta's "Authenticate with Rollcall" button opens.
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=okta-state-1",
        app.base,
        okta.client_id,
        rollcall::http::pages::urlencode(redirect)
    );
    b.goto(&authorize).await;
    b.screenshot("01-authorize-workspace").await;
    b.fill("input[name=subdomain]", "acme").await;
    b.click("button[type=submit]").await;
    assert_eq!(
        b.url().await.host_str(),
        Some("acme.localhost"),
        "on to the workspace host"
    );
    b.screenshot("02-sign-in").await;
    b.fill("#email", &email).await;
    b.fill("#password", &password).await;
    b.click("form[action='/signin'] button[type=submit]").await;

    let consent = b.text().await;
    assert!(
        consent.contains("Allow Okta to access acme Inc?"),
        "{consent}"
    );
    b.screenshot("03-consent").await;
    b.click("button[value=allow]").await;

    // The browser is sent back to Okta with a code (nothing listens there).
    let back = b.url().await;
    let params: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(back.path(), "/okta/callback");
    assert_eq!(params["state"], "okta-state-1");
    assert_eq!(params["iss"], app.base);
    let code = &params["code"];

    // Okta's back channel: the token, then a SCIM call.
    let tokens = exchange_code(&app, &okta, code, redirect).await;
    let access = tokens["access_token"].as_str().expect("access token");
    assert_eq!(scim_status(&app, access).await, 200);
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn admin_switches_scim_and_manages_tokens() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    b.sign_in(&app, "acme", &email, &password).await;
    b.screenshot("04-members").await;

    b.goto(&app.ws_url("acme", "/settings/sso")).await;
    assert!(b.text().await.contains("SCIM provisioning is off"));
    b.click("form[action='/settings/scim'] button[value=on]")
        .await;
    let page = b.text().await;
    assert!(page.contains("SCIM provisioning is on"), "{page}");
    assert_eq!(b.value("#scim-url").await, app.url("/scim/v2"));
    b.screenshot("05-settings-sso-and-scim").await;

    // Generate a token: shown once, works at once.
    b.goto(&app.ws_url("acme", "/settings/api")).await;
    b.fill("#token-name", "Okta provisioning").await;
    b.click("form[action='/settings/api/tokens'] button[type=submit]")
        .await;
    let token = b.value("#new-token").await;
    assert!(token.starts_with("rc_pat_"), "{token}");
    b.screenshot("06-public-api-token").await;
    assert_eq!(scim_status(&app, &token).await, 200);

    // Switch SCIM off: 403; back on: 200.
    b.goto(&app.ws_url("acme", "/settings/sso")).await;
    b.click("form[action='/settings/scim'] button[value=off]")
        .await;
    assert_eq!(scim_status(&app, &token).await, 403);
    b.click("form[action='/settings/scim'] button[value=on]")
        .await;
    assert_eq!(scim_status(&app, &token).await, 200);

    // Revoke it: 401 after.
    b.goto(&app.ws_url("acme", "/settings/api")).await;
    assert!(b.text().await.contains("Okta provisioning"));
    b.click("button[aria-label='Revoke token Okta provisioning']")
        .await;
    assert!(b.text().await.contains("Token revoked"));
    assert_eq!(scim_status(&app, &token).await, 401);
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn scim_members_are_read_only_and_local_members_editable() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let created: Value = app
        .api()
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&token)
        .json(&okta_create("ada@acme.test", "00u1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    b.sign_in(&app, "acme", &email, &password).await;
    let list = b.text().await;
    assert!(
        list.contains("ada@acme.test") && list.contains("SCIM"),
        "{list}"
    );
    b.goto(&app.ws_url("acme", "/members?q=ADA")).await;
    let rows = b
        .client
        .find(Locator::Css("tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        rows.contains("ada@acme.test") && !rows.contains(&email),
        "{rows}"
    );

    b.goto(&app.ws_url("acme", &format!("/members/{id}"))).await;
    let page = b.text().await;
    assert!(page.contains("managed by your identity provider"), "{page}");
    let disabled = b
        .client
        .find(Locator::Css("fieldset"))
        .await
        .unwrap()
        .attr("disabled")
        .await
        .unwrap();
    assert!(disabled.is_some(), "the form is disabled");
    assert!(
        b.client
            .find(Locator::Css("fieldset button[type=submit]"))
            .await
            .is_err(),
        "no save button"
    );
    b.screenshot("07-member-scim-read-only").await;

    // A member Rollcall manages itself can be edited by an admin.
    let viewer = crate::support::ops::local_member(
        &rollcall::domain::Email::parse("bob@acme.test").unwrap(),
        rollcall::domain::Role::Viewer,
    );
    let bob = rollcall::store::members::create(&app.db, 1, &viewer, None)
        .await
        .unwrap();
    b.goto(&app.ws_url("acme", &format!("/members/{}", bob.id)))
        .await;
    b.fill("#given_name", "Bob").await;
    b.client
        .find(Locator::Css("#role option[value=maker]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap(); // no navigation
    b.click("fieldset button[type=submit]").await;
    assert!(b.text().await.contains("Saved bob@acme.test"));
    let saved = rollcall::store::members::by_id(&app.db, 1, bob.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (saved.role.as_str(), saved.given_name.as_deref()),
        ("maker", Some("Bob"))
    );
    assert!(!saved.scim_managed);
    b.screenshot("08-member-edit").await;

    // A direct POST to edit the SCIM member is refused too.
    b.goto(&app.ws_url("acme", "/activity")).await;
    assert!(b.text().await.contains("ada@acme.test"));
    b.screenshot("09-provisioning-activity").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn admin_revokes_an_authorized_app() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let redirect = "http://localhost:9/cb";
    let client = crate::support::ops::create_client(&app.db, "Okta", &[redirect.to_owned()], false)
        .await
        .unwrap();

    b.sign_in(&app, "acme", &email, &password).await;
    b.goto(&format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=s",
        app.ws_url("acme", ""),
        client.client_id,
        rollcall::http::pages::urlencode(redirect)
    ))
    .await;
    b.click("button[value=allow]").await;
    let code = b
        .url()
        .await
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = exchange_code(&app, &client, &code, redirect).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(scim_status(&app, &access).await, 200);

    b.goto(&app.ws_url("acme", "/settings/apps")).await;
    let page = b.text().await;
    assert!(page.contains("Okta") && page.contains(&email), "{page}");
    b.screenshot("10-authorized-apps").await;
    b.click("button[aria-label='Revoke Okta']").await;
    assert!(b.text().await.contains("Access revoked"));
    assert_eq!(scim_status(&app, &access).await, 401);
    b.close().await;
    app.stop().await;
}

/// `grant_type=client_credentials` by HTTP Basic: the status, and the token if any.
async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> (u16, Option<String>) {
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["access_token"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn admin_registers_rotates_and_deletes_an_oauth_client() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    b.sign_in(&app, "acme", &email, &password).await;
    b.goto(&app.ws_url("acme", "/members")).await;
    b.click("a[href='/settings/clients']").await;
    assert!(b.text().await.contains("No clients yet."));

    // Register a client-credentials client (no authorization code, so no URI).
    b.fill("#client-name", "Nightly sync").await;
    for css in [
        "input[name=grant_authorization_code]",
        "input[name=grant_client_credentials]",
        "input[name=scope_write]",
    ] {
        b.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    b.click("form[action='/settings/clients'] button[type=submit]")
        .await;
    let page = b.text().await;
    assert!(page.contains("Client “Nightly sync” registered."), "{page}");
    assert!(page.contains("shown only once"), "{page}");
    let id = b.value("#new-client-id").await;
    let secret = b.value("#new-secret").await;
    assert!(id.starts_with("rc_client_") && secret.starts_with("rc_cs_"));
    // Copy: the button says so.
    b.client
        .find(Locator::Css("button[data-copy=new-secret]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut copied = false;
    for _ in 0..40 {
        let label = b
            .client
            .find(Locator::Css("button[data-copy=new-secret]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if label == "Copied" {
            copied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(copied, "the Copy button did not confirm");
    b.screenshot("15-oauth-client-registered").await;
    let (status, first) = client_credentials(&app, &id, &secret).await;
    assert_eq!(status, 200);
    let first = first.unwrap();
    assert_eq!(scim_status(&app, &first).await, 200);
    // Listed, without its secret, and under Authorized apps as the client's own.
    b.goto(&app.ws_url("acme", "/settings/clients")).await;
    let page = b.text().await;
    assert!(
        page.contains(&id) && page.contains("client credentials"),
        "{page}"
    );
    assert!(!page.contains(&secret));
    b.goto(&app.ws_url("acme", "/settings/apps")).await;
    let page = b.text().await;
    assert!(
        page.contains("Nightly sync") && page.contains("client credentials, no user"),
        "{page}"
    );

    // Rotate: a new secret, shown once; both work during the overlap.
    b.goto(&app.ws_url("acme", "/settings/clients")).await;
    b.click("button[aria-label='Rotate secret of Nightly sync']")
        .await;
    let page = b.text().await;
    assert!(page.contains("New secret generated."), "{page}");
    assert!(page.contains("The old one keeps working until"), "{page}");
    let rotated = b.value("#new-secret").await;
    assert!(rotated.starts_with("rc_cs_") && rotated != secret);
    b.screenshot("16-oauth-client-rotated").await;
    assert_eq!(client_credentials(&app, &id, &secret).await.0, 200);
    assert_eq!(client_credentials(&app, &id, &rotated).await.0, 200);

    // Delete: its tokens stop at once, and the client is gone.
    b.goto(&app.ws_url("acme", "/settings/clients")).await;
    b.click("button[aria-label='Delete Nightly sync']").await;
    let page = b.text().await;
    assert!(page.contains("Client deleted."), "{page}");
    assert!(page.contains("No clients yet."), "{page}");
    b.screenshot("17-oauth-client-deleted").await;
    assert_eq!(scim_status(&app, &first).await, 401);
    assert_eq!(client_credentials(&app, &id, &rotated).await.0, 401);
    b.goto(&app.ws_url("acme", "/activity")).await;
    let page = b.text().await;
    for op in [
        "register client",
        "rotate client secret",
        "delete client",
        "client credentials token",
    ] {
        assert!(page.contains(op), "{op}: {page}");
    }
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn non_admins_get_a_403_page_and_errors_share_the_look() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let hash = rollcall::secrets::hash_password("viewer-password-1".into()).await;
    let viewer = crate::support::ops::local_member(
        &rollcall::domain::Email::parse("vic@acme.test").unwrap(),
        rollcall::domain::Role::Viewer,
    );
    rollcall::store::members::create(&app.db, 1, &viewer, Some(&hash))
        .await
        .unwrap();
    b.sign_in(&app, "acme", "vic@acme.test", "viewer-password-1")
        .await;
    let page = b.text().await;
    assert!(
        page.contains("Members of acme Inc"),
        "{} {page}",
        b.url().await
    );
    b.goto(&app.ws_url("acme", "/settings/api")).await;
    let page = b.text().await;
    assert!(page.contains("Only admins"), "{page}");
    b.screenshot("11-forbidden").await;
    b.goto(&app.ws_url("nope", "/signin")).await;
    assert!(b.text().await.contains("There is no workspace called"));
    b.screenshot("12-not-found").await;
    b.close().await;
    app.stop().await;
}

/// Fill oidc-provider's development login and consent pages until it sends the
/// browser back to `back_to_host`.
async fn through_oidc_provider(b: &Browser, login: &str, back_to_host: &str) {
    for _ in 0..6 {
        if b.url().await.host_str() == Some(back_to_host) {
            return;
        }
        if b.client
            .find(Locator::Css("input[name=login]"))
            .await
            .is_ok()
        {
            b.fill("input[name=login]", login).await;
            b.fill("input[name=password]", "any").await;
        }
        b.click("button[type=submit]").await;
    }
    panic!(
        "oidc-provider did not send the browser back: {}",
        b.url().await
    );
}

#[tokio::test]
async fn admin_configures_oidc_and_okta_authenticates_through_it() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let config = &app.running.as_ref().unwrap().state.config;
    let redirect_uri = rollcall::sso::idp_values(config, "acme").oidc_redirect_uri;
    let idp = crate::sso::NodeIdp::oidc("rollcall-browser", "idp-secret-1", &redirect_uri).await;

    // The admin configures OIDC on the settings page, with the values it shows.
    b.sign_in(&app, "acme", &email, &password).await;
    b.goto(&app.ws_url("acme", "/settings/sso")).await;
    assert_eq!(b.value("#oidc-redirect").await, redirect_uri);
    b.fill("#issuer", &idp.issuer()).await;
    b.fill("#client_id", "rollcall-browser").await;
    b.fill("#client_secret", "idp-secret-1").await;
    b.click("form[action='/settings/sso/oidc'] button[type=submit]")
        .await;
    let page = b.text().await;
    assert!(page.contains("uses OpenID Connect"), "{page}");
    b.screenshot("13-settings-oidc").await;

    // Test sign-in goes through the IdP and back to the settings.
    b.click("#test-sign-in").await;
    through_oidc_provider(&b, &email, "acme.localhost").await;
    assert_eq!(b.url().await.path(), "/settings/sso");

    // Okta's "Authenticate with Rollcall", signing in at the real IdP, in a fresh browser.
    b.close().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let okta_redirect = "http://localhost:9/okta/callback";
    let okta =
        crate::support::ops::create_client(&app.db, "Okta", &[okta_redirect.to_owned()], false)
            .await
            .unwrap();
    b.goto(&format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=via-sso",
        app.base,
        okta.client_id,
        rollcall::http::pages::urlencode(okta_redirect)
    ))
    .await;
    b.fill("input[name=subdomain]", "acme").await;
    b.click("button[type=submit]").await;
    let signin = b.text().await;
    assert!(signin.contains("identity provider"), "{signin}");
    b.screenshot("14-sign-in-with-sso").await;
    b.click("a[href^='/sso/start']").await;
    through_oidc_provider(&b, &email, "acme.localhost").await;
    let consent = b.text().await;
    assert!(
        consent.contains("Allow Okta to access acme Inc?"),
        "{consent}"
    );
    b.click("button[value=allow]").await;
    let back = b.url().await;
    let params: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "via-sso");
    let tokens = exchange_code(&app, &okta, &params["code"], okta_redirect).await;
    let access = tokens["access_token"].as_str().expect("access token");
    assert_eq!(scim_status(&app, access).await, 200);
    b.close().await;
    drop(idp);
    app.stop().await;
}

/// Whether the page has an element matching `css`.
async fn has(b: &Browser, css: &str) -> bool {
    b.client.find(Locator::Css(css)).await.is_ok()
}

#[tokio::test]
async fn admin_switches_teams_with_scim_and_manages_a_team() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let bob = crate::support::ops::local_member(
        &rollcall::domain::Email::parse("bob@acme.test").unwrap(),
        rollcall::domain::Role::Viewer,
    );
    let bob = rollcall::store::members::create(&app.db, 1, &bob, None)
        .await
        .unwrap();
    let switch = || async {
        crate::support::ops::workspace(&app.db, "acme")
            .await
            .unwrap()
            .scim_teams
    };
    b.sign_in(&app, "acme", &email, &password).await;

    // The second switch on Settings > SSO and SCIM: off by default, on, off.
    b.goto(&app.ws_url("acme", "/settings/sso")).await;
    let page = b.text().await;
    assert!(page.contains("Managing teams with SCIM is off"), "{page}");
    assert!(page.contains("answers 403"), "{page}");
    b.click("#scim-teams button[value=on]").await;
    let page = b.text().await;
    assert!(page.contains("Managing teams with SCIM is on"), "{page}");
    assert!(page.contains("read-only"), "{page}");
    assert!(switch().await);
    b.screenshot("15-settings-teams-with-scim").await;
    b.click("#scim-teams button[value=off]").await;
    assert!(b.text().await.contains("Managing teams with SCIM is off"));
    assert!(!switch().await);

    // Teams, from the navigation: create one.
    b.click("nav a[href='/teams']").await;
    assert!(b.text().await.contains("No teams yet"));
    b.fill("#team-name", "Design").await;
    b.click("form[action='/teams'][method=post] button[type=submit]")
        .await;
    let page = b.text().await;
    assert!(page.contains("Team “Design” created"), "{page}");
    let team_url = b.url().await;

    // Rename it.
    b.fill("#new-name", "Product design").await;
    b.click("form[action$='/rename'] button[type=submit]").await;
    let page = b.text().await;
    assert!(page.contains("Renamed to “Product design”"), "{page}");

    // Add a member by email; the count follows.
    b.fill("#member-email", "bob@acme.test").await;
    b.click("form[action$='/members'] button[type=submit]")
        .await;
    let page = b.text().await;
    assert!(page.contains("Added bob@acme.test"), "{page}");
    assert_eq!(
        b.client
            .find(Locator::Css("#member-count"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1 member"
    );
    b.screenshot("16-team").await;
    b.goto(&app.ws_url("acme", "/teams")).await;
    let row = b
        .client
        .find(Locator::Css("tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("Product design") && row.ends_with('1'),
        "{row}"
    );
    b.screenshot("17-teams").await;

    // The member's page lists the team, and leads back to it.
    b.goto(&app.ws_url("acme", &format!("/members/{}", bob.id)))
        .await;
    b.click("ul.teams a").await;
    assert_eq!(b.url().await, team_url);

    // Remove the member, then delete the team (after ticking the confirmation).
    b.click("button[aria-label='Remove bob@acme.test']").await;
    let page = b.text().await;
    assert!(page.contains("it has 0 member(s)"), "{page}");
    assert!(page.contains("No members"), "{page}");
    b.client
        .find(Locator::Css("#confirm-delete"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap(); // no navigation
    b.click("form[action$='/delete'] button[type=submit]").await;
    let page = b.text().await;
    assert!(page.contains("Team “Product design” deleted"), "{page}");
    assert!(page.contains("No teams yet"), "{page}");
    assert_eq!(rollcall::store::teams::count(&app.db, 1).await.unwrap(), 0);

    // Every step is in the activity log, with the team.
    b.goto(&app.ws_url("acme", "/activity")).await;
    let log = b.text().await;
    for op in [
        "team create",
        "team rename",
        "team add",
        "team remove",
        "team delete",
    ] {
        assert!(log.contains(op), "{op}: {log}");
    }
    b.screenshot("18-activity-teams").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn teams_from_the_identity_provider_are_read_only() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    crate::support::ops::set_scim_teams(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let scim = |path: &str, body: Value| {
        app.api()
            .post(app.url(&format!("/scim/v2{path}")))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let ada: Value = scim("/Users", okta_create("ada@acme.test", "00u1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group = scim(
        "/Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Okta Engineering",
            "members": [{"value": ada["id"]}]
        }),
    )
    .await
    .unwrap();
    assert_eq!(group.status(), 201);
    let group: Value = group.json().await.unwrap();

    b.sign_in(&app, "acme", &email, &password).await;
    b.goto(&app.ws_url("acme", "/teams")).await;
    let row = b
        .client
        .find(Locator::Css("tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("Okta Engineering") && row.contains("managed by your identity provider"),
        "{row}"
    );
    b.click("tbody a").await;
    assert_eq!(
        b.url().await.path(),
        format!("/teams/{}", group["id"].as_str().unwrap())
    );
    let page = b.text().await;
    assert!(page.contains("managed by your identity provider"), "{page}");
    assert!(page.contains("ada@acme.test"), "{page}");
    for control in [
        "#new-name",
        "#member-email",
        "#confirm-delete",
        "button[aria-label='Remove ada@acme.test']",
        "form[method=post][action^='/teams/']",
    ] {
        assert!(!has(&b, control).await, "{control} shown on a managed team");
    }
    b.screenshot("19-team-managed-by-idp").await;
    // The admin can still create teams of their own.
    b.goto(&app.ws_url("acme", "/teams")).await;
    assert!(has(&b, "#team-name").await);
    b.close().await;
    app.stop().await;
}
