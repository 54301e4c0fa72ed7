//! Bearer-token lookups kept in memory, on PostgreSQL only.
//!
//! Every SCIM request starts by finding its bearer token (with its workspace, and
//! for an OAuth token its grant, client and authorizer). On SQLite that is a B-tree
//! probe in the process; on PostgreSQL it is a round trip, half of a read's. So each
//! process keeps the tokens it found live, by digest, and forgets them all whenever
//! anything that can end a token's access changes:
//!
//! - **in this process**, synchronously, after the change commits and before it is
//!   answered (`Db::auth_changed`, called by the store functions that revoke, end,
//!   delete, rotate, change a workspace's settings or take an authorizer's admin role
//!   or activity away);
//! - **in every process**, through PostgreSQL: triggers (migration 0016) send
//!   `NOTIFY rollcall_auth` with the change's commit, and each process listens on a
//!   connection of its own. The delay is the notification's delivery (RFC 7009 §2.2
//!   allows such a propagation delay between servers and asks to keep it short).
//!
//! Only live tokens are kept (an unknown, revoked or expired token is looked up every
//! time), so a change that gives access needs no signal. Expiry and the time-bound
//! ends (a rotated secret's grace) are checked at every use from the kept values.
//!
//! The cache is used only while the listener is connected: it is emptied and
//! switched off when the listening connection fails or stops answering its
//! keep-alive, and switched on again (empty) once a new one is listening, so a
//! notification missed in between cannot leave a token in use. A lookup that read
//! the database before a notification arrived does not store its (maybe stale)
//! answer after it: each fill carries the generation it started in. Entries are also
//! dropped after `MAX_AGE`, whatever happens.

use super::oauth::StoredToken;
use super::tokens::ApiToken;
use super::workspaces::Workspace;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The channel the triggers notify and every process listens on.
pub(crate) const CHANNEL: &str = "rollcall_auth";

/// How long an entry is used at most, even with no notification.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Entries kept at most; past this the cache starts over (a defence against a flood
/// of live tokens, not a working limit: a workspace has a handful).
const MAX_ENTRIES: usize = 10_000;
/// How long the listening connection may be quiet before it is asked to answer.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(5);
/// How long it has to answer.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a live bearer token resolves to.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Api(ApiToken, Workspace),
    OAuth(StoredToken),
}

#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    /// On only while a listener is connected.
    on: AtomicBool,
    state: Mutex<State>,
    /// Tests: notifications are heard but not acted on, as if they were slow to
    /// come, so what this process itself forgets can be told apart.
    #[cfg(feature = "testing")]
    pub(crate) deaf: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every forgetting; a fill started in an older one is not stored.
    generation: u64,
    entries: HashMap<Vec<u8>, (Arc<Found>, Instant)>,
}

