//! PostgreSQL connections: a small pool of sqlx connections.
//!
//! sqlx's own pool tests every connection it takes back (sqlx-core's
//! `Floating::return_to_pool` sends a Sync and waits for PostgreSQL's answer, in a
//! task of its own): one more network round trip and one more task for every
//! statement, which on a read is about as much as the statement itself. Here a
//! connection whose work finished goes straight back. One whose work was cut off
//! (its future was dropped mid-statement), whose transport failed, or that holds a
//! transaction nobody committed is set right (a round trip, or `ROLLBACK`) in a task
//! before anyone else gets it, and closed if that fails, as sqlx does.
//!
//! A connection that sat idle is pinged before use (a restarted server or a proxy
//! may have dropped it); one idle for long is closed, so a quiet process holds few
//! server backends, and one older than half an hour is closed when it comes back
//! (as sqlx's `max_lifetime`), so connections follow a proxy's or the server's
//! changes.

use super::sql::{FromRow, Sql};
use super::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a connection (a free slot, a ping, a new
/// connection: all of it) before it is told the database is busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long setting a cut-off connection right may take before it is closed. Its
/// slot is held meanwhile: closing it early would not stop the statement it was cut
/// off in (PostgreSQL notices a closed client only when it next writes), so the
/// pool would open a connection more than it may while that backend still runs.
/// Long, then, as sqlx's ping on release had no limit at all.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long closing a connection politely may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle longer than this: pinged before use.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);
/// Idle longer than this: closed.
const CLOSE_AFTER_IDLE: Duration = Duration::from_secs(600);
/// Older than this when it comes back: closed.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

#[derive(Clone)]
pub(crate) struct Pg(Arc<Inner>);

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (size, idle, max) = self.usage();
        write!(f, "Pg {{ size: {size}, idle: {idle}, max: {max} }}")
    }
}

struct Inner {
    opts: PgConnectOptions,
    max: u32,
    /// One permit per connection in use, being opened or being set right; idle
    /// connections hold none. So at most `max` are open.
    permits: Arc<Semaphore>,
    /// Most recently returned last (taken first: the warm ones stay warm, the cold
    /// ones age out).
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Opened,
    since: Instant,
}

/// A connection and when it was opened.
struct Opened {
    conn: PgConnection,
    at: Instant,
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a connection back (closing it if it is old), and close the ones idle
    /// for long.
    fn put(&self, conn: Opened) {
        let now = Instant::now();
        if now - conn.at > MAX_LIFETIME {
            spawn_close(conn.conn);
            return;
        }
        let mut idle = self.idle();
        idle.push(Idle { conn, since: now });
        let close: Vec<Idle> = if self.permits.is_closed() {
            // Closed meanwhile (`close` may have emptied the list just before).
            idle.drain(..).collect()
        } else {
            stale(&mut idle, now)
        };
        drop(idle);
        for i in close {
            spawn_close(i.conn.conn);
        }
    }
}

/// Take out the connections idle for long (the oldest returns are first).
fn stale(idle: &mut Vec<Idle>, now: Instant) -> Vec<Idle> {
    let n = idle
        .iter()
        .take_while(|i| now - i.since > CLOSE_AFTER_IDLE)
        .count();
    idle.drain(..n).collect()
}

/// Close a connection politely (a Terminate message), in the background.
fn spawn_close(conn: PgConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
        });
    }
}

/// Does this error leave the connection unfit for the next statement? Only an
/// answer PostgreSQL gave ends cleanly, and not one that ends the session (FATAL
/// or PANIC: the server is shutting down or the backend was terminated, and the
/// connection is closed behind it).
fn unsettling(e: &sqlx::Error) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => true,
    }
}

