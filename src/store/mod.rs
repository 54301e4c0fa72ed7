//! Storage: the only place with SQL. SQLite (embedded default) is reached through
//! rusqlite only (`sqlite`: read connections on the asking thread, one write
//! thread), PostgreSQL through sqlx only. Every statement is an `sql::Sql` with
//! `$n` placeholders, which both dialects accept, so most store functions are
//! written once; where the dialects differ, or a transaction runs several
//! statements, both forms stand side by side in the function that needs them.

pub mod activity;
pub(crate) mod auth_cache;
pub(crate) mod batch;
pub mod cursors;
pub(crate) mod member_batch;
pub(crate) mod member_reads;
pub mod members;
pub mod oauth;
pub(crate) mod pg;
/// The hot-path query list and EXPLAIN checks, for the plan test.
#[cfg(feature = "testing")]
pub mod plans;
pub mod rate_limits;
pub(crate) mod refresh_batch;
pub mod scim_sql;
pub mod sessions;
pub mod sql;
pub(crate) mod sqlite;
pub mod sso;
pub mod teams;
pub mod tokens;
pub mod workspaces;

use sql::{FromRow, Sql};
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
use std::sync::Arc;

/// The database a `Db` reaches, and how.
#[derive(Clone, Debug)]
pub(crate) enum Engine {
    Sqlite(Arc<sqlite::Sqlite>),
    Postgres(pg::Pg),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database, and what each process keeps beside it. Cloned for every request
/// (it is in the application state), so it is one reference count: a clone and a
/// drop are one atomic each, not one per part (the parts' counters were shared by
/// both cores and showed in profiles).
#[derive(Clone, Debug)]
pub struct Db(Arc<DbParts>);

impl std::ops::Deref for Db {
    type Target = DbParts;
    fn deref(&self) -> &DbParts {
        &self.0
    }
}

#[derive(Debug)]
pub struct DbParts {
    engine: Engine,
    /// Keyset cursors for member listings (see `cursors`); per database.
    pub(crate) cursors: Arc<cursors::PageCursors>,
    /// The provisioning-activity queue (see `activity`); per database.
    pub(crate) activity: Arc<activity::ActivityQueue>,
    /// Rate-limit events counted here and not yet written (see `rate_limits`).
    pub(crate) rate_counts: Arc<rate_limits::LocalCounts>,
    /// Member changes waiting to be written together (PostgreSQL only; see
    /// `member_batch`).
    pub(crate) member_writes: batch::Queue<member_batch::MemberWrite>,
    /// Lookups of one member by a unique key waiting to be read together
    /// (PostgreSQL only; see `member_reads`).
    pub(crate) member_reads: batch::Queue<member_reads::Lookup>,
    /// Refresh-token presentations waiting to be made together (PostgreSQL only;
    /// see `refresh_batch`).
    pub(crate) refreshes: batch::Queue<refresh_batch::Refresh>,
    /// Live bearer tokens this process found, and the task that hears when to
    /// forget them (PostgreSQL only; see `auth_cache`).
    auth: Option<auth_cache::Listening>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("the record changed since it was read")]
    VersionMismatch,
    #[error("{0}")]
    InvalidFilter(String),
    #[error("PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a stored value could not be read: {0}")]
    Decode(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Now, truncated to milliseconds: what PostgreSQL and SCIM timestamps can carry,
/// so a value read back equals the value written.
pub fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}

/// Can this string be stored or looked up? PostgreSQL text cannot hold NUL, so a
/// key containing one cannot exist: lookups answer "not found" instead of erroring.
pub fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// The name of the unique constraint (or SQLite's message naming its columns) a
/// write violated, if that is what failed.
pub fn unique_violation(err: &StoreError) -> Option<String> {
    match err {
        StoreError::Db(sqlx::Error::Database(db)) if db.is_unique_violation() => Some(
            db.constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned()),
        ),
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Some(msg.clone().unwrap_or_else(|| "unique constraint".into()))
        }
        _ => None,
    }
}

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connect and apply migrations.
    pub async fn connect(url: &str) -> Result<Db> {
        let (engine, auth) = if url.starts_with("sqlite:") {
            (Engine::Sqlite(Arc::new(sqlite::Sqlite::open(url)?)), None)
        } else {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = pg::Pg::connect(opts.clone(), 16).await?;
            pool.migrate(&POSTGRES_MIGRATIONS).await?;
            let listening = auth_cache::Listening::start(opts, pool.clone());
            (Engine::Postgres(pool), Some(listening))
        };
        Ok(Db(Arc::new(DbParts {
            engine,
            cursors: Default::default(),
            activity: Default::default(),
            rate_counts: Default::default(),
            member_writes: Default::default(),
            member_reads: Default::default(),
            refreshes: Default::default(),
            auth,
        })))
    }

    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The bearer-token cache, where there is one (PostgreSQL).
    pub(crate) fn auth_cache(&self) -> Option<&auth_cache::AuthCache> {
        self.auth.as_ref().map(|a| &*a.cache)
    }

    /// A lookup through the bearer-token cache (PostgreSQL; elsewhere just `read`):
    /// the kept answer for `key` if `kept` recognizes it, else `read` (run only
    /// then, after the cache's ticket is taken), kept when `keep` makes an entry of
    /// it.
    pub(crate) async fn through_auth_cache<T>(
        &self,
        key: &[u8],
        kept: impl FnOnce(&auth_cache::Found) -> Option<T>,
        read: impl std::future::Future<Output = Result<Option<T>>>,
        keep: impl FnOnce(&T) -> Option<auth_cache::Found>,
    ) -> Result<Option<T>> {
        let cache = self.auth_cache();
        if let Some(found) = cache.and_then(|c| c.get(key)).and_then(|f| kept(&f)) {
            return Ok(Some(found));
        }
        let ticket = cache.and_then(|c| c.ticket());
        let found = read.await?;
        if let (Some(c), Some(value)) = (cache, &found)
            && let Some(entry) = keep(value)
        {
            c.put(ticket, key, entry);
        }
        Ok(found)
    }

    /// Something that can end a token's access was committed: this process forgets
    /// the tokens it keeps before the change is answered (the others hear it from
    /// PostgreSQL's triggers).
    pub(crate) fn auth_changed(&self) {
        if let Some(c) = self.auth_cache() {
            c.forget();
        }
    }

    /// Every row of a read.
    pub async fn read_all<T: FromRow + Send + 'static>(&self, q: Sql) -> Result<Vec<T>> {
        match &self.engine {
            Engine::Sqlite(s) => s.read_all(q).await,
            Engine::Postgres(p) => p.all(&q).await,
        }
    }

    /// The first row of a read, if any.
    pub async fn read_optional<T: FromRow + Send + 'static>(&self, q: Sql) -> Result<Option<T>> {
        match &self.engine {
            Engine::Sqlite(s) => s.read_optional(q).await,
            Engine::Postgres(p) => p.optional(&q).await,
        }
    }

    /// The first row of a read (`NotFound` when there is none).
    pub async fn read_one<T: FromRow + Send + 'static>(&self, q: Sql) -> Result<T> {
        self.read_optional(q).await?.ok_or(StoreError::NotFound)
    }

    /// Run a write; the rows it changed.
    pub async fn execute(&self, q: Sql) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(s) => s.write(move |tx| q.lite_execute(tx)).await,
            Engine::Postgres(p) => p.execute(&q).await,
        }
    }

    /// The first row a write returns (`RETURNING`), if any.
    pub async fn write_optional<T: FromRow + Send + 'static>(&self, q: Sql) -> Result<Option<T>> {
        match &self.engine {
            Engine::Sqlite(s) => s.write(move |tx| q.lite_optional(tx)).await,
            Engine::Postgres(p) => p.optional(&q).await,
        }
    }

    /// The row a write returns (`NotFound` when there is none).
    pub async fn write_one<T: FromRow + Send + 'static>(&self, q: Sql) -> Result<T> {
        self.write_optional(q).await?.ok_or(StoreError::NotFound)
    }

    /// Connections in use, for `/metrics`.
    pub fn pool_use(&self) -> Vec<crate::metrics::PoolUse> {
        match &self.engine {
            Engine::Sqlite(s) => {
                let (size, idle, max) = s.readers();
                vec![
                    crate::metrics::PoolUse {
                        pool: "read",
                        size,
                        idle,
                        max,
                    },
                    crate::metrics::PoolUse {
                        pool: "write",
                        size: 1,
                        idle: 0,
                        max: 1,
                    },
                ]
            }
            Engine::Postgres(p) => {
                let (size, idle, max) = p.usage();
                vec![crate::metrics::PoolUse {
                    pool: "shared",
                    size,
                    idle,
                    max,
                }]
            }
        }
    }

    /// Bytes SQLite has allocated in this process (every connection's page cache
    /// and prepared statements), for `/metrics`; None on PostgreSQL.
    pub fn sqlite_heap(&self) -> Option<i64> {
        matches!(self.engine, Engine::Sqlite(_)).then(sqlite::heap_used)
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        self.read_one::<i64>(sql::sql("SELECT CAST(1 AS BIGINT)"))
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(a) = &self.auth {
            a.stop();
        }
        activity::flush(self).await;
        match &self.engine {
            Engine::Sqlite(s) => s.close().await,
            Engine::Postgres(p) => p.close().await,
        }
    }
}