/// Where a lookup started: pass it back to `put`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl AuthCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept answer for this digest, if the cache is on and it is fresh.
    pub(crate) fn get(&self, digest: &[u8]) -> Option<Arc<Found>> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        let state = self.state();
        let (found, at) = state.entries.get(digest)?;
        (at.elapsed() < MAX_AGE).then(|| found.clone())
    }

    /// Taken before reading the database for a digest the cache did not have.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        Some(Ticket(self.state().generation))
    }

    /// Keep a live token's answer, unless something was forgotten since `ticket`.
    pub(crate) fn put(&self, ticket: Option<Ticket>, digest: &[u8], found: Found) {
        let Some(Ticket(generation)) = ticket else {
            return;
        };
        let mut state = self.state();
        if state.generation != generation || !self.on.load(Ordering::Acquire) {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state
            .entries
            .insert(digest.to_vec(), (Arc::new(found), Instant::now()));
    }

    /// Replace a kept answer in place (a touched token's last use), keeping its age.
    pub(crate) fn update(&self, digest: &[u8], change: impl FnOnce(&Found) -> Found) {
        let mut state = self.state();
        if let Some((found, _)) = state.entries.get_mut(digest) {
            *found = Arc::new(change(found));
        }
    }

    /// Forget everything: something that can end a token's access changed.
    pub(crate) fn forget(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
    }

    /// A listener is connected (`true`, and the cache starts empty) or is not.
    pub(crate) fn set_on(&self, on: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        self.on.store(on, Ordering::Release);
    }

    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Found {
        let workspace = Workspace {
            id: 1,
            subdomain: "acme".into(),
            name: "Acme".into(),
            scim_enabled: true,
            scim_teams: false,
            password_signin: false,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let token = ApiToken {
            id: 1,
            workspace_id: 1,
            name: "t".into(),
            prefix: "rc_pat_x".into(),
            created_by: "a".into(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            last_used_at: None,
            revoked_at: None,
        };
        Found::Api(token, workspace)
    }

    #[test]
    fn off_keeps_nothing() {
        let c = AuthCache::default();
        let t = c.ticket();
        c.put(t, b"d", found());
        assert!(c.get(b"d").is_none());
        c.set_on(true);
        assert!(c.get(b"d").is_none(), "switching on starts empty");
    }

    #[test]
    fn a_fill_that_started_before_a_forget_is_not_kept() {
        let c = AuthCache::default();
        c.set_on(true);
        let before = c.ticket();
        c.forget();
        c.put(before, b"d", found());
        assert!(c.get(b"d").is_none());
        let after = c.ticket();
        c.put(after, b"d", found());
        assert!(c.get(b"d").is_some());
        c.forget();
        assert!(c.get(b"d").is_none());
    }

    #[test]
    fn switching_off_forgets_and_stops_fills() {
        let c = AuthCache::default();
        c.set_on(true);
        let t = c.ticket();
        c.put(t, b"d", found());
        let t2 = c.ticket();
        c.set_on(false);
        assert!(c.get(b"d").is_none());
        c.set_on(true);
        c.put(t2, b"d", found());
        assert!(c.get(b"d").is_none(), "a fill from before the gap");
    }
}

/// The cache of a PostgreSQL database and the task that listens for its
/// notifications; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Listening {
    pub(crate) cache: Arc<AuthCache>,
    task: tokio::task::AbortHandle,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listening {
    /// Start listening (in the background: the cache stays off until it listens).
    pub(crate) fn start(opts: sqlx::postgres::PgConnectOptions) -> Listening {
        let cache = Arc::new(AuthCache::default());
        let task = tokio::spawn(listen(opts, Arc::downgrade(&cache))).abort_handle();
        Listening { cache, task }
    }

    /// Stop listening, the cache off.
    pub(crate) fn stop(&self) {
        self.task.abort();
        self.cache.set_on(false);
    }
}

/// Connect, listen, switch the cache on; on any failure switch it off and start
/// over (after a pause that grows to 5 s). Ends when the cache is dropped.
async fn listen(opts: sqlx::postgres::PgConnectOptions, cache: std::sync::Weak<AuthCache>) {
    use sqlx::Executor;
    use sqlx::postgres::{PgListener, PgPoolOptions};
    let mut pause = Duration::from_millis(100);
    loop {
        let connected = async {
            // A pool of one, as PgListener wants; it never reconnects on its own
            // behind our back (a new listener is made for every connection).
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone().application_name("rollcall-auth-listener"))
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>((pool, listener))
        }
        .await;
        let Some(c) = cache.upgrade() else { return };
        let (pool, mut listener) = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "token cache off: cannot listen for revocations");
                drop(c);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        c.set_on(true);
        drop(c);
        let why = loop {
            match tokio::time::timeout(KEEPALIVE, listener.try_recv()).await {
                Ok(Ok(Some(_))) => match cache.upgrade() {
                    #[cfg(feature = "testing")]
                    Some(c) if c.deaf.load(Ordering::Acquire) => {}
                    Some(c) => c.forget(),
                    None => return,
                },
                Ok(Ok(None)) => break "connection lost".to_string(),
                Ok(Err(e)) => break e.to_string(),
                // Quiet: make sure the connection still answers.
                Err(_) => {
                    if cache.strong_count() == 0 {
                        return;
                    }
                    match tokio::time::timeout(KEEPALIVE_TIMEOUT, listener.execute("SELECT 1"))
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "no answer to the keep-alive".to_string(),
                    }
                }
            }
        };
        let Some(c) = cache.upgrade() else { return };
        c.set_on(false);
        drop(c);
        tracing::warn!(error = %why, "token cache off until it listens again");
        drop(listener);
        let _ = tokio::time::timeout(KEEPALIVE_TIMEOUT, pool.close()).await;
        tokio::time::sleep(pause).await;
    }
}