impl Pg {
    /// Open one connection (so a bad URL or a server that is down is said at once)
    /// and keep it. Idle connections are closed after a while even when nothing
    /// comes back to the pool (a task looks once a minute while the pool lives).
    pub(crate) async fn connect(opts: PgConnectOptions, max: u32) -> Result<Pg> {
        let first = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&opts))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let pg = Pg(Arc::new(Inner {
            opts,
            max,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(Vec::new()),
        }));
        pg.0.put(Opened {
            conn: first,
            at: Instant::now(),
        });
        let pool = Arc::downgrade(&pg.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(pool) = pool.upgrade() else { return };
                if pool.permits.is_closed() {
                    return;
                }
                let old = stale(&mut pool.idle(), Instant::now());
                for i in old {
                    spawn_close(i.conn.conn);
                }
            }
        });
        Ok(pg)
    }

    /// A connection of its own until the guard is dropped.
    pub(crate) async fn acquire(&self) -> Result<PgConn> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.take())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn take(&self) -> Result<PgConn> {
        let permit = self
            .0
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let taken = self.0.idle().pop();
            let Some(Idle { mut conn, since }) = taken else {
                let conn = PgConnection::connect_with(&self.0.opts).await?;
                let at = Instant::now();
                return Ok(PgConn::new(Opened { conn, at }, self, permit));
            };
            if since.elapsed() > PING_AFTER_IDLE && conn.conn.ping().await.is_err() {
                // Gone (dropping it closes the socket); try the next one.
                continue;
            }
            return Ok(PgConn::new(conn, self, permit));
        }
    }

    /// A transaction on a connection of its own: committed by
    /// [`PgTx::commit`], rolled back otherwise.
    pub(crate) async fn begin(&self) -> Result<PgTx> {
        let mut c = self.acquire().await?;
        c.state = State::InTransaction;
        c.execute("BEGIN").await?;
        Ok(PgTx(c))
    }

    /// Every row of a statement.
    pub(crate) async fn all<T: FromRow>(&self, q: &Sql) -> Result<Vec<T>> {
        let mut c = self.acquire().await?;
        let out = q.pg_all(&mut *c).await;
        c.settle(&out);
        out
    }

    /// The first row of a statement, if any.
    pub(crate) async fn optional<T: FromRow>(&self, q: &Sql) -> Result<Option<T>> {
        let mut c = self.acquire().await?;
        let out = q.pg_optional(&mut *c).await;
        c.settle(&out);
        out
    }

    /// Run a statement; the rows it changed.
    pub(crate) async fn execute(&self, q: &Sql) -> Result<u64> {
        let mut c = self.acquire().await?;
        let out = q.pg_execute(&mut *c).await;
        c.settle(&out);
        out
    }

    /// Connections open, idle, and the most there may be (for `/metrics`).
    pub(crate) fn usage(&self) -> (u32, u32, u32) {
        let idle = self.0.idle().len() as u32;
        let busy = self.0.max - self.0.permits.available_permits() as u32;
        (idle + busy, idle, self.0.max)
    }

    /// Refuse new work and close the idle connections, together (those in use
    /// close when they come back).
    pub(crate) async fn close(&self) {
        self.0.permits.close();
        let idle: Vec<Idle> = self.0.idle().drain(..).collect();
        futures_util::future::join_all(
            idle.into_iter()
                .map(|i| tokio::time::timeout(CLOSE_TIMEOUT, i.conn.conn.close())),
        )
        .await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Its last statement ran to the end: it can go straight back.
    Ready,
    /// A statement may have been cut off or its transport failed.
    Unsettled,
    /// In a transaction that was not committed.
    InTransaction,
}

/// A connection taken from the pool; it goes back when dropped.
pub(crate) struct PgConn {
    conn: Option<Opened>,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    state: State,
}

impl PgConn {
    fn new(conn: Opened, pg: &Pg, permit: OwnedSemaphorePermit) -> PgConn {
        PgConn {
            conn: Some(conn),
            pool: pg.0.clone(),
            permit: Some(permit),
            state: State::Unsettled,
        }
    }

    /// After a statement outside a transaction: an answer, even an error
    /// PostgreSQL gave, leaves the connection fit for the next (sqlx reads what is
    /// left of an answer before the next statement); a failed transport or a
    /// session's end does not.
    fn settle<T>(&mut self, out: &Result<T>) {
        self.state = match out {
            Err(StoreError::Db(e)) if unsettling(e) => State::Unsettled,
            _ => State::Ready,
        };
    }

    async fn execute(&mut self, statement: &str) -> Result<()> {
        (&mut **self).execute(statement).await?;
        Ok(())
    }
}

impl std::ops::Deref for PgConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self
            .conn
            .as_ref()
            .expect("a pooled connection until dropped")
            .conn
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        // Whatever is run on it now must finish for it to be ready again.
        if self.state == State::Ready {
            self.state = State::Unsettled;
        }
        &mut self
            .conn
            .as_mut()
            .expect("a pooled connection until dropped")
            .conn
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take()) else {
            return;
        };
        if self.state == State::Ready {
            self.pool.put(conn);
            drop(permit);
            return;
        }
        // Set it right before anyone else gets it, holding its permit meanwhile.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let rollback = self.state == State::InTransaction;
        rt.spawn(async move {
            let settled = tokio::time::timeout(SETTLE_TIMEOUT, async {
                if rollback {
                    conn.conn.execute("ROLLBACK").await.map(|_| ())
                } else {
                    conn.conn.ping().await
                }
            })
            .await;
            match settled {
                Ok(Ok(())) => pool.put(conn),
                Ok(Err(e)) => tracing::warn!(error = %e, "closing a PostgreSQL connection"),
                Err(_) => tracing::warn!("closing a PostgreSQL connection that did not answer"),
            }
            drop(permit);
        });
    }
}

/// A transaction on a pooled connection; rolled back unless committed.
pub(crate) struct PgTx(PgConn);

impl PgTx {
    pub(crate) async fn commit(mut self) -> Result<()> {
        self.0.execute("COMMIT").await?;
        self.0.state = State::Ready;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<()> {
        self.0.execute("ROLLBACK").await?;
        self.0.state = State::Ready;
        Ok(())
    }
}

impl std::ops::Deref for PgTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

impl Pg {
    /// Apply the migrations (on one connection: they take an advisory lock on it).
    pub(crate) async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<()> {
        let mut c = self.acquire().await?;
        migrator.run(&mut *c).await?;
        c.state = State::Ready;
        Ok(())
    }
}
