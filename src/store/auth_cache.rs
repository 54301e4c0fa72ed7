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
//! The cache is used only while notifications are shown to arrive: the listener
//! sends a probe (a notification with a payload of its own) through the pool and
//! switches the cache on only once it came back, and probes again whenever it has
//! heard nothing for `KEEPALIVE`. A probe not back within `KEEPALIVE_TIMEOUT`, or a
//! lost connection, empties the cache and switches it off until a new connection
//! hears a probe, so a notification missed in between cannot leave a token in use
//! (a connection that dies silently is noticed within about 3 s). A lookup that read
//! the database before a notification arrived does not store its (maybe stale)
//! answer after it: each fill carries the generation it started in. Entries are also
//! dropped `MAX_AGE` after their read, whatever happens.

use super::oauth::StoredToken;
use super::tokens::ApiToken;
use super::workspaces::Workspace;
use sqlx::postgres::PgConnectOptions;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The channel the triggers notify and every process listens on.
pub(crate) const CHANNEL: &str = "rollcall_auth";

/// How long an entry is used at most, even with no notification.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Entries kept at most; past this the cache starts over (a defence against a flood
/// of live tokens, not a working limit: a workspace has a handful).
const MAX_ENTRIES: usize = 10_000;
/// How long the listening connection may be quiet before a probe is sent through
/// the pool to see that notifications still arrive.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(2);
/// How long a probe has to come back.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a live bearer token resolves to, or a client (keyed `client:<id>`: the
/// clients that authenticate at the token, revocation and introspection endpoints).
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Api(ApiToken, Workspace),
    OAuth(StoredToken),
    Client(super::oauth::Client),
}

#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    /// On only while a listener hears notifications.
    on: AtomicBool,
    /// The database was closed: never on again.
    stopped: AtomicBool,
    state: Mutex<State>,
    /// Tests: notifications are heard but not acted on, as if they were slow to
    /// come, so what this process itself forgets can be told apart.
    #[cfg(feature = "testing")]
    pub(crate) deaf: AtomicBool,
    /// Tests: answers given from the cache.
    #[cfg(feature = "testing")]
    pub(crate) hits: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every forgetting; a fill started in an older one is not stored.
    generation: u64,
    entries: HashMap<Vec<u8>, (Arc<Found>, Instant)>,
}

/// Where a lookup started (the generation, and when: an entry's age counts from
/// the read, not from its arrival): pass it back to `put`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64, Instant);

