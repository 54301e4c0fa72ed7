//! The reference server: the limit every case is measured against.
//!
//! It is this binary run as `rollcall-bench --reference-server`, a process of its own
//! like `rollcall serve`, on the same runtime (`Runtime::new()` after the same malloc
//! setting), the same accept loop (`rollcall::http::serve::serve`: hyper's auto
//! builder, the header-read timer, `TCP_NODELAY`) and an axum router, and it answers
//! the bytes Rollcall answered. Before a case, the bench tells it where Rollcall
//! listens (`PUT /__reference/learn`); the first request it then receives is passed
//! to Rollcall and the answer (status, headers, body) is kept; every later request is
//! read in full and answered with those bytes from memory. The same client drives
//! both servers with the same requests, so a case's requests per second against
//! Rollcall divided by the reference's is how close Rollcall is to what this HTTP
//! stack and this machine allow; that ratio is what matters on a shared machine,
//! where absolute figures move by a fifth from one run to the next.

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One answer of Rollcall's, replayed.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn response(&self) -> Response {
        let mut r = Response::new(Body::from(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

struct Reference {
    /// Rollcall's `host:port` on loopback, and the answer learnt from it.
    upstream: RwLock<Option<String>>,
    answer: RwLock<Option<Arc<Answer>>>,
    /// Held while the first request of a case is passed on, so only one is.
    learning: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Reference {
    fn current(&self) -> Option<Arc<Answer>> {
        self.answer.read().ok().and_then(|a| a.clone())
    }

    async fn fetch(&self, parts: axum::http::request::Parts, body: Bytes) -> Result<Answer> {
        let upstream = self
            .upstream
            .read()
            .ok()
            .and_then(|u| u.clone())
            .ok_or_else(|| anyhow!("nothing to learn from yet"))?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = parts.headers;
        // The Host names this server's port; Rollcall is told its own.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
            .unwrap_or_else(|| "localhost".into());
        let port = upstream.rsplit_once(':').map_or("", |(_, p)| p);
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&format!("{host}:{port}"))?,
        );
        headers.remove(header::CONTENT_LENGTH);
        let r = self
            .http
            .request(parts.method, format!("http://{upstream}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let mut headers = r.headers().clone();
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
            header::DATE,
        ] {
            headers.remove(h);
        }
        let body = r.bytes().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// `PUT /__reference/learn` with Rollcall's `host:port`: forget the answer, learn the
/// next one from there.
async fn learn(State(r): State<Arc<Reference>>, body: String) -> StatusCode {
    let _held = r.learning.lock().await;
    if let Ok(mut u) = r.upstream.write() {
        *u = Some(body.trim().to_owned());
    }
    if let Ok(mut a) = r.answer.write() {
        *a = None;
    }
    StatusCode::NO_CONTENT
}

async fn answer(State(r): State<Arc<Reference>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(a) = r.current() {
        return a.response();
    }
    let _held = r.learning.lock().await;
    if let Some(a) = r.current() {
        return a.response();
    }
    match r.fetch(parts, body).await {
        Ok(a) => {
            let a = Arc::new(a);
            if let Ok(mut slot) = r.answer.write() {
                *slot = Some(a.clone());
            }
            a.response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("reference: {e:#}")).into_response(),
    }
}

/// `rollcall-bench --reference-server`: serve until killed; prints the port first.
pub fn main() -> Result<()> {
    rollcall::alloc::limit_arenas();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let state = Arc::new(Reference {
            upstream: RwLock::new(None),
            answer: RwLock::new(None),
            learning: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .http1_only()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        });
        let app = Router::new()
            .route("/__reference/learn", axum::routing::put(learn))
            .fallback(answer)
            .with_state(state);
        rollcall::http::serve::serve(
            listener,
            app,
            Duration::from_secs(30),
            std::future::pending(),
        )
        .await?;
        Ok(())
    })
}

/// Start the reference server as a child of this process; returns it and its port.
pub fn spawn() -> Result<(std::process::Child, u16)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--reference-server")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the reference server")?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .parse()
        .with_context(|| format!("reference server said {line:?}"))?;
    Ok((child, port))
}