/// For the PostgreSQL pool's tests (tests/it/pg_pool.rs).
#[cfg(feature = "testing")]
impl Db {
    /// Is the bearer-token cache in use (PostgreSQL, listener connected)?
    pub fn auth_cache_on(&self) -> bool {
        self.auth_cache().is_some_and(|c| c.is_on())
    }

    /// How many answers the bearer-token cache gave (0 where there is none).
    pub fn auth_cache_hits(&self) -> u64 {
        self.auth_cache()
            .map_or(0, |c| c.hits.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Hold (`true`) or let go the PostgreSQL batch writers (see `store::batch`):
    /// while held, batched writes queue (a writer may hold the first it took).
    pub fn pause_batched_writes(&self, paused: bool) {
        self.member_writes.watch.pause(paused);
        self.refreshes.watch.pause(paused);
    }

    /// Hold (`true`) or let go the PostgreSQL batch readers (see
    /// `store::member_reads`): while held, lookups of one member queue.
    pub fn pause_batched_reads(&self, paused: bool) {
        self.member_reads.watch.pause(paused);
    }

    /// `member_write_batches` for lookups of one member by a unique key.
    pub fn member_read_batches(&self) -> (usize, usize, usize, usize) {
        self.member_reads.watch.stats()
    }

    /// `member_write_batches` for refresh-token presentations.
    pub fn refresh_batches(&self) -> (usize, usize, usize, usize) {
        self.refreshes.watch.stats()
    }

    /// Member writes sent to the PostgreSQL batch writers and not yet taken, the
    /// most tried in one batch, the most committed in one, and the batches made
    /// again write by write.
    pub fn member_write_batches(&self) -> (usize, usize, usize, usize) {
        self.member_writes.watch.stats()
    }

    /// Let the bearer-token cache ignore PostgreSQL's notifications (`true`) or
    /// not: what this process forgets by itself is then all it forgets.
    pub fn deafen_auth_cache(&self, deaf: bool) {
        if let Some(c) = self.auth_cache() {
            c.deaf.store(deaf, std::sync::atomic::Ordering::Release);
        }
    }

    /// Begin a transaction, run `q` in it, and drop it uncommitted (SQLite: roll
    /// it back).
    pub async fn abandon_transaction(&self, q: Sql) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(s) => {
                s.write(move |tx| {
                    q.lite_execute(tx)?;
                    tx.rollback();
                    Ok(())
                })
                .await
            }
            Engine::Postgres(p) => {
                let mut tx = p.begin().await?;
                q.pg_execute(&mut *tx).await?;
                drop(tx);
                Ok(())
            }
        }
    }

    /// Start the write `q` and drop it after `after`, whether it finished or not.
    pub async fn cut_off(&self, q: Sql, after: std::time::Duration) {
        let _ = tokio::time::timeout(after, self.execute(q)).await;
    }
}
