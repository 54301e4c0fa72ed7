//! Rollcall: a self-hostable SCIM 2.0 + OAuth2 server for multi-workspace products.
//!
//! Data flows one way: `http` (and the CLI) -> `app` (the use cases: provisioning,
//! token grants, sign-in, administration) -> the protocol rules (`scim`, `oauth`,
//! `sso`) and `store` -> database. Nothing below `http` imports it
//! (docs/architecture.md). `router` builds the whole application from an `AppState`;
//! `start` serves it on a listener, which is what the binary and the tests call.

pub mod alloc;
pub mod app;
pub mod config;
pub mod domain;
/// Entry points for the fuzz targets and the corpus replay test.
#[cfg(feature = "testing")]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod scim;
pub mod secrets;
pub mod sso;
pub mod store;

pub use http::{AppState, router};

use config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use store::Db;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, close the database.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let res = (&mut self.task).await.unwrap_or(Ok(()));
        self.state.db.close().await;
        res
    }

    /// Wait until the server stops (a signal, or `stop`).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let res = (&mut self.task).await.unwrap_or(Ok(()));
        self.state.db.close().await;
        res
    }
}

/// Serve `db` on `listener` until `stop`, or SIGINT/SIGTERM when `on_signals`.
pub async fn start(
    config: Config,
    db: Db,
    listener: TcpListener,
    on_signals: bool,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let key = sso::ServerKey::load(config.secret_key.as_deref(), &config.data_dir)
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let sso = Arc::new(
        sso::Sso::new(key, &config.sso_fetch_allow)
            .map_err(|e| std::io::Error::other(format!("HTTP client for IdP requests: {e}")))?,
    );
    let state = AppState::new(db.clone(), Arc::new(config), sso);
    spawn_housekeeping(db);
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let header_timeout = state.config.request_timeout;
    let task = tokio::spawn(http::serve::serve(
        listener,
        app,
        header_timeout,
        async move {
            if on_signals {
                tokio::select! {
                    _ = rx => {}
                    _ = shutdown_signal() => tracing::info!("shutting down"),
                }
            } else {
                let _ = rx.await;
            }
        },
    ));
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

/// Periodic clean-up of expired rows, and of freed memory.
fn spawn_housekeeping(db: Db) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            alloc::trim();
        }
    });
    tokio::spawn(async move {
        let store = store::sessions::DbSessionStore::new(db.clone());
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
            if let Err(e) = store::oauth::delete_expired(&db).await {
                tracing::warn!(error = %e, "could not delete expired OAuth codes and tokens");
            }
            if let Err(e) = store::sso::delete_expired(&db).await {
                tracing::warn!(error = %e, "could not delete expired SAML requests");
            }
            if let Err(e) = store::rate_limits::delete_old(&db).await {
                tracing::warn!(error = %e, "could not delete old rate-limit windows");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