impl AuthCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept answer for this key, if the cache is on and it is fresh.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<Found>> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        let state = self.state();
        let (found, at) = state.entries.get(key)?;
        if at.elapsed() >= MAX_AGE {
            return None;
        }
        #[cfg(feature = "testing")]
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(found.clone())
    }

    /// Taken before reading the database for a key the cache did not have.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        Some(Ticket(self.state().generation, Instant::now()))
    }

    /// Keep an answer (a live token, a client), unless something was forgotten
    /// since `ticket`.
    pub(crate) fn put(&self, ticket: Option<Ticket>, key: &[u8], found: Found) {
        let Some(Ticket(generation, read_at)) = ticket else {
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
            .insert(key.to_vec(), (Arc::new(found), read_at));
    }

    /// Replace kept answers in place (a touched grant's last use), keeping their
    /// age: `change` answers the new value for those it changes.
    pub(crate) fn update(&self, change: impl Fn(&Found) -> Option<Found>) {
        let mut state = self.state();
        for (found, _) in state.entries.values_mut() {
            if let Some(new) = change(found) {
                *found = Arc::new(new);
            }
        }
    }

    /// Forget everything: something that can end a token's access changed.
    pub(crate) fn forget(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
    }

    /// Notifications are heard (`true`, and the cache starts empty) or may not be.
    /// Once the database is closed it stays off.
    pub(crate) fn set_on(&self, on: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        let on = on && !self.stopped.load(Ordering::Acquire);
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
    /// `pool` sends the probes that show notifications arrive.
    pub(crate) fn start(opts: PgConnectOptions, pool: super::pg::Pg) -> Listening {
        let cache = Arc::new(AuthCache::default());
        let task = tokio::spawn(listen(opts, pool, Arc::downgrade(&cache))).abort_handle();
        Listening { cache, task }
    }

    /// Stop listening, the cache off for good.
    pub(crate) fn stop(&self) {
        self.cache.stopped.store(true, Ordering::Release);
        self.task.abort();
        self.cache.set_on(false);
    }
}

/// A probe's payload: what a process sends itself, through its pool, to see that
/// notifications reach its listener (others ignore it).
const PROBE: &str = "probe:";

/// Switches the cache off when the listening task ends in any way (an error, a
/// panic, an abort).
struct OffWhenDropped(Weak<AuthCache>);

impl Drop for OffWhenDropped {
    fn drop(&mut self) {
        if let Some(c) = self.0.upgrade() {
            c.set_on(false);
        }
    }
}

/// Connect, listen, and switch the cache on once a probe sent through the pool
/// came back; every `KEEPALIVE` without a notification, probe again. On any
/// failure switch it off and start over (after a pause that doubles up to 5 s
/// while connections keep failing). Ends when the cache is dropped.
async fn listen(opts: PgConnectOptions, pool: super::pg::Pg, cache: Weak<AuthCache>) {
    let _off = OffWhenDropped(cache.clone());
    let mut pause = Duration::from_millis(100);
    loop {
        let why = match Listener::connect(&opts, &pool).await {
            Err(e) => e,
            Ok(mut listener) => {
                let Some(c) = cache.upgrade() else { return };
                c.set_on(true);
                drop(c);
                let on_since = Instant::now();
                let why = listener.run(&cache).await;
                let Some(c) = cache.upgrade() else { return };
                c.set_on(false);
                drop(c);
                if on_since.elapsed() > KEEPALIVE {
                    pause = Duration::from_millis(100);
                }
                listener.close().await;
                why
            }
        };
        tracing::warn!(error = %why, "token cache off until notifications are heard again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// A listening connection, shown to receive what is sent through the pool.
struct Listener {
    pool: sqlx::PgPool,
    listener: sqlx::postgres::PgListener,
    probes: super::pg::Pg,
}

impl Listener {
    async fn connect(opts: &PgConnectOptions, probes: &super::pg::Pg) -> Result<Listener, String> {
        use sqlx::postgres::{PgListener, PgPoolOptions};
        let connected = async {
            // A pool of one, as PgListener wants; a new listener is made for every
            // connection (it never reconnects behind our back: eager_reconnect off).
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
        };
        let (pool, listener) = tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .map_err(|_| "no connection within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        let mut l = Listener {
            pool,
            listener,
            probes: probes.clone(),
        };
        // Listening is not hearing (a pooler in transaction mode accepts LISTEN and
        // delivers nothing): on only once a probe came back.
        if let Err(e) = l.probe(None).await {
            l.close().await;
            return Err(e);
        }
        Ok(l)
    }

    /// Send a probe through the pool and wait for it here, forgetting for every
    /// other notification heard meanwhile (none of them may be missed).
    async fn probe(&mut self, cache: Option<&Weak<AuthCache>>) -> Result<(), String> {
        let nonce = format!("{PROBE}{}", uuid::Uuid::new_v4().simple());
        let deadline = tokio::time::Instant::now() + KEEPALIVE_TIMEOUT;
        let q = super::sql::sql("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&nonce);
        let sent = self.probes.execute(&q);
        tokio::time::timeout_at(deadline, sent)
            .await
            .map_err(|_| "the probe was not sent in time".to_string())?
            .map_err(|e| e.to_string())?;
        loop {
            let heard = tokio::time::timeout_at(deadline, self.listener.try_recv())
                .await
                .map_err(|_| "the probe did not come back in time".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "connection lost".to_string())?;
            if heard.payload() == nonce {
                return Ok(());
            }
            if let Some(cache) = cache {
                heard_one(cache, heard.payload());
            }
        }
    }

    /// Forget on every notification, probe when quiet; the reason it stopped.
    async fn run(&mut self, cache: &Weak<AuthCache>) -> String {
        loop {
            if cache.strong_count() == 0 {
                return "closed".into();
            }
            match tokio::time::timeout(KEEPALIVE, self.listener.try_recv()).await {
                Ok(Ok(Some(n))) => heard_one(cache, n.payload()),
                Ok(Ok(None)) => return "connection lost".into(),
                Ok(Err(e)) => return e.to_string(),
                Err(_) => {
                    if let Err(e) = self.probe(Some(cache)).await {
                        return e;
                    }
                }
            }
        }
    }

    async fn close(self) {
        drop(self.listener);
        let _ = tokio::time::timeout(KEEPALIVE_TIMEOUT, self.pool.close()).await;
    }
}

/// A notification: forget, unless it is a probe (this process's or another's).
fn heard_one(cache: &Weak<AuthCache>, payload: &str) {
    if payload.starts_with(PROBE) {
        return;
    }
    if let Some(c) = cache.upgrade() {
        #[cfg(feature = "testing")]
        if c.deaf.load(Ordering::Acquire) {
            return;
        }
        c.forget();
    }
}
