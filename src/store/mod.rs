//! Storage: the only place with SQL. SQLite (embedded default) and PostgreSQL
//! share one query text wherever they can (`$1` placeholders work on both); the
//! `on_pool!` macro compiles each query once per backend. Where the dialects differ,
//! both forms stand side by side in the function that needs them.

pub mod activity;
pub mod cursors;
pub(crate) mod fast;
pub mod members;
pub mod oauth;
/// The hot-path query list and EXPLAIN checks, for the plan test.
#[cfg(feature = "testing")]
pub mod plans;
pub mod rate_limits;
pub mod scim_sql;
pub mod sessions;
pub mod sso;
pub mod tokens;
pub mod workspaces;
pub(crate) mod writer;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Run `$body` with `$p` bound to the concrete pool of `$pool`; written like a
/// closure (`on_pool!(db.reader(), |p| query.fetch_one(p).await)`) so rustfmt formats
/// it. The body is compiled once per backend.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database. SQLite gets one writer connection (writes are serialised by the
/// pool instead of failing with SQLITE_BUSY) and several readers (WAL lets them run
/// beside the writer). PostgreSQL uses one pool for both.
#[derive(Clone, Debug)]
pub struct Db {
    read: Pool,
    write: Pool,
    /// Keyset cursors for member listings (see `cursors`); per database.
    pub(crate) cursors: std::sync::Arc<cursors::PageCursors>,
    /// The provisioning-activity writer (see `activity`); per database.
    pub(crate) activity: std::sync::Arc<activity::ActivityQueue>,
    /// Rate-limit events counted here and not yet written (see `rate_limits`).
    pub(crate) rate_counts: std::sync::Arc<rate_limits::LocalCounts>,
    /// SQLite files only: hot-path reads without sqlx's thread hops (see `fast`).
    pub(crate) fast: Option<std::sync::Arc<fast::Reader>>,
    /// SQLite: the thread that runs the hot write transactions (see `writer`).
    pub(crate) sqlite_writer: Option<std::sync::Arc<writer::Writer>>,
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
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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

/// The name of the unique constraint a write violated, if that is what failed.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Some(
            db.constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned()),
        ),
        _ => None,
    }
}

/// What SQLite may allocate in this process, page caches of every connection
/// together: past it, SQLite reuses cache pages instead of allocating more. Each
/// connection's own `cache_size` (4 MB) would otherwise let the caches of a dozen
/// connections grow with the database for as long as the server runs: the 10-minute
/// soak at 100,000 members showed SQLite's heap climbing from 6 to 23 MB while the
/// rest of the server stayed flat. The OS page cache holds the file anyway, so a
/// page not cached here is a copy away, not a disk read.
const SQLITE_HEAP_LIMIT: i64 = 24 * 1024 * 1024;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connect and apply migrations.
    pub async fn connect(url: &str) -> Result<Db> {
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // 4 MB of page cache per connection: the OS page cache holds the
                // file anyway (and is not the server's memory); 16 MB on each of nine
                // connections let the resident size grow past 130 MB at 20,000
                // members (rollcall-bench).
                .pragma("cache_size", "-4000")
                .pragma("temp_store", "memory");
            // An in-memory database exists once per connection: one connection only.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let fast = (!in_memory)
                .then(|| std::sync::Arc::new(fast::Reader::new(opts.get_filename().to_owned())));
            // No ping before each use (sqlx's default): a SQLite connection is a file
            // handle on a worker thread, and the ping was one more round trip to that
            // thread for every statement.
            let write = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .connect_with(opts.clone())
                .await?;
            let read = if in_memory {
                write.clone()
            } else {
                // WAL readers run beside the writer; more than two per core only
                // adds memory and switching.
                SqlitePoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(4)
                    .min_connections(1)
                    .connect_with(opts.read_only(true))
                    .await?
            };
            SQLITE_MIGRATIONS.run(&write).await?;
            // SAFETY: sets SQLite's process-wide advisory heap limit; no pointers.
            unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(SQLITE_HEAP_LIMIT) };
            let sqlite_writer = writer::Writer::start(write.clone()).map_err(sqlx::Error::Io)?;
            Db {
                read: Pool::Sqlite(read),
                write: Pool::Sqlite(write),
                cursors: Default::default(),
                activity: Default::default(),
                rate_counts: Default::default(),
                fast,
                sqlite_writer: Some(std::sync::Arc::new(sqlite_writer)),
            }
        } else {
            let opts = PgConnectOptions::from_str(url)?;
            // sqlx pings a connection before every use by default: a network round
            // trip per query. Ping only connections that sat idle (a restarted server
            // or a proxy may have dropped them).
            let pool = PgPoolOptions::new()
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > Duration::from_secs(10) {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Db {
                read: Pool::Postgres(pool.clone()),
                write: Pool::Postgres(pool),
                cursors: Default::default(),
                activity: Default::default(),
                rate_counts: Default::default(),
                fast: None,
                sqlite_writer: None,
            }
        };
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        match self.write {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The thread-hop-free SQLite reader, when there is one (see `fast`).
    pub(crate) fn fast(&self) -> Option<&fast::Reader> {
        self.fast.as_deref()
    }

    /// SQLite: the writer thread, for the hot write transactions (see `writer`).
    pub(crate) fn sqlite_writer(&self) -> Option<&writer::Writer> {
        self.sqlite_writer.as_deref()
    }

    pub fn reader(&self) -> &Pool {
        &self.read
    }

    pub fn writer(&self) -> &Pool {
        &self.write
    }

    /// Connections in each pool, for `/metrics`.
    pub fn pool_use(&self) -> Vec<crate::metrics::PoolUse> {
        let figures = |name: &'static str, pool: &Pool| {
            let (size, idle, max) = on_pool!(pool, |p| (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections()
            ));
            crate::metrics::PoolUse {
                pool: name,
                size,
                idle,
                max,
            }
        };
        match self.backend() {
            Backend::Sqlite => vec![figures("read", &self.read), figures("write", &self.write)],
            Backend::Postgres => vec![figures("shared", &self.write)],
        }
    }

    /// Bytes SQLite has allocated in this process (every connection's page cache
    /// and prepared statements), for `/metrics`; None on PostgreSQL.
    pub fn sqlite_heap(&self) -> Option<i64> {
        // SAFETY: sqlite3_memory_used only reads SQLite's global allocation counter.
        (self.backend() == Backend::Sqlite).then(|| unsafe { rusqlite::ffi::sqlite3_memory_used() })
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.read, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        activity::flush(self).await;
        on_pool!(&self.read, |p| p.close().await);
        on_pool!(&self.write, |p| p.close().await);
    }
}
