//! Security checks that cut across endpoints: no secret ever reaches the logs, and
//! slow clients are cut off.

use crate::support::oauth::{authorize_query, code_for, exchange, register};
use crate::support::{TestApp, sign_in};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_logs() {
    // Everything the server logs, at the most verbose level, for this process.
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let api_token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let okta = register(&app, "Okta", false).await;
    let secret = okta.client_secret.clone().unwrap();

    sign_in(&app, "acme", &email, &password).await;
    let code = code_for(
        &app,
        &authorize_query(&okta.client_id, ""),
        &email,
        &password,
    )
    .await;
    let (_, tokens) = exchange(&app, &okta, &code, None).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    for token in [&api_token, &access] {
        let r = app
            .api()
            .get(app.url("/scim/v2/Users"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .api()
        .post(app.url("/oauth2/token"))
        .basic_auth(&okta.client_id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("request"),
        "the log captured requests: {}",
        &text[..text.len().min(500)]
    );
    for (what, s) in [
        ("password", password.as_str()),
        ("API token", api_token.as_str()),
        ("client secret", secret.as_str()),
        ("authorization code", code.as_str()),
        ("access token", access.as_str()),
        ("refresh token", refresh.as_str()),
    ] {
        assert!(!text.contains(s), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let app = TestApp::spawn_with(|s| s.request_timeout_secs = Some(1)).await;
    app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Promise a body, then send only part of it.
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{\"userName\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(5));
    app.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::spawn_with(|s| s.request_timeout_secs = Some(1)).await;
    // A slowloris: a request line and part of a header, then nothing.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    // Meanwhile a client that sends its headers in time is served.
    let mut prompt = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    prompt
        .write_all(b"Host: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), prompt.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let started = Instant::now();
    let mut rest = Vec::new();
    // Closed (end of stream, or a reset) well before the client's own 10 s.
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
        .await
        .expect("the server closed the slow connection");
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "the slow request was served: {}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}

/// A loopback listener standing in for an internal service (a metrics endpoint):
/// counts the connections it gets and answers each with a body that must never
/// reach a page.
async fn internal_service() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let body = "# HELP internal_secret_metric do not show me\n";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

/// Post an admin form on the SSO settings page; returns the page shown after it.
async fn post_sso_form(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> String {
    let settings = app.ws_url("acme", "/settings/sso");
    let csrf = crate::support::csrf_of(browser, &settings).await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf", &csrf));
    let r = browser
        .post(app.ws_url("acme", path))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{path}");
    crate::support::page(browser, &settings).await
}

const NO_METADATA: &str = "could not fetch a valid metadata document from that URL";
const NO_DISCOVERY: &str = "could not fetch a valid OpenID Connect discovery document";

#[tokio::test]
async fn sso_settings_never_fetch_internal_addresses() {
    let (port, hits) = internal_service().await;
    // The operator allowed nothing.
    let app = TestApp::spawn_with(|s| s.sso_fetch_allow = Some(vec![])).await;
    let (email, password) = app.workspace("acme").await;
    let browser = sign_in(&app, "acme", &email, &password).await;
    // Loopback written every way a URL parser or resolver accepts it.
    // https too: the scheme rules refuse plain http to most of these before any
    // fetch, and an unguarded https fetch would still open a TCP connection.
    let hosts = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "localhost",
        "0.0.0.0",
    ];
    for (scheme, host) in ["http", "https"]
        .iter()
        .flat_map(|s| hosts.iter().map(move |h| (s, h)))
    {
        let url = format!("{scheme}://{host}:{port}/metadata");
        let page = post_sso_form(
            &app,
            &browser,
            "/settings/sso/saml",
            &[("metadata_url", &url)],
        )
        .await;
        assert!(page.contains("Not saved"), "{host}: {page}");
        assert!(
            !page.contains("internal_secret_metric"),
            "{host}: the page quotes the fetch"
        );
        let issuer = format!("{scheme}://{host}:{port}");
        let page = post_sso_form(
            &app,
            &browser,
            "/settings/sso/oidc",
            &[
                ("issuer", &issuer),
                ("client_id", "c"),
                ("client_secret", "s"),
            ],
        )
        .await;
        assert!(page.contains("Not saved"), "{host}: {page}");
        assert!(
            !page.contains("internal_secret_metric"),
            "{host}: the page quotes the fetch"
        );
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server connected to an internal address"
    );
    let ws = crate::support::ops::workspace(&app.db, "acme")
        .await
        .unwrap();
    let row = rollcall::store::sso::get(&app.db, ws.id).await.unwrap();
    assert!(row.protocol.is_none(), "nothing was saved: {row:?}");
    app.stop().await;
}

#[tokio::test]
async fn sso_fetch_failures_all_read_the_same() {
    let (port, hits) = internal_service().await;
    // Allowed (an on-premises IdP), but what answers is not an IdP.
    let app = TestApp::spawn_with(|s| s.sso_fetch_allow = Some(vec!["127.0.0.1".into()])).await;
    let (email, password) = app.workspace("acme").await;
    let browser = sign_in(&app, "acme", &email, &password).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for p in [port, closed] {
        let url = format!("http://127.0.0.1:{p}/metadata");
        let page = post_sso_form(
            &app,
            &browser,
            "/settings/sso/saml",
            &[("metadata_url", &url)],
        )
        .await;
        assert!(page.contains(NO_METADATA), "port {p}: {page}");
        assert!(
            !page.contains("internal_secret_metric"),
            "the page quotes the fetch"
        );
        for detail in [
            "error sending request",
            "tcp connect",
            "refused",
            "answered",
        ] {
            assert!(
                !page.contains(detail),
                "the page tells why ({detail}): {page}"
            );
        }
        let issuer = format!("http://127.0.0.1:{p}");
        let page = post_sso_form(
            &app,
            &browser,
            "/settings/sso/oidc",
            &[
                ("issuer", &issuer),
                ("client_id", "c"),
                ("client_secret", "s"),
            ],
        )
        .await;
        assert!(page.contains(NO_DISCOVERY), "port {p}: {page}");
        assert!(
            !page.contains("internal_secret_metric"),
            "the page quotes the fetch"
        );
    }
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the allowed host was fetched"
    );
    app.stop().await;
}
