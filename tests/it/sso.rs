//! Sign-in through the workspace's identity provider, end to end: a real OpenID
//! provider (npm `oidc-provider`) and a real SAML IdP (npm `saml-idp`) run as child
//! processes on 127.0.0.1; faults a real IdP will not produce come from an
//! in-process OIDC issuer with keys generated here, and from SAML responses edited
//! here.

use crate::support::ops;
use crate::support::{TestApp, form_value, html_unescape, location};
use axum::extract::State as AxState;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Client as Http, Response};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const OAUTH_REDIRECT: &str = "http://localhost:9999/callback";

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap_or_else(|_| url::Url::parse(&format!("http://x{url}")).unwrap())
        .query_pairs()
        .into_owned()
        .collect()
}

fn sso_rt(app: &TestApp) -> &rollcall::sso::Sso {
    &app.running.as_ref().unwrap().state.sso
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// A Node IdP child process, killed when dropped.
pub(crate) struct NodeIdp {
    child: Child,
    port: u16,
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn node(args: &[&str]) -> Child {
    Command::new("node")
        .args(args)
        .current_dir(idp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node (install Node.js and run `npm ci` in tests/idp; scripts/test does)")
}

impl NodeIdp {
    /// `oidc-provider` with one confidential client.
    pub(crate) async fn oidc(client_id: &str, secret: &str, redirect_uri: &str) -> NodeIdp {
        let mut child = node(&["oidc.mjs", "0", client_id, secret, redirect_uri]);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("oidc-provider did not start in time")
            .unwrap()
            .expect("oidc-provider exited");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeIdp { child, port }
    }

    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `saml-idp` signing with `cert`/`key`, answering `acs` for `audience`.
    async fn saml(acs: &str, audience: &str) -> (NodeIdp, String) {
        let dir = std::env::temp_dir().join(format!("rollcall-saml-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self_signed("saml-idp.test");
        let cert_path = dir.join("idp-cert.pem");
        let key_path = dir.join("idp-key.pem");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let config = idp_dir().join("node_modules/saml-idp/config.js");
        let http = Http::new();
        // The port is free when picked but not held: another test may take it
        // before saml-idp listens (EADDRINUSE, and the child exits). Then pick again.
        for _attempt in 0..3 {
            let port = free_port();
            let port_s = port.to_string();
            let mut child = node(&[
                "node_modules/saml-idp/bin/run.js",
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--cert",
                cert_path.to_str().unwrap(),
                "--key",
                key_path.to_str().unwrap(),
                "--issuer",
                "urn:rollcall:test-idp",
                "--acsUrl",
                acs,
                "--audience",
                audience,
                "--configFile",
                config.to_str().unwrap(),
            ]);
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            let mut idp = NodeIdp { child, port };
            for _ in 0..150 {
                if let Ok(r) = http.get(format!("{}/metadata", idp.issuer())).send().await
                    && r.status() == 200
                {
                    return (idp, cert);
                }
                if let Ok(Some(_)) = idp.child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("saml-idp did not start");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed certificate and its RSA key, PEM.
fn self_signed(cn: &str) -> (String, String) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        String::from_utf8(b.build().to_pem().unwrap()).unwrap(),
        String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    )
}

/// Resolve `loc` against `base`.
fn absolute(base: &str, loc: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// Through oidc-provider's login and consent forms (its development interactions)
/// as `login`, until it redirects back to Rollcall; returns that URL.
async fn through_oidc_provider(browser: &Http, start: &str, login: &str, back_to: &str) -> String {
    let mut url = start.to_owned();
    for _ in 0..20 {
        if url.starts_with(back_to) {
            return url;
        }
        let r = browser.get(&url).send().await.unwrap();
        if r.status().is_redirection() {
            url = absolute(&url, &location(&r));
            continue;
        }
        assert_eq!(r.status(), 200, "{url}");
        let html = r.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no form at {url}: {html}"));
        let action = absolute(&url, &html_unescape(action));
        let prompt = form_value(&html, "prompt").expect("prompt field");
        let mut form = vec![("prompt", prompt.clone())];
        if prompt == "login" {
            form.push(("login", login.to_owned()));
            form.push(("password", "any".to_owned()));
        }
        let r = browser.post(&action).form(&form).send().await.unwrap();
        assert!(r.status().is_redirection(), "{} at {action}", r.status());
        url = absolute(&action, &location(&r));
    }
    panic!("oidc-provider never sent the browser back");
}

/// The sign-in page's SSO link, for `next`.
async fn sso_link(app: &TestApp, browser: &Http, next: &str) -> (String, String) {
    let html = browser
        .get(app.ws_url(
            "acme",
            &format!("/signin?next={}", rollcall::http::pages::urlencode(next)),
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let href = html
        .split("href=\"/sso/start")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|q| html_unescape(&format!("/sso/start{q}")))
        .unwrap_or_else(|| panic!("no SSO link: {html}"));
    (href, html)
}

async fn oidc_app() -> (TestApp, NodeIdp, String) {
    let app = TestApp::spawn().await;
    let (admin, _) = app.workspace("acme").await;
    let redirect = rollcall::sso::idp_values(&app.running.as_ref().unwrap().state.config, "acme")
        .oidc_redirect_uri;
    assert_eq!(redirect, app.ws_url("acme", "/sso/oidc/callback"));
    let idp = NodeIdp::oidc("rollcall-test", "s3cret-from-the-idp", &redirect).await;
    ops::set_oidc(
        &app.db,
        sso_rt(&app),
        "acme",
        &idp.issuer(),
        "rollcall-test",
        Some("s3cret-from-the-idp"),
        true,
    )
    .await
    .expect("set OIDC");
    (app, idp, admin)
}

#[tokio::test]
async fn oidc_provider_signs_a_member_in() {
    let (app, _idp, admin) = oidc_app().await;
    let browser = app.browser();
    let (start, html) = sso_link(&app, &browser, "/members").await;
    assert!(
        !html.contains("name=\"password\""),
        "passwords are off with SSO: {html}"
    );
    let r = browser
        .get(app.ws_url("acme", &start))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_idp = location(&r);
    let q = query_of(&to_idp);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        q.contains_key("nonce") && q.contains_key("state"),
        "{to_idp}"
    );
    let back = through_oidc_provider(
        &browser,
        &to_idp,
        &admin.to_uppercase(),
        &app.ws_url("acme", "/sso/oidc/callback"),
    )
    .await;
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/members");
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(&admin));

    // The same callback again: its state was used up.
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("already used"));
    app.stop().await;
}

#[tokio::test]
async fn authenticate_with_rollcall_passes_through_the_oidc_provider() {
    let (app, _idp, admin) = oidc_app().await;
    ops::set_scim(&app.db, "acme", true).await.unwrap();
    let client = ops::create_client(&app.db, "Okta", &[OAUTH_REDIRECT.to_owned()], false)
        .await
        .unwrap();
    let browser = app.browser();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz&scope=scim%3Aread",
        client.client_id,
        rollcall::http::pages::urlencode(OAUTH_REDIRECT)
    );
    // App host: which workspace?
    let html = browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request = form_value(&html, "request").expect("request field");
    let r = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", "acme"), ("request", &request)])
        .send()
        .await
        .unwrap();
    let on_workspace = location(&r);
    // Workspace host, no session: to sign-in, which offers SSO with the way back.
    let r = browser.get(&on_workspace).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let signin = location(&r);
    let next = query_of(&signin)["next"].clone();
    assert!(next.starts_with("/oauth2/authorize?"), "{next}");
    let (start, _) = sso_link(&app, &browser, &next).await;
    let r = browser
        .get(app.ws_url("acme", &start))
        .send()
        .await
        .unwrap();
    let back = through_oidc_provider(
        &browser,
        &location(&r),
        &admin,
        &app.ws_url("acme", "/sso/oidc/callback"),
    )
    .await;
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), next, "back to the authorization request");
    // Consent, allow, code, token, SCIM.
    let r = browser.get(app.ws_url("acme", &next)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let consent = r.text().await.unwrap();
    assert!(consent.contains("Allow Okta"), "{consent}");
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
    assert_eq!(r.status(), 303);
    let p = query_of(&location(&r));
    assert_eq!(p["state"], "xyz");
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.client_id, client.client_secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", p["code"].as_str()),
            ("redirect_uri", OAUTH_REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let r = app
        .api()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let users: Value = r.json().await.unwrap();
    assert_eq!(users["totalResults"], 1);
    app.stop().await;
}

// ---- An in-process OIDC issuer for the faults a real one does not make ----------

struct Keys {
    a: (String, Value),
    b: (String, Value),
}

/// Two RSA keys (PKCS#1 PEM, JWK), generated once per test run.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let make = |kid: &str| {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
            let pem = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .unwrap()
                .to_string();
            let jwk = json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            (pem, jwk)
        };
        Keys {
            a: make("key-a"),
            b: make("key-b"),
        }
    })
}

/// What the fake issuer's next ID token says and how it is signed.
#[derive(Clone)]
struct Plan {
    /// The `kid` header.
    kid: String,
    /// Sign with key B instead of A.
    sign_with_b: bool,
    claims: Value,
}

struct FakeState {
    issuer: String,
    /// Whether key B is published in the JWKS (key rotation).
    publish_b: bool,
    plan: Option<Plan>,
    token_forms: Vec<HashMap<String, String>>,
    jwks_fetches: usize,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<FakeState>>);

async fn fake_discovery(AxState(f): AxState<Fake>) -> Json<Value> {
    let iss = f.0.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn fake_jwks(AxState(f): AxState<Fake>) -> Json<Value> {
    let mut s = f.0.lock().unwrap();
    s.jwks_fetches += 1;
    let mut keys_out = vec![keys().a.1.clone()];
    if s.publish_b {
        keys_out.push(keys().b.1.clone());
    }
    Json(json!({ "keys": keys_out }))
}

async fn fake_token(
    AxState(f): AxState<Fake>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let plan = {
        let mut s = f.0.lock().unwrap();
        s.token_forms.push(form);
        s.plan.clone().expect("a plan for the token")
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(plan.kid);
    let pem = if plan.sign_with_b {
        &keys().b.0
    } else {
        &keys().a.0
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let jwt = jsonwebtoken::encode(&header, &plan.claims, &key).unwrap();
    Json(json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": jwt
    }))
}

struct FakeIdp {
    fake: Fake,
    issuer: String,
}

async fn fake_idp() -> FakeIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let fake = Fake(Arc::new(Mutex::new(FakeState {
        issuer: issuer.clone(),
        publish_b: false,
        plan: None,
        token_forms: vec![],
        jwks_fetches: 0,
    })));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(fake_discovery))
        .route("/jwks", get(fake_jwks))
        .route("/token", post(fake_token))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeIdp { fake, issuer }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A workspace signing in through the fake issuer; members: the admin, an
/// inactive member.
async fn fake_app() -> (TestApp, FakeIdp, String) {
    let app = TestApp::spawn().await;
    let (admin, _) = app.workspace("acme").await;
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let email = rollcall::domain::Email::parse("gone@acme.test").unwrap();
    let mut data = ops::local_member(&email, rollcall::domain::Role::Contributor);
    data.active = false;
    rollcall::store::members::create(&app.db, ws.id, &data, None)
        .await
        .unwrap();
    let idp = fake_idp().await;
    ops::set_oidc(
        &app.db,
        sso_rt(&app),
        "acme",
        &idp.issuer,
        "rc",
        Some("sec"),
        true,
    )
    .await
    .unwrap();
    (app, idp, admin)
}

/// Start sign-in (to `next`); returns the browser and the authorization request's
/// parameters.
async fn start_fake(app: &TestApp, next: &str) -> (Http, HashMap<String, String>) {
    let browser = app.browser();
    let r = browser
        .get(app.ws_url(
            "acme",
            &format!("/sso/start?next={}", rollcall::http::pages::urlencode(next)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    (browser, query_of(&location(&r)))
}

/// A good ID token for the IdP account of `email` (one account per address, as
/// at a real IdP; its subject is what Rollcall links a member to).
fn good_claims(idp: &FakeIdp, q: &HashMap<String, String>, email: &str) -> Value {
    json!({
        "iss": idp.issuer, "sub": format!("sub-{}", email.to_lowercase()), "aud": "rc",
        "exp": now() + 300, "iat": now(), "nonce": q["nonce"],
        "email": email, "email_verified": true,
    })
}

/// Come back from the fake IdP with `plan`; returns the status and the body or Location.
async fn callback(
    app: &TestApp,
    idp: &FakeIdp,
    browser: &Http,
    q: &HashMap<String, String>,
    plan: Plan,
) -> (u16, String) {
    idp.fake.0.lock().unwrap().plan = Some(plan);
    let r = browser
        .get(app.ws_url(
            "acme",
            &format!(
                "/sso/oidc/callback?code=c0de&state={}",
                rollcall::http::pages::urlencode(&q["state"])
            ),
        ))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = if r.status().is_redirection() {
        location(&r)
    } else {
        r.text().await.unwrap()
    };
    (status, text)
}

fn plan(claims: Value) -> Plan {
    Plan {
        kid: "key-a".into(),
        sign_with_b: false,
        claims,
    }
}

#[tokio::test]
async fn oidc_id_token_faults_are_refused() {
    let (app, idp, admin) = fake_app().await;

    // The good case first: PKCE verifier sent and matching the challenge.
    let (browser, q) = start_fake(&app, "/members").await;
    let (status, body) = callback(
        &app,
        &idp,
        &browser,
        &q,
        plan(good_claims(&idp, &q, &admin)),
    )
    .await;
    assert_eq!((status, body.as_str()), (303, "/members"));
    let form = idp
        .fake
        .0
        .lock()
        .unwrap()
        .token_forms
        .last()
        .cloned()
        .unwrap();
    let verifier = &form["code_verifier"];
    assert_eq!(
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())),
        q["code_challenge"]
    );
    assert_eq!(
        form["redirect_uri"],
        app.ws_url("acme", "/sso/oidc/callback")
    );

    type Edit = Box<dyn Fn(&mut Plan)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "bad signature",
            Box::new(|p| p.sign_with_b = true),
            "Signature verification failed",
        ),
        (
            "unknown key",
            Box::new(|p| {
                p.kid = "key-b".into();
                p.sign_with_b = true;
            }),
            "Signature verification failed",
        ),
        (
            "wrong audience",
            Box::new(|p| p.claims["aud"] = json!("someone-else")),
            "Invalid audiences",
        ),
        (
            "several audiences, no azp",
            Box::new(|p| p.claims["aud"] = json!(["rc", "other"])),
            "authorized party",
        ),
        (
            "azp of another client",
            Box::new(|p| {
                p.claims["aud"] = json!(["rc", "other"]);
                p.claims["azp"] = json!("other");
            }),
            "another client",
        ),
        (
            "wrong issuer",
            Box::new(|p| p.claims["iss"] = json!("http://127.0.0.1:1")),
            "Invalid issuer",
        ),
        (
            "expired",
            Box::new(|p| p.claims["exp"] = json!(now() - 120)),
            "expired at",
        ),
        (
            "issued in the future",
            Box::new(|p| p.claims["iat"] = json!(now() + 600)),
            "issued in the future",
        ),
        (
            "wrong nonce",
            Box::new(|p| p.claims["nonce"] = json!("not-the-nonce")),
            "nonce mismatch",
        ),
        (
            "unverified email",
            Box::new(|p| p.claims["email_verified"] = json!(false)),
            "verified email",
        ),
        // (Other IdP accounts: the admin's own is linked to the admin by now.)
        (
            "unknown member",
            Box::new(|p| {
                p.claims["email"] = json!("stranger@acme.test");
                p.claims["sub"] = json!("sub-stranger");
            }),
            "Ask your workspace admin",
        ),
        (
            "inactive member",
            Box::new(|p| {
                p.claims["email"] = json!("gone@acme.test");
                p.claims["sub"] = json!("sub-gone");
            }),
            "Ask your workspace admin",
        ),
    ];
    for (name, edit, says) in cases {
        let (browser, q) = start_fake(&app, "/members").await;
        let mut p = plan(good_claims(&idp, &q, &admin));
        edit(&mut p);
        let (status, body) = callback(&app, &idp, &browser, &q, p).await;
        assert!(status == 400 || status == 403, "{name}: {status} {body}");
        assert!(body.contains(says), "{name}: {body}");
        // Not signed in.
        let r = browser
            .get(app.ws_url("acme", "/members"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{name}");
    }

    // A state that is not this browser's.
    let (browser, q) = start_fake(&app, "/members").await;
    let mut wrong = q.clone();
    wrong.insert("state".into(), "forged".into());
    let (status, body) = callback(
        &app,
        &idp,
        &browser,
        &wrong,
        plan(good_claims(&idp, &q, &admin)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn rotated_keys_are_fetched_again() {
    let (app, idp, admin) = fake_app().await;
    let (browser, q) = start_fake(&app, "/members").await;
    let fetches = idp.fake.0.lock().unwrap().jwks_fetches;
    // The IdP rotates to key B after Rollcall cached its keys.
    idp.fake.0.lock().unwrap().publish_b = true;
    let mut p = plan(good_claims(&idp, &q, &admin));
    p.kid = "key-b".into();
    p.sign_with_b = true;
    let (status, body) = callback(&app, &idp, &browser, &q, p).await;
    assert_eq!((status, body.as_str()), (303, "/members"));
    assert_eq!(idp.fake.0.lock().unwrap().jwks_fetches, fetches + 1);
    app.stop().await;
}

#[tokio::test]
async fn after_sso_only_same_host_paths_are_followed() {
    let (app, idp, admin) = fake_app().await;
    for evil in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "http:evil",
    ] {
        let (browser, q) = start_fake(&app, evil).await;
        let (status, body) = callback(
            &app,
            &idp,
            &browser,
            &q,
            plan(good_claims(&idp, &q, &admin)),
        )
        .await;
        assert_eq!((status, body.as_str()), (303, "/members"), "{evil}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_members_are_created_as_contributors_only_when_allowed() {
    let (app, idp, _) = fake_app().await;
    let (browser, q) = start_fake(&app, "/members").await;
    let (status, _) = callback(
        &app,
        &idp,
        &browser,
        &q,
        plan(good_claims(&idp, &q, "new@acme.test")),
    )
    .await;
    assert_eq!(status, 403);
    ops::set_auto_create(&app.db, "acme", true).await.unwrap();
    let (browser, q) = start_fake(&app, "/members").await;
    let (status, _) = callback(
        &app,
        &idp,
        &browser,
        &q,
        plan(good_claims(&idp, &q, "New@Acme.test")),
    )
    .await;
    assert_eq!(status, 303);
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let m = rollcall::store::members::by_email(&app.db, ws.id, "new@acme.test")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(m.role.as_str(), "contributor");
    // Inactive members stay out even with auto-create on.
    let (browser, q) = start_fake(&app, "/members").await;
    let (status, _) = callback(
        &app,
        &idp,
        &browser,
        &q,
        plan(good_claims(&idp, &q, "gone@acme.test")),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn with_sso_on_only_the_break_glass_admin_keeps_a_password() {
    let app = TestApp::spawn().await;
    let (admin, password) = app.workspace("acme").await;
    let idp = fake_idp().await;
    ops::set_oidc(
        &app.db,
        sso_rt(&app),
        "acme",
        &idp.issuer,
        "rc",
        Some("sec"),
        true,
    )
    .await
    .unwrap();
    // Default: no password form, and a password POST is refused (the CSRF token
    // comes from a page shown while a break-glass admin was named).
    ops::set_password_policy(&app.db, "acme", false, Some(&admin))
        .await
        .unwrap();
    let browser = app.browser();
    let html = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    ops::set_password_policy(&app.db, "acme", false, None)
        .await
        .unwrap();
    let html = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("name=\"password\""), "{html}");
    assert!(html.contains("/sso/start"), "{html}");
    let r = browser
        .post(app.ws_url("acme", "/signin"))
        .form(&[
            ("email", admin.as_str()),
            ("password", &password),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A break-glass admin may; nobody else.
    assert!(
        ops::set_password_policy(&app.db, "acme", false, Some("nobody@acme.test"))
            .await
            .is_err()
    );
    ops::set_password_policy(&app.db, "acme", false, Some(&admin))
        .await
        .unwrap();
    crate::support::sign_in(&app, "acme", &admin, &password).await;
    ops::set_password_policy(&app.db, "acme", false, None)
        .await
        .unwrap();
    let html = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("name=\"password\""));
    // SSO off again: passwords as before.
    ops::sso_off(&app.db, "acme").await.unwrap();
    crate::support::sign_in(&app, "acme", &admin, &password).await;
    app.stop().await;
}

#[tokio::test]
async fn the_client_secret_is_stored_sealed() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let idp = fake_idp().await;
    ops::set_oidc(
        &app.db,
        sso_rt(&app),
        "acme",
        &idp.issuer,
        "rc",
        Some("very-secret-value"),
        true,
    )
    .await
    .unwrap();
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let row = rollcall::store::sso::get(&app.db, ws.id).await.unwrap();
    let sealed = row.oidc_client_secret.unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("very-secret-value"));
    let view = ops::sso_settings(&app.db, &app.running.as_ref().unwrap().state.config, "acme")
        .await
        .unwrap();
    assert!(view.oidc_client_secret_set);
    assert_eq!(view.protocol.as_deref(), Some("oidc"));
    assert_eq!(
        view.idp_values.oidc_redirect_uri,
        app.ws_url("acme", "/sso/oidc/callback")
    );
    assert!(
        !serde_json::to_string(&view)
            .unwrap()
            .contains("very-secret")
    );
    // An issuer that is not https (nor local) is refused.
    assert!(
        ops::set_oidc(
            &app.db,
            sso_rt(&app),
            "acme",
            "http://idp.example.com",
            "rc",
            None,
            false
        )
        .await
        .is_err()
    );
    app.stop().await;
}

// ---- SAML -------------------------------------------------------------------------

async fn saml_app() -> (TestApp, NodeIdp, String, String) {
    let app = TestApp::spawn().await;
    let (admin, _) = app.workspace("acme").await;
    let v = rollcall::sso::idp_values(&app.running.as_ref().unwrap().state.config, "acme");
    let (idp, cert) = NodeIdp::saml(&v.saml_acs_url, &v.saml_sp_entity_id).await;
    ops::set_saml(
        &app.db,
        &sso_rt(&app).fetch,
        "acme",
        ops::SamlSource::MetadataUrl(format!("{}/metadata", idp.issuer())),
    )
    .await
    .expect("set SAML from the IdP's metadata");
    (app, idp, admin, cert)
}

/// Start SP-initiated sign-in and have saml-idp answer as `email`; returns the
/// browser and the base64 SAMLResponse meant for our ACS.
async fn saml_response_for(
    app: &TestApp,
    idp: &NodeIdp,
    email: &str,
    next: &str,
) -> (Http, String) {
    saml_response_as(app, idp, &IdpUser::email(email), next).await
}

/// Who saml-idp says signed in: the NameID (and its format) and the email attribute.
struct IdpUser {
    name_id: String,
    format: &'static str,
    email: String,
}

const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

impl IdpUser {
    fn email(email: &str) -> IdpUser {
        IdpUser {
            name_id: email.to_owned(),
            format: NAMEID_EMAIL,
            email: email.to_owned(),
        }
    }

    fn persistent(name_id: &str, email: &str) -> IdpUser {
        IdpUser {
            name_id: name_id.to_owned(),
            format: NAMEID_PERSISTENT,
            email: email.to_owned(),
        }
    }
}

/// Like `saml_response_for`, for any IdP user.
async fn saml_response_as(
    app: &TestApp,
    idp: &NodeIdp,
    user: &IdpUser,
    next: &str,
) -> (Http, String) {
    let browser = app.browser();
    let r = browser
        .get(app.ws_url(
            "acme",
            &format!("/sso/start?next={}", rollcall::http::pages::urlencode(next)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_idp = location(&r);
    assert!(
        to_idp.starts_with(&format!("{}/saml/sso?SAMLRequest=", idp.issuer())),
        "{to_idp}"
    );
    let html = browser
        .get(&to_idp)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let authn = html
        .split("name=\"_authnRequest\" type='hidden' value='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .map(html_unescape)
        .unwrap_or_else(|| panic!("no _authnRequest in the IdP's form: {html}"));
    (
        browser.clone(),
        idp_sign_in_as(
            &browser,
            idp,
            Some(&authn),
            user,
            &app.ws_url("acme", "/sso/saml/acs"),
        )
        .await,
    )
}

/// Submit saml-idp's sign-in form; returns the SAMLResponse it posts to `acs`.
async fn idp_sign_in(
    browser: &Http,
    idp: &NodeIdp,
    authn: Option<&str>,
    email: &str,
    acs: &str,
) -> String {
    idp_sign_in_as(browser, idp, authn, &IdpUser::email(email), acs).await
}

async fn idp_sign_in_as(
    browser: &Http,
    idp: &NodeIdp,
    authn: Option<&str>,
    user: &IdpUser,
    acs: &str,
) -> String {
    let mut form = vec![
        ("userName", user.name_id.clone()),
        ("nameIdFormat", user.format.to_owned()),
        ("email", user.email.clone()),
        ("firstName", "Ann".to_owned()),
        ("lastName", "Example".to_owned()),
    ];
    if let Some(a) = authn {
        form.push(("_authnRequest", a.to_owned()));
    }
    let r = browser
        .post(format!("{}/signin", idp.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{acs}\"")), "{html}");
    form_value(&html, "SAMLResponse").expect("SAMLResponse")
}

async fn post_acs(app: &TestApp, browser: &Http, saml_response: &str) -> (u16, String) {
    let r = browser
        .post(app.ws_url("acme", "/sso/saml/acs"))
        .form(&[("SAMLResponse", saml_response), ("RelayState", "")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = if r.status().is_redirection() {
        location(&r)
    } else {
        r.text().await.unwrap()
    };
    (status, text)
}

fn xml_of(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn b64(xml: &str) -> String {
    STANDARD.encode(xml)
}

#[tokio::test]
async fn saml_idp_signs_a_member_in_and_replays_are_refused() {
    let (app, idp, admin, _) = saml_app().await;
    let (browser, response) =
        saml_response_for(&app, &idp, &admin.to_uppercase(), "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!((status, body.as_str()), (303, "/members"));
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The same response again (from any browser) is refused.
    let (status, body) = post_acs(&app, &app.browser(), &response).await;
    assert_eq!(status, 400, "{body}");

    // Our SP metadata names the ACS and entity id.
    let md = app
        .browser()
        .get(app.ws_url("acme", "/sso/saml/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains(&app.ws_url("acme", "/sso/saml/acs")), "{md}");
    app.stop().await;
}

#[tokio::test]
async fn saml_forgeries_are_refused() {
    let (app, idp, admin, _) = saml_app().await;
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let other = rollcall::domain::Email::parse("other@acme.test").unwrap();
    rollcall::store::members::create(
        &app.db,
        ws.id,
        &ops::local_member(&other, rollcall::domain::Role::Admin),
        None,
    )
    .await
    .unwrap();

    // Tampered: the signed email changed to another member's.
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let xml = xml_of(&response).replace(&admin, "other@acme.test");
    let (status, body) = post_acs(&app, &browser, &b64(&xml)).await;
    assert_eq!(status, 400, "tampered: {body}");
    assert!(body.contains("must be signed"), "tampered: {body}");

    // Unsigned: every Signature element removed.
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let mut xml = xml_of(&response);
    while let Some(start) = xml.find("<ds:Signature").or_else(|| xml.find("<Signature")) {
        let end_tag = if xml[start..].starts_with("<ds:") {
            "</ds:Signature>"
        } else {
            "</Signature>"
        };
        let end = start + xml[start..].find(end_tag).unwrap() + end_tag.len();
        xml.replace_range(start..end, "");
    }
    assert!(!xml.contains("SignatureValue"));
    let (status, body) = post_acs(&app, &browser, &b64(&xml)).await;
    assert_eq!(status, 400, "unsigned: {body}");
    assert!(body.contains("must be signed"), "unsigned: {body}");

    // Unsolicited (IdP-initiated): no InResponseTo.
    let browser = app.browser();
    let response = idp_sign_in(
        &browser,
        &idp,
        None,
        &admin,
        &app.ws_url("acme", "/sso/saml/acs"),
    )
    .await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 400, "unsolicited: {body}");
    assert!(body.contains("unsolicited"), "{body}");

    // Unknown member.
    let (browser, response) = saml_response_for(&app, &idp, "stranger@acme.test", "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Ask your workspace admin"), "{body}");

    // Open redirect after sign-in.
    let (browser, response) = saml_response_for(&app, &idp, &admin, "//evil.example/").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!((status, body.as_str()), (303, "/members"));

    // Configured with another certificate: the IdP's real signature no longer counts.
    let (wrong_cert, _) = self_signed("not-the-idp");
    let row = rollcall::store::sso::get(&app.db, ws.id).await.unwrap();
    ops::set_saml(
        &app.db,
        &sso_rt(&app).fetch,
        "acme",
        ops::SamlSource::Values {
            entity_id: row.saml_idp_entity_id.clone().unwrap(),
            sso_url: row.saml_sso_url.clone().unwrap(),
            certificate: wrong_cert,
        },
    )
    .await
    .unwrap();
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 400, "wrong certificate: {body}");
    assert!(body.contains("must be signed"), "wrong certificate: {body}");
    app.stop().await;
}

#[tokio::test]
async fn saml_for_another_audience_is_refused() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.workspace("acme").await;
    let v = rollcall::sso::idp_values(&app.running.as_ref().unwrap().state.config, "acme");
    let (idp, _) = NodeIdp::saml(&v.saml_acs_url, "https://another-sp.example/").await;
    ops::set_saml(
        &app.db,
        &sso_rt(&app).fetch,
        "acme",
        ops::SamlSource::MetadataUrl(format!("{}/metadata", idp.issuer())),
    )
    .await
    .unwrap();
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Audience"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn used_assertion_ids_are_remembered_across_processes() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let until = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    assert!(
        rollcall::store::sso::use_assertion(&app.db, ws.id, "_a1", until)
            .await
            .unwrap()
    );
    assert!(
        !rollcall::store::sso::use_assertion(&app.db, ws.id, "_a1", until)
            .await
            .unwrap()
    );
    // A second process on the same database sees it too.
    let url = app
        .running
        .as_ref()
        .unwrap()
        .state
        .config
        .database_url
        .clone();
    let second = TestApp::spawn_on(&url, |_| {}).await;
    assert!(
        !rollcall::store::sso::use_assertion(&second.db, ws.id, "_a1", until)
            .await
            .unwrap()
    );
    assert!(
        rollcall::store::sso::use_assertion(&second.db, ws.id, "_a2", until)
            .await
            .unwrap()
    );
    // A request is answered once (across processes), per workspace.
    assert!(
        rollcall::store::sso::saml_request_answered(&app.db, ws.id, "_r1", until)
            .await
            .unwrap()
    );
    assert!(
        !rollcall::store::sso::saml_request_answered(&second.db, ws.id, "_r1", until)
            .await
            .unwrap()
    );
    assert!(
        rollcall::store::sso::saml_request_answered(&second.db, ws.id + 1, "_r1", until)
            .await
            .unwrap()
    );
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn cli_sets_sso_for_automation() {
    let db_url = crate::support::fresh_database_url().await;
    let data_dir = std::env::temp_dir().join(format!("rollcall-cli-{}", uuid::Uuid::new_v4()));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .env("ROLLCALL_DATA_DIR", &data_dir)
            .env("ROLLCALL_BASE_URL", "https://id.example.com")
            .output()
            .expect("run rollcall");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "boss@acme.test",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&[
        "workspace",
        "sso",
        "acme",
        "oidc",
        "--issuer",
        "https://acme.okta.com",
        "--client-id",
        "cid",
        "--client-secret",
        "csecret",
        "--no-check",
    ]);
    assert!(ok, "{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["protocol"], "oidc");
    assert_eq!(view["oidc_client_secret_set"], true);
    assert_eq!(
        view["idp_values"]["oidc_redirect_uri"],
        "https://acme.id.example.com/sso/oidc/callback"
    );
    assert!(!out.contains("csecret"));
    // The key was generated once into the data directory.
    assert!(data_dir.join("secret.key").exists());

    let (ok, out, err) = run(&[
        "workspace",
        "sso",
        "acme",
        "passwords",
        "off",
        "--break-glass",
        "BOSS@acme.test",
    ]);
    assert!(ok, "{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["break_glass_email"], "boss@acme.test");
    let (ok, _, err) = run(&[
        "workspace",
        "sso",
        "acme",
        "passwords",
        "off",
        "--break-glass",
        "nobody@acme.test",
    ]);
    assert!(!ok && err.contains("break-glass"), "{err}");
    let (ok, out, _) = run(&["workspace", "sso", "acme", "auto-create", "on"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["auto_create"],
        true
    );

    let (cert, _) = self_signed("idp.example.com");
    let cert_file = data_dir.join("idp.pem");
    std::fs::write(&cert_file, cert).unwrap();
    let (ok, out, err) = run(&[
        "workspace",
        "sso",
        "acme",
        "saml",
        "--entity-id",
        "http://www.okta.com/exk1",
        "--sso-url",
        "https://acme.okta.com/app/x/sso/saml",
        "--certificate-file",
        cert_file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["protocol"], "saml");
    assert_eq!(
        view["idp_values"]["saml_acs_url"],
        "https://acme.id.example.com/sso/saml/acs"
    );
    let (ok, out, _) = run(&["workspace", "sso", "acme", "off"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["protocol"],
        Value::Null
    );
    let (ok, _, err) = run(&[
        "workspace",
        "sso",
        "acme",
        "oidc",
        "--issuer",
        "http://evil.example",
        "--client-id",
        "c",
        "--client-secret",
        "s",
    ]);
    assert!(!ok && err.contains("issuer"), "{err}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

fn session_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("rollcall_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn sso_sign_in_starts_a_new_session_id() {
    let (app, idp, admin) = fake_app().await;
    let browser = app.browser();
    let r = browser
        .get(app.ws_url("acme", "/signin"))
        .send()
        .await
        .unwrap();
    let before = session_cookie(&r).expect("a session before sign-in");
    let r = browser
        .get(app.ws_url("acme", "/sso/start?next=/members"))
        .send()
        .await
        .unwrap();
    let q = query_of(&location(&r));
    idp.fake.0.lock().unwrap().plan = Some(plan(good_claims(&idp, &q, &admin)));
    let r = browser
        .get(app.ws_url(
            "acme",
            &format!(
                "/sso/oidc/callback?code=c&state={}",
                rollcall::http::pages::urlencode(&q["state"])
            ),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let after = session_cookie(&r).expect("a new session cookie at sign-in");
    assert_ne!(before, after);
    // The old id no longer signs anyone in.
    let r = app
        .api()
        .get(app.ws_url("acme", "/members"))
        .header("cookie", &before)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    app.stop().await;
}

// ---- SAML responses signed here, for the faults saml-idp will not make -----------

struct Forger {
    key_der: Vec<u8>,
    cert: samael::crypto::CertificateDer,
}

impl Forger {
    fn new() -> Forger {
        use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};
        let idp = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048)).unwrap();
        let cert = idp
            .create_certificate(&CertificateParams {
                common_name: "forger.test",
                issuer_name: "forger.test",
                days_until_expiration: 30,
            })
            .unwrap();
        Forger {
            key_der: idp.export_private_key_der().unwrap(),
            cert,
        }
    }

    /// A signed Response to `request_id` for `email`, after `edit`.
    fn response(
        &self,
        app: &TestApp,
        request_id: &str,
        email: &str,
        edit: impl FnOnce(&mut samael::schema::Response),
    ) -> String {
        use samael::crypto::{Crypto, CryptoProvider};
        use samael::traits::ToXml;
        let v = rollcall::sso::idp_values(&app.running.as_ref().unwrap().state.config, "acme");
        let mut r = samael::idp::response_builder::build_response_template(
            &self.cert,
            email,
            &v.saml_sp_entity_id,
            "urn:forger:idp",
            &v.saml_acs_url,
            request_id,
            &[],
        );
        let later = chrono::Utc::now() + chrono::Duration::minutes(5);
        if let Some(a) = r.assertion.as_mut() {
            for c in a
                .subject
                .as_mut()
                .unwrap()
                .subject_confirmations
                .as_mut()
                .unwrap()
            {
                c.subject_confirmation_data
                    .as_mut()
                    .unwrap()
                    .not_on_or_after = Some(later);
            }
            let cond = a.conditions.as_mut().unwrap();
            cond.not_before = Some(chrono::Utc::now() - chrono::Duration::seconds(5));
            cond.not_on_or_after = Some(later);
        }
        edit(&mut r);
        // samael's template digests with SHA-1, which Rollcall refuses; sign as a
        // current IdP does.
        let xml = r.to_string().unwrap().replace(
            "http://www.w3.org/2000/09/xmldsig#sha1",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        );
        STANDARD.encode(Crypto::sign_xml(xml, &self.key_der).unwrap())
    }
}

/// Start SAML sign-in; returns the browser and our AuthnRequest's id.
async fn saml_request_id(app: &TestApp) -> (Http, String) {
    use std::io::Read;
    let browser = app.browser();
    let r = browser
        .get(app.ws_url("acme", "/sso/start?next=/members"))
        .send()
        .await
        .unwrap();
    let q = query_of(&location(&r));
    let deflated = STANDARD.decode(&q["SAMLRequest"]).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    let id = xml
        .split(" ID=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    (browser, id)
}

#[tokio::test]
async fn saml_times_recipients_and_assertion_replays_are_checked() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.workspace("acme").await;
    let forger = Forger::new();
    ops::set_saml(
        &app.db,
        &sso_rt(&app).fetch,
        "acme",
        ops::SamlSource::Values {
            entity_id: "urn:forger:idp".into(),
            sso_url: "http://127.0.0.1:9/sso".into(),
            certificate: STANDARD.encode(forger.cert.der_data()),
        },
    )
    .await
    .unwrap();

    // Signed correctly: in. The assertion id is kept.
    let (browser, id) = saml_request_id(&app).await;
    let mut assertion_id = String::new();
    let ok = forger.response(&app, &id, &admin, |r| {
        assertion_id = r.assertion.as_ref().unwrap().id.clone();
    });
    let (status, body) = post_acs(&app, &browser, &ok).await;
    assert_eq!((status, body.as_str()), (303, "/members"));

    // The same assertion id, validly signed, answering a new request: a replay.
    let (browser, id) = saml_request_id(&app).await;
    let replay = forger.response(&app, &id, &admin, |r| {
        r.assertion.as_mut().unwrap().id = assertion_id.clone();
    });
    let (status, body) = post_acs(&app, &browser, &replay).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");

    type Edit = Box<dyn FnOnce(&mut samael::schema::Response)>;
    let past = chrono::Utc::now() - chrono::Duration::minutes(10);
    let future = chrono::Utc::now() + chrono::Duration::minutes(10);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "expired conditions",
            Box::new(move |r| {
                r.assertion
                    .as_mut()
                    .unwrap()
                    .conditions
                    .as_mut()
                    .unwrap()
                    .not_on_or_after = Some(past)
            }),
            "expired",
        ),
        (
            "not yet valid",
            Box::new(move |r| {
                r.assertion
                    .as_mut()
                    .unwrap()
                    .conditions
                    .as_mut()
                    .unwrap()
                    .not_before = Some(future)
            }),
            "not valid until",
        ),
        (
            "expired subject confirmation",
            Box::new(move |r| {
                let s = r.assertion.as_mut().unwrap().subject.as_mut().unwrap();
                s.subject_confirmations.as_mut().unwrap()[0]
                    .subject_confirmation_data
                    .as_mut()
                    .unwrap()
                    .not_on_or_after = Some(past);
            }),
            "expired",
        ),
        (
            "wrong recipient",
            Box::new(|r| {
                let s = r.assertion.as_mut().unwrap().subject.as_mut().unwrap();
                s.subject_confirmations.as_mut().unwrap()[0]
                    .subject_confirmation_data
                    .as_mut()
                    .unwrap()
                    .recipient = Some("https://evil.example/acs".into());
            }),
            "Recipient",
        ),
        (
            "wrong destination",
            Box::new(|r| r.destination = Some("https://evil.example/acs".into())),
            "destination",
        ),
        (
            "wrong issuer",
            Box::new(|r| {
                r.assertion.as_mut().unwrap().issuer.value = Some("urn:someone:else".into())
            }),
            "Issuer",
        ),
        (
            "InResponseTo another request",
            Box::new(|r| r.in_response_to = Some("_rc-not-ours".into())),
            "",
        ),
        (
            "no audience",
            Box::new(|r| {
                r.assertion
                    .as_mut()
                    .unwrap()
                    .conditions
                    .as_mut()
                    .unwrap()
                    .audience_restrictions = None
            }),
            "Audience",
        ),
    ];
    for (name, edit, says) in cases {
        let (browser, id) = saml_request_id(&app).await;
        let forged = forger.response(&app, &id, &admin, edit);
        let (status, body) = post_acs(&app, &browser, &forged).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(says), "{name}: {body}");
    }
    app.stop().await;
}

// ---- Hardening (issue 12): browser binding, algorithms, wrapping, links ----------

/// Who `browser` is signed in as on acme, if anyone (the page header names them).
async fn signed_in_as(app: &TestApp, browser: &Http) -> Option<String> {
    let r = browser
        .get(app.ws_url("acme", "/members"))
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return None;
    }
    let html = r.text().await.unwrap();
    html.split("class=\"muted me\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(|s| html_unescape(s.trim()))
}

async fn add_member(app: &TestApp, email: &str, role: rollcall::domain::Role) {
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let email = rollcall::domain::Email::parse(email).unwrap();
    rollcall::store::members::create(&app.db, ws.id, &ops::local_member(&email, role), None)
        .await
        .unwrap();
}

/// Change saml-idp's settings as its admin page would.
async fn idp_settings(idp: &NodeIdp, settings: &[(&str, &str)]) {
    let r = Http::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/settings", idp.issuer()))
        .form(settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "saml-idp settings");
}

#[tokio::test]
async fn saml_response_posted_into_another_browser_is_refused() {
    let (app, idp, admin, _) = saml_app().await;
    add_member(
        &app,
        "mallory@acme.test",
        rollcall::domain::Role::Contributor,
    )
    .await;
    // Mallory signs in at the IdP herself and keeps the response instead of
    // letting her browser post it.
    let (mallory, response) = saml_response_for(&app, &idp, "mallory@acme.test", "/members").await;

    // Her page auto-posts it into a victim's browser that started nothing ...
    let victim = app.browser();
    let (status, body) = post_acs(&app, &victim, &response).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not started in this browser"), "{body}");
    assert_eq!(signed_in_as(&app, &victim).await, None);

    // ... or into one with a sign-in of its own pending (as the admin).
    let victim = app.browser();
    let r = victim
        .get(app.ws_url("acme", "/sso/start?next=/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (status, body) = post_acs(&app, &victim, &response).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not started in this browser"), "{body}");
    assert_eq!(signed_in_as(&app, &victim).await, None);

    // In the browser that started it, the same response signs Mallory in, once.
    let (status, body) = post_acs(&app, &mallory, &response).await;
    assert_eq!((status, body.as_str()), (303, "/members"));
    assert_eq!(
        signed_in_as(&app, &mallory).await.as_deref(),
        Some("mallory@acme.test")
    );
    // The admin's own sign-in still works in a browser of their own.
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let (status, _) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 303);
    assert_eq!(signed_in_as(&app, &browser).await, Some(admin));
    app.stop().await;
}

async fn count_rows(app: &TestApp, table: &str) -> i64 {
    app.db
        .read_one(rollcall::store::sql::sql(format!(
            "SELECT count(*) FROM {table}"
        )))
        .await
        .unwrap()
}

#[tokio::test]
async fn saml_start_keeps_the_pending_request_in_the_browser_not_the_database() {
    let (app, _idp, _, _) = saml_app().await;
    let (requests, sessions) = (
        count_rows(&app, "saml_requests").await,
        count_rows(&app, "sessions").await,
    );
    // Anyone can start a sign-in, as often as they like, without a cookie.
    for _ in 0..40 {
        let r = app
            .api()
            .get(app.ws_url("acme", "/sso/start?next=/members"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("rollcall_saml="))
            .expect("the pending request goes to the browser")
            .to_owned();
        for attribute in ["HttpOnly", "Path=/sso/saml", "Max-Age=600"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        // Host-only, and not Secure on an http base URL (it would not be stored).
        assert!(!cookie.contains("Domain"), "{cookie}");
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
    assert_eq!(count_rows(&app, "saml_requests").await, requests);
    assert_eq!(count_rows(&app, "sessions").await, sessions);
    app.stop().await;
}

#[tokio::test]
async fn saml_sha1_signatures_are_refused() {
    let (app, idp, admin, _) = saml_app().await;
    for (signature, digest) in [("rsa-sha1", "sha1"), ("rsa-sha256", "sha1")] {
        idp_settings(
            &idp,
            &[
                ("signatureAlgorithm", signature),
                ("digestAlgorithm", digest),
            ],
        )
        .await;
        let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
        assert!(
            xml_of(&response).contains("http://www.w3.org/2000/09/xmldsig#sha1"),
            "saml-idp signed with SHA-1"
        );
        let (status, body) = post_acs(&app, &browser, &response).await;
        assert_eq!(status, 400, "{signature}/{digest}: {body}");
        assert!(body.contains("SHA-256"), "{signature}/{digest}: {body}");
        assert_eq!(signed_in_as(&app, &browser).await, None);
    }
    // Back to SHA-256: accepted. (saml-idp offers no stronger algorithm.)
    idp_settings(
        &idp,
        &[
            ("signatureAlgorithm", "rsa-sha256"),
            ("digestAlgorithm", "sha256"),
        ],
    )
    .await;
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!((status, body.as_str()), (303, "/members"));
    app.stop().await;
}

/// The `<saml:Assertion ...>...</saml:Assertion>` element of saml-idp's response.
fn assertion_span(xml: &str) -> std::ops::Range<usize> {
    let start = xml.find("<saml:Assertion").expect("an assertion");
    let end_tag = "</saml:Assertion>";
    let end = xml.rfind(end_tag).expect("its end") + end_tag.len();
    start..end
}

/// A copy of `signed` with its signature removed, a new ID, and `from` replaced by `to`.
fn unsigned_copy(signed: &str, from: &str, to: &str) -> String {
    let start = signed.find("<Signature").expect("a signature");
    let end = signed.find("</Signature>").expect("its end") + "</Signature>".len();
    let mut copy = signed.to_owned();
    copy.replace_range(start..end, "");
    let id_at = copy.find(" ID=\"").unwrap() + 5;
    let id_end = id_at + copy[id_at..].find('"').unwrap();
    copy.replace_range(id_at..id_end, "_evil");
    copy.replace(from, to)
}

#[tokio::test]
async fn saml_signature_wrapping_is_refused() {
    let (app, idp, admin, _) = saml_app().await;
    add_member(
        &app,
        "mallory@acme.test",
        rollcall::domain::Role::Contributor,
    )
    .await;
    // Most IdPs sign the assertion only; then the envelope is Mallory's to edit.
    idp_settings(&idp, &[("signResponse", "false")]).await;

    type Wrap = fn(&str, std::ops::Range<usize>, &str, &str) -> String;
    let cases: Vec<(&str, Wrap)> = vec![
        (
            "an unsigned assertion before the signed one",
            |xml, at, signed, evil| {
                let mut out = xml.to_owned();
                out.replace_range(at, &format!("{evil}{signed}"));
                out
            },
        ),
        (
            "an unsigned assertion after the signed one",
            |xml, at, signed, evil| {
                let mut out = xml.to_owned();
                out.replace_range(at, &format!("{signed}{evil}"));
                out
            },
        ),
        (
            "the signed assertion inside the response's Extensions",
            |xml, at, signed, evil| {
                let mut out = xml.to_owned();
                out.replace_range(at, evil);
                let status = out.find("<samlp:Status>").unwrap();
                out.insert_str(
                    status,
                    &format!("<samlp:Extensions>{signed}</samlp:Extensions>"),
                );
                out
            },
        ),
        (
            "the signed assertion inside an unsigned one's Advice",
            |xml, at, signed, evil| {
                let mut out = xml.to_owned();
                let subject = evil.find("<saml:Subject>").unwrap();
                let mut wrapper = evil.to_owned();
                wrapper.insert_str(subject, &format!("<saml:Advice>{signed}</saml:Advice>"));
                out.replace_range(at, &wrapper);
                out
            },
        ),
    ];
    for (name, wrap) in cases {
        let (browser, response) =
            saml_response_for(&app, &idp, "mallory@acme.test", "/members").await;
        let xml = xml_of(&response);
        let at = assertion_span(&xml);
        let signed = xml[at.clone()].to_owned();
        let evil = unsigned_copy(&signed, "mallory@acme.test", &admin);
        let forged = wrap(&xml, at, &signed, &evil);
        let (status, body) = post_acs(&app, &browser, &b64(&forged)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains("exactly one assertion"), "{name}: {body}");
        assert_eq!(signed_in_as(&app, &browser).await, None, "{name}");
    }
    // Unwrapped, the same IdP signs Mallory in: the refusals were the wrapping.
    let (browser, response) = saml_response_for(&app, &idp, "mallory@acme.test", "/members").await;
    let (status, _) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 303);
    app.stop().await;
}

#[tokio::test]
async fn saml_comments_inside_the_subject_are_refused() {
    let (app, idp, admin, _) = saml_app().await;
    idp_settings(&idp, &[("signResponse", "false")]).await;
    // Mallory's IdP account is admin@acme.test.evil.test; the signature (exclusive
    // canonicalisation without comments) does not cover comments she adds.
    let mallory = format!("{admin}.evil.test");
    for (name, insert) in [
        ("a comment", "<!---->"),
        ("a CDATA section", "<![CDATA[]]>"),
    ] {
        let (browser, response) = saml_response_for(&app, &idp, &mallory, "/members").await;
        let xml = xml_of(&response).replace(&mallory, &format!("{admin}{insert}.evil.test"));
        let (status, body) = post_acs(&app, &browser, &b64(&xml)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains("comments"), "{name}: {body}");
        assert_eq!(signed_in_as(&app, &browser).await, None, "{name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn saml_accepts_each_configured_signing_certificate() {
    let (app, idp, admin, idp_cert) = saml_app().await;
    let ws = ops::workspace(&app.db, "acme").await.unwrap();
    let row = rollcall::store::sso::get(&app.db, ws.id).await.unwrap();
    let (next_cert, _) = self_signed("the-idp-next-key");
    // During a key rollover the admin enters both certificates, in either order.
    for certificates in [
        format!("{next_cert}{idp_cert}"),
        format!("{idp_cert}\n{next_cert}"),
    ] {
        ops::set_saml(
            &app.db,
            &sso_rt(&app).fetch,
            "acme",
            ops::SamlSource::Values {
                entity_id: row.saml_idp_entity_id.clone().unwrap(),
                sso_url: row.saml_sso_url.clone().unwrap(),
                certificate: certificates,
            },
        )
        .await
        .unwrap();
        let stored = rollcall::store::sso::get(&app.db, ws.id).await.unwrap();
        assert_eq!(
            stored
                .saml_certificate
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2
        );
        let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
        let (status, body) = post_acs(&app, &browser, &response).await;
        assert_eq!((status, body.as_str()), (303, "/members"));
    }
    // Only the new one: the IdP's old key no longer counts.
    ops::set_saml(
        &app.db,
        &sso_rt(&app).fetch,
        "acme",
        ops::SamlSource::Values {
            entity_id: row.saml_idp_entity_id.clone().unwrap(),
            sso_url: row.saml_sso_url.clone().unwrap(),
            certificate: next_cert,
        },
    )
    .await
    .unwrap();
    let (browser, response) = saml_response_for(&app, &idp, &admin, "/members").await;
    let (status, body) = post_acs(&app, &browser, &response).await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn oidc_sign_in_follows_the_linked_subject_not_the_email() {
    let (app, idp, admin) = fake_app().await;
    add_member(&app, "other@acme.test", rollcall::domain::Role::Contributor).await;
    let sign_in = |sub: &'static str, email: String| {
        let (app, idp) = (&app, &idp);
        async move {
            let (browser, q) = start_fake(app, "/members").await;
            let mut claims = good_claims(idp, &q, &email);
            claims["sub"] = json!(sub);
            let (status, body) = callback(app, idp, &browser, &q, plan(claims)).await;
            (status, body, signed_in_as(app, &browser).await)
        }
    };
    // First sign-in: matched by verified email, then linked to subject user-1.
    let (status, _, who) = sign_in("user-1", admin.clone()).await;
    assert_eq!((status, who.as_deref()), (303, Some(admin.as_str())));
    // The IdP account's email changes to another member's: still the admin.
    let (status, _, who) = sign_in("user-1", "other@acme.test".into()).await;
    assert_eq!((status, who.as_deref()), (303, Some(admin.as_str())));
    // Another IdP account claiming the admin's email: refused.
    let (status, body, who) = sign_in("user-2", admin.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("already linked"), "{body}");
    assert_eq!(who, None);
    // A member not linked yet is matched by email once, then by subject.
    let (status, _, who) = sign_in("user-3", "other@acme.test".into()).await;
    assert_eq!((status, who.as_deref()), (303, Some("other@acme.test")));
    let (status, _, who) = sign_in("user-3", "renamed@acme.test".into()).await;
    assert_eq!((status, who.as_deref()), (303, Some("other@acme.test")));
    app.stop().await;
}

#[tokio::test]
async fn saml_sign_in_follows_the_linked_name_id_not_the_email() {
    let (app, idp, admin, _) = saml_app().await;
    add_member(&app, "other@acme.test", rollcall::domain::Role::Contributor).await;
    let sign_in = |name_id: &'static str, email: String| {
        let (app, idp) = (&app, &idp);
        async move {
            let user = IdpUser::persistent(name_id, &email);
            let (browser, response) = saml_response_as(app, idp, &user, "/members").await;
            let (status, body) = post_acs(app, &browser, &response).await;
            (status, body, signed_in_as(app, &browser).await)
        }
    };
    let (status, _, who) = sign_in("id-ann", admin.clone()).await;
    assert_eq!((status, who.as_deref()), (303, Some(admin.as_str())));
    let (status, _, who) = sign_in("id-ann", "other@acme.test".into()).await;
    assert_eq!((status, who.as_deref()), (303, Some(admin.as_str())));
    let (status, body, who) = sign_in("id-mallory", admin.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("already linked"), "{body}");
    assert_eq!(who, None);
    app.stop().await;
}

/// A headless Chromium through chromedriver, resolving only loopback names (the
/// IdP's page asks for web fonts; nothing may leave the machine). None when
/// chromedriver is missing and browser tests are not required (as in browser.rs).
struct Chromium {
    client: fantoccini::Client,
    driver: std::process::Child,
    profile: PathBuf,
}

impl Chromium {
    async fn start() -> Option<Chromium> {
        use std::os::unix::process::CommandExt;
        let required = std::env::var("ROLLCALL_BROWSER_TESTS").is_ok_and(|v| v == "1");
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !std::path::Path::new(&driver_bin).exists() {
            assert!(
                !required,
                "ROLLCALL_BROWSER_TESTS=1 but {driver_bin} is missing"
            );
            eprintln!("skipping: no chromedriver");
            return None;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = std::process::Command::new(&driver_bin)
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
                    "--disable-component-update", "--disable-sync",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.display())
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        Some(Chromium {
            client: loop_connect(&url, caps).await,
            driver,
            profile,
        })
    }

    /// Wait until the page's path is `path`; returns the body text.
    async fn wait_for_path(&self, path: &str) -> String {
        for _ in 0..200 {
            if let Ok(url) = self.client.current_url().await
                && url.path() == path
                && let Ok(body) = self.client.find(fantoccini::Locator::Css("body")).await
                && let Ok(text) = body.text().await
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let at = self.client.current_url().await.map(|u| u.to_string());
        panic!("never reached {path}; at {at:?}");
    }
}

async fn loop_connect(url: &str, caps: serde_json::Map<String, Value>) -> fantoccini::Client {
    let mut last_err = None;
    for _ in 0..100 {
        match fantoccini::ClientBuilder::rustls()
            .expect("tls")
            .capabilities(caps.clone())
            .connect(url)
            .await
        {
            Ok(client) => return client,
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start: {last_err:?}");
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // chromedriver leads its own process group: Chromium goes with it. Only that
        // group, never ours (see browser.rs on why not kill(1)).
        let group = self.driver.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; the guard keeps it off init and us.
        if group > 1 && group != unsafe { libc::getpgrp() } {
            unsafe { libc::killpg(group, libc::SIGKILL) };
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn saml_in_chromium_the_pending_cookie_survives_the_idps_cross_site_post() {
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    let (app, idp, admin, _) = saml_app().await;
    let c = &chromium.client;
    // The workspace host sets the cookie and sends the browser to saml-idp (another
    // site); saml-idp's page posts the response back to the ACS by script.
    c.goto(&app.ws_url("acme", "/sso/start?next=/members"))
        .await
        .unwrap();
    chromium.wait_for_path("/saml/sso").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&idp.issuer())
    );
    c.execute(
        "document.getElementById('userName').value = arguments[0];
         document.getElementById('email').value = arguments[0];
         document.querySelector('form.form-profile').submit();",
        vec![json!(admin)],
    )
    .await
    .unwrap();
    let members = chromium.wait_for_path("/members").await;
    assert!(members.contains(&admin), "{members}");
    chromium.client.clone().close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn oidc_errors_from_the_idp_are_not_quoted_on_the_page() {
    let (app, _idp, _) = fake_app().await;
    let (browser, q) = start_fake(&app, "/members").await;
    let r = browser
        .get(app.ws_url(
            "acme",
            &format!(
                "/sso/oidc/callback?state={}&error=access_denied&error_description={}",
                rollcall::http::pages::urlencode(&q["state"]),
                rollcall::http::pages::urlencode("Call +1-555-0100 to restore your account"),
            ),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("refused the sign-in"), "{body}");
    assert!(!body.contains("555-0100"), "{body}");
    app.stop().await;
}
