//! Test harness: spawn a server on a fresh database, and HTTP clients that reach
//! workspace hosts (`acme.localhost`) on loopback.

pub mod oauth;
pub mod ops;
pub mod scim;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rollcall::Running;
use rollcall::config::{Config, Settings};
use rollcall::store::Db;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct TestApp {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    /// `http://localhost:PORT`
    pub base: String,
    pub db: Db,
    /// The database this server uses, for a second server or a restart.
    pub database_url: String,
}

/// base64 of 32 bytes: the server key every test server uses.
pub const TEST_SERVER_KEY: &str = "cm9sbGNhbGwtdGVzdC1zZXJ2ZXIta2V5LTMyYnl0ZXM=";

/// Resolve every name to loopback: `*.localhost` are the workspace hosts.
struct Loopback;

impl Resolve for Loopback {
    fn resolve(&self, _name: Name) -> Resolving {
        let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
        Box::pin(async move { Ok(addrs) })
    }
}

/// A fresh database URL: a new SQLite file, or a new PostgreSQL database.
pub async fn fresh_database_url() -> String {
    match std::env::var("ROLLCALL_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection;
            let name = format!("rollcall_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create database");
            let mut url = url::Url::parse(&admin_url).expect("ROLLCALL_TEST_DATABASE_URL");
            url.set_path(&name);
            url.to_string()
        }
        _ => {
            let dir = std::env::temp_dir().join("rollcall-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!(
                "sqlite://{}/{}.db",
                dir.display(),
                uuid::Uuid::new_v4().simple()
            )
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let database_url = fresh_database_url().await;
        Self::spawn_on(&database_url, adjust).await
    }

    /// A server on an existing database (e.g. a second process, or a restart).
    pub async fn spawn_on(database_url: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://localhost:{}", addr.port());
        let mut settings = Settings {
            base_url: Some(base.clone()),
            database_url: Some(database_url.to_owned()),
            // One fixed server key: every process on this database opens its secrets.
            secret_key: Some(TEST_SERVER_KEY.to_owned()),
            // The tests' identity providers run on loopback, which the server refuses
            // to fetch from unless the operator allows it.
            sso_fetch_allow: Some(vec!["127.0.0.1".into(), "localhost".into()]),
            ..Settings::default()
        };
        adjust(&mut settings);
        let config = Config::from_settings(settings).expect("config");
        let db = Db::connect(database_url).await.expect("database");
        let running = rollcall::start(config, db.clone(), listener, false)
            .await
            .expect("start");
        TestApp {
            running: Some(running),
            addr,
            base,
            db,
            database_url: database_url.to_owned(),
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `http://SUB.localhost:PORT/path`
    pub fn ws_url(&self, sub: &str, path: &str) -> String {
        format!("http://{sub}.localhost:{}{}", self.addr.port(), path)
    }

    /// A client like a browser: cookies, no automatic redirects.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Loopback))
            .build()
            .expect("client")
    }

    /// A browser whose cookies the test can read.
    pub fn browser_with_jar(&self, jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Loopback))
            .build()
            .expect("client")
    }

    /// A plain API client: no cookies, no redirects.
    pub fn api(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Loopback))
            .build()
            .expect("client")
    }

    /// Workspace `sub` with an admin; returns (admin email, password).
    pub async fn workspace(&self, sub: &str) -> (String, String) {
        let email = format!("admin@{sub}.test");
        let created = ops::create_workspace(&self.db, sub, &format!("{sub} Inc"), &email)
            .await
            .expect("workspace");
        (email, created.admin_password)
    }
}

/// The body of a page fetched with `client` (cookies and all).
pub async fn page(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

/// The CSRF token of the form on the page at `url`.
pub async fn csrf_of(client: &reqwest::Client, url: &str) -> String {
    form_value(&page(client, url).await, "csrf").expect("csrf field")
}

pub use rollcall_testkit::{form_value, html_unescape};

/// Sign in through the password form; returns the browser client with its session.
pub async fn sign_in(app: &TestApp, sub: &str, email: &str, password: &str) -> reqwest::Client {
    let browser = app.browser();
    let page = browser
        .get(app.ws_url(sub, "/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&page, "csrf").expect("csrf field");
    let resp = browser
        .post(app.ws_url(sub, "/signin"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/members"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in should redirect");
    browser
}

/// Percent-encoding for query strings the tests build.
pub fn enc(s: &str) -> String {
    rollcall::http::pages::urlencode(s)
}

/// The Location header of a redirect.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A JSON string value, or a panic that shows what was there instead.
pub fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A SCIM error answer: this status, the Error schema, `status` as a string, a
/// non-empty `detail`, and `scimType` when given.
pub fn assert_scim_error(a: &scim::Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(
        a.body["schemas"],
        serde_json::json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{}",
        a.body
    );
    assert_eq!(
        a.body["status"],
        serde_json::json!(status.to_string()),
        "status is a string: {}",
        a.body
    );
    assert!(
        a.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        a.body
    );
    if let Some(t) = scim_type {
        assert_eq!(a.body["scimType"], t, "{}", a.body);
    }
}

/// With the batch writers held (`Db::pause_batched_writes(true)`; the readers:
/// `pause_batched_reads`), wait until `n` writes (or reads) are queued (`queued`:
/// one of `Db`'s batch counters), then let the writers and readers go, so the `n`
/// are tried as one batch. Only PostgreSQL batches: on SQLite they are let go at
/// once.
pub async fn release_when_queued(
    db: &rollcall::store::Db,
    n: usize,
    queued: impl Fn(&rollcall::store::Db) -> usize,
) {
    let pg = db.backend() == rollcall::store::Backend::Postgres;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg && queued(db) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} writes never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    db.pause_batched_writes(false);
    db.pause_batched_reads(false);
}
