//! SQLite, through rusqlite: read-only connections that run reads on the thread
//! that asks, and one write thread that owns the only read-write connection.
//!
//! Reads. The reads on every SCIM request (the bearer token) and the ones IdPs send
//! most (a member by id, the userName / externalId / email existence check) are
//! index lookups of a few microseconds, so they run synchronously on the async
//! worker that asked, on read-only WAL connections (which never wait for the
//! writer). A read marked `Sql::slow` (a list page, a count) runs on Tokio's
//! blocking pool instead, so a scan never holds up the async workers. (A connection
//! on a thread of its own, as sqlx-sqlite has, costs two thread hand-offs per
//! statement: profiling showed about half the server's time in the kernel switching
//! threads for that, against under 2 % in SQLite itself.)
//!
//! Writes. SQLite has one writer. Every write is a closure sent to the write
//! thread, which runs the closures waiting back to back, each in a savepoint of one
//! `BEGIN IMMEDIATE` transaction: a closure that fails or refuses is rolled back to
//! its savepoint alone, and one COMMIT (one WAL append) covers the lot. Answers go
//! back after the COMMIT, so a write acknowledged to a client is committed.
//!
//! Checkpoints. Copying the WAL back into the database file (and syncing both) is
//! SQLite's one slow step: done by the committing connection, as SQLite does by
//! default every 1,000 pages, it held up every write queued behind it (writes' p99
//! was four times their median). A thread of its own does it, on its own
//! connection, a moment after writes were committed (a PASSIVE checkpoint copies
//! alongside the writer and readers, waiting for neither); should the WAL still
//! grow past `WAL_RESTART_FRAMES` under a steady stream of writes, it waits for a
//! gap between batches to copy all of it and start the WAL from the beginning.
//!
//! An in-memory database exists once per connection, so there the write thread's
//! connection serves the reads too.

use super::sql::{FromRow, Sql};
use super::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most closures in one transaction.
const BATCH: usize = 64;
/// After a commit, how long the checkpoint thread waits for more before it copies
/// the WAL back (so one checkpoint covers many batches).
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which a checkpoint waits for the writer to pause and
/// starts the WAL over, rather than letting it grow (16,384 pages: 64 MB). Rare on
/// purpose: the writer waits for it (tens of milliseconds), and at 4,000 pages it
/// came every second or two under a steady stream of writes, doubling their p99.
/// Otherwise the WAL starts over by itself whenever a checkpoint catches up before
/// the next batch, which is every pause in the writes.
const WAL_RESTART_FRAMES: i64 = 16_384;
/// Idle read connections kept; at most one per thread is busy at a time.
const KEEP_READERS: usize = 8;

/// What SQLite may allocate in this process, page caches of every connection
/// together: past it, SQLite reuses cache pages instead of allocating more. Each
/// connection's own `cache_size` (4 MB) would otherwise let the caches of a dozen
/// connections grow with the database for as long as the server runs: the 10-minute
/// soak at 100,000 members showed SQLite's heap climbing from 6 to 23 MB while the
/// rest of the server stayed flat. The OS page cache holds the file anyway, so a
/// page not cached here is a copy away, not a disk read.
const HEAP_LIMIT: i64 = 24 * 1024 * 1024;

/// The SQL migrations, embedded at build time (applied here, recorded in the same
/// `_sqlx_migrations` table earlier versions kept, so either can open the other's
/// files).
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database: its read connections and its write thread.
#[derive(Debug)]
pub(crate) struct Sqlite {
    /// The file; None for an in-memory database.
    path: Option<PathBuf>,
    idle: Mutex<Vec<Connection>>,
    opened: AtomicU32,
    /// Slow reads (scans) running at once: more only queue for the disk and the
    /// two cores, and each would open a connection of its own.
    scans: tokio::sync::Semaphore,
    writes: mpsc::Sender<Box<dyn Job>>,
}

/// Slow reads at once.
const SCANS: usize = 4;

/// The connection settings both kinds of connection share. 4 MB of page cache per
/// connection: the OS page cache holds the file anyway (and is not the server's
/// memory); 16 MB on each of nine connections let the resident size grow past
/// 130 MB at 20,000 members (rollcall-bench).
const PRAGMAS: &str =
    "PRAGMA cache_size = -4000; PRAGMA temp_store = memory; PRAGMA foreign_keys = ON;";

impl Sqlite {
    /// Open `url` (`sqlite://FILE`, `sqlite:FILE`, `sqlite::memory:`), creating the
    /// file if missing, apply the migrations and start the write thread.
    pub(crate) fn open(url: &str) -> Result<Sqlite> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Config(format!("not a SQLite URL: {url}")))?;
        let (file, _query) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = file == ":memory:" || file.is_empty() || url.contains("mode=memory");
        let conn = if in_memory {
            Connection::open_in_memory()?
        } else {
            Connection::open_with_flags(
                file,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?
        };
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(PRAGMAS)?;
        if !in_memory {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Checkpoints are the checkpoint thread's (see the module documentation).
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // After a burst the WAL file is cut back to this when it starts over.
            conn.pragma_update(None, "journal_size_limit", WAL_RESTART_FRAMES * 4096)?;
        }
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&conn)?;
        limit_heap(HEAP_LIMIT);
        let (writes, jobs) = mpsc::channel::<Box<dyn Job>>();
        // Told after each committed batch; ends when the write thread does.
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        if !in_memory {
            let checkpointer = Self::open_side(
                std::path::Path::new(file),
                OpenFlags::SQLITE_OPEN_READ_WRITE,
            )?;
            spawn_thread("checkpoint", move || {
                checkpoint_thread(checkpointer, commits)
            })?;
        }
        spawn_thread("write", move || write_thread(conn, jobs, committed))?;
        Ok(Sqlite {
            path: (!in_memory).then(|| PathBuf::from(file)),
            idle: Mutex::new(Vec::new()),
            opened: AtomicU32::new(0),
            scans: tokio::sync::Semaphore::new(SCANS),
            writes,
        })
    }

    /// A connection beside the writer's (a reader, the checkpointer), with `flags`.
    fn open_side(path: &std::path::Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(PRAGMAS)?;
        Ok(conn)
    }

    fn open_reader(path: &std::path::Path) -> rusqlite::Result<Connection> {
        let conn = Self::open_side(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.execute_batch("PRAGMA query_only = 1;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Run `f` on a read connection, on this thread (the write thread's connection
    /// for an in-memory database).
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            unreachable!("in-memory reads go through the write thread")
        };
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Self::open_reader(path)?;
                self.opened.fetch_add(1, Ordering::Relaxed);
                c
            }
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP_READERS {
            idle.push(conn);
        } else {
            self.opened.fetch_sub(1, Ordering::Relaxed);
        }
        out
    }

    /// Run a read: inline, or on the blocking pool when `q` is slow.
    pub(crate) async fn read<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        q: Sql,
        f: fn(&Sql, &Connection) -> Result<T>,
    ) -> Result<T> {
        if self.path.is_none() {
            return self.write(move |tx| f(&q, tx)).await;
        }
        if !q.is_slow() {
            return self.with_reader(|c| f(&q, c));
        }
        let _turn = self
            .scans
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.with_reader(|c| f(&q, c)))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a SQLite read stopped: {e}")))?
    }

    pub(crate) async fn read_all<T: FromRow + Send + 'static>(
        self: &std::sync::Arc<Self>,
        q: Sql,
    ) -> Result<Vec<T>> {
        self.read(q, |q, c| q.lite_all(c)).await
    }

    pub(crate) async fn read_optional<T: FromRow + Send + 'static>(
        self: &std::sync::Arc<Self>,
        q: Sql,
    ) -> Result<Option<T>> {
        self.read(q, |q, c| q.lite_optional(c)).await
    }

    /// Run `f` as a write transaction (see the module documentation). Its changes
    /// are committed when it returns `Ok` and has not called `Tx::rollback`, and
    /// undone otherwise; either way the answer comes after the commit.
    pub(crate) async fn write<F, T, E>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.writes.send(Box::new(Typed { f, reply })).is_err() {
            return Err(E::from(stopped()));
        }
        // No answer: the write panicked (and was rolled back) or the thread stopped.
        answer.await.unwrap_or_else(|_| {
            Err(E::from(failed(
                "the write did not finish; nothing of it was kept",
            )))
        })
    }

    /// Before the process ends: fold the WAL back into the database file (so it is
    /// whole on its own, as closing the last connection would) and drop the idle
    /// read connections.
    pub(crate) async fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if self.path.is_some() {
            let _ = self
                .write(|tx| {
                    // A checkpoint cannot run inside the batch's transaction: ask for
                    // it after (see `write_thread`).
                    tx.checkpoint_after.set(true);
                    Ok::<_, StoreError>(())
                })
                .await;
        }
    }

    /// Read connections open, idle, and the most kept idle; for `/metrics`.
    pub(crate) fn readers(&self) -> (u32, u32, u32) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len() as u32;
        let opened = self.opened.load(Ordering::Relaxed);
        (opened.max(idle), idle, KEEP_READERS as u32)
    }
}

/// Start the SQLite thread `rollcall-sqlite-<what>`.
fn spawn_thread(what: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(format!("rollcall-sqlite-{what}"))
        .spawn(f)
        .map(|_| ())
        .map_err(|e| StoreError::Config(format!("could not start the SQLite {what} thread: {e}")))
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite write thread has stopped".into())
}

/// Set SQLite's process-wide soft heap limit (`HEAP_LIMIT`). One of the two calls
/// into SQLite's C API outside rusqlite; `tests::heap_calls` pins both.
fn limit_heap(bytes: i64) {
    // SAFETY: sqlite3_soft_heap_limit64 takes and returns integers only and is
    // thread-safe; it sets an advisory limit, no memory is handed over.
    unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(bytes) };
}

/// Bytes SQLite has allocated in this process (every connection's page cache and
/// prepared statements), for `/metrics`.
pub(crate) fn heap_used() -> i64 {
    // SAFETY: sqlite3_memory_used takes no arguments and only reads SQLite's global
    // allocation counter.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// Apply the migrations not yet applied, each in its own transaction with its row in
/// `_sqlx_migrations`, refusing a database whose applied migrations differ from
/// these (edited, failed half-way, or from a newer Rollcall), as sqlx's migrator did.
fn migrate(c: &Connection) -> Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )?;
    let applied: Vec<(i64, bool, Vec<u8>)> = {
        let mut stmt =
            c.prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get("version")?, r.get("success")?, r.get("checksum")?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let known = |v: i64| MIGRATIONS.iter().find(|m| m.version == v);
    for (version, success, checksum) in &applied {
        let fail = |why: &str| Err(StoreError::Migrate(format!("migration {version} {why}")));
        if !success {
            return fail("failed part-way earlier; the database needs repair by hand");
        }
        match known(*version) {
            None => return fail("was applied by a newer Rollcall; run that version"),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return fail("was changed after it was applied");
            }
            Some(_) => {}
        }
    }
    for m in MIGRATIONS.iter() {
        if m.migration_type.is_down_migration() || applied.iter().any(|(v, ..)| *v == m.version) {
            continue;
        }
        let started = Instant::now();
        c.execute_batch("BEGIN")?;
        let done = c
            .execute_batch(&m.sql)
            .and_then(|()| foreign_keys_hold(c))
            .and_then(|()| {
            c.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![
                    m.version,
                    m.description.as_ref(),
                    m.checksum.as_ref(),
                    started.elapsed().as_nanos() as i64
                ],
            )
        });
        // A COMMIT refused (deferred foreign keys) leaves the transaction open.
        match done.and_then(|_| c.execute_batch("COMMIT")) {
            Ok(()) => {}
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                return Err(StoreError::Migrate(format!(
                    "migration {} ({}) failed: {e}",
                    m.version, m.description
                )));
            }
        }
    }
    Ok(())
}

/// Every foreign key holds. Run before a migration commits: a migration that
/// rebuilds a table (SQLite cannot drop NOT NULL) defers the checks, and this names
/// what it broke, if anything, instead of COMMIT's bare refusal.
fn foreign_keys_hold(c: &Connection) -> rusqlite::Result<()> {
    let mut stmt = c.prepare("PRAGMA foreign_key_check")?;
    let broken: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    match broken.first() {
        None => Ok(()),
        Some(table) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(format!(
                "{} row(s) of {table} (and others) refer to rows that are gone",
                broken.len()
            )),
        )),
    }
}

/// A write transaction's view of the connection, inside its savepoint.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    undo: Cell<bool>,
    checkpoint_after: &'c Cell<bool>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Tx<'_> {
    /// Undo what this closure wrote, though it returns `Ok` (a refusal that is an
    /// answer, not an error).
    pub(crate) fn rollback(&self) {
        self.undo.set(true);
    }
}

/// One queued write, its types hidden.
trait Job: Send {
    /// Run inside the batch's transaction; the returned closure delivers the result
    /// once the transaction's fate is known.
    fn run(
        self: Box<Self>,
        conn: &Connection,
        checkpoint_after: &Cell<bool>,
    ) -> Box<dyn FnOnce(Result<(), String>) + Send>;
    /// Answer with an error without running.
    fn fail(self: Box<Self>, why: String);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

struct Typed<F, T, E> {
    f: F,
    reply: tokio::sync::oneshot::Sender<std::result::Result<T, E>>,
}

fn failed(why: &str) -> StoreError {
    StoreError::Unavailable(format!("SQLite write: {why}"))
}

impl<F, T, E> Job for Typed<F, T, E>
where
    F: FnOnce(&Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(
        self: Box<Self>,
        conn: &Connection,
        checkpoint_after: &Cell<bool>,
    ) -> Box<dyn FnOnce(Result<(), String>) + Send> {
        let Typed { f, reply } = *self;
        let out = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(E::from(e.into())),
            Ok(()) => {
                let tx = Tx {
                    conn,
                    undo: Cell::new(false),
                    checkpoint_after,
                };
                let out = f(&tx);
                let end = if out.is_err() || tx.undo.get() {
                    "ROLLBACK TO job; RELEASE job"
                } else {
                    "RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => out,
                    Err(e) => Err(E::from(e.into())),
                }
            }
        };
        Box::new(move |committed| {
            let answer = match committed {
                Ok(()) => out,
                Err(why) => Err(E::from(failed(&why))),
            };
            let _ = reply.send(answer);
        })
    }

    fn fail(self: Box<Self>, why: String) {
        let _ = self.reply.send(Err(E::from(failed(&why))));
    }
}

/// The checkpoint thread: after writes were committed (and a moment more), copy the
/// WAL back into the database file; when the WAL has grown long, copy all of it and
/// start it over (waiting for the writer to pause between batches).
fn checkpoint_thread(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_DELAY);
        let _ = commits.try_recv();
        let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        let restart = match frames {
            Ok(frames) => frames > WAL_RESTART_FRAMES,
            Err(e) => {
                tracing::warn!(error = %e, "could not checkpoint the SQLite WAL");
                false
            }
        };
        if restart && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(RESTART)") {
            tracing::warn!(error = %e, "could not restart the SQLite WAL");
        }
    }
}

/// The write thread: wait for work, then run batches until the queue is empty.
/// `committed` hears of each batch (for the checkpoint thread).
fn write_thread(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    committed: mpsc::SyncSender<()>,
) {
    let checkpoint = Cell::new(false);
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch, &checkpoint);
        // Full: the checkpoint thread will look anyway.
        let _ = committed.try_send(());
        if checkpoint.take()
            && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        {
            tracing::warn!(error = %e, "could not checkpoint the SQLite WAL");
        }
    }
}

/// One transaction for `batch`: each job in its savepoint, one COMMIT, then the answers.
fn commit_batch(c: &Connection, batch: Vec<Box<dyn Job>>, checkpoint: &Cell<bool>) {
    if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
        for job in batch {
            job.fail(e.to_string());
        }
        return;
    }
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    for job in jobs.by_ref() {
        // A panicking job answers with an error (its reply is dropped) and leaves
        // nothing behind; the others in the batch go on.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(c, checkpoint))) {
            Ok(deliver) => deliveries.push(deliver),
            Err(_) => {
                let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
        // Some errors (a full disk, I/O, out of memory) make SQLite roll back the
        // whole transaction: everything run so far is gone, and what follows must
        // not run outside a transaction.
        if c.is_autocommit() {
            let why = "SQLite rolled the transaction back".to_owned();
            for deliver in deliveries {
                deliver(Err(why.clone()));
            }
            for job in jobs {
                job.fail(why.clone());
            }
            return;
        }
    }
    let committed = c.execute_batch("COMMIT").map_err(|e| {
        let _ = c.execute_batch("ROLLBACK");
        e.to_string()
    });
    for deliver in deliveries {
        deliver(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::sql;

    fn open(dir: &std::path::Path) -> std::sync::Arc<Sqlite> {
        std::sync::Arc::new(Sqlite::open(&format!("sqlite://{}/w.db", dir.display())).unwrap())
    }

    /// A fresh database file with one table `t (x)`.
    async fn with_table() -> (std::path::PathBuf, std::sync::Arc<Sqlite>) {
        let dir = std::env::temp_dir().join(format!("rollcall-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = open(&dir);
        db.write(|tx| {
            Ok::<_, StoreError>(tx.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")?)
        })
        .await
        .unwrap();
        (dir, db)
    }

    fn insert(x: i64) -> impl FnOnce(&Tx<'_>) -> Result<u64> {
        move |tx| {
            sql("INSERT INTO t (x) VALUES ($1)")
                .bind(x)
                .lite_execute(tx)
        }
    }

    async fn rows(db: &std::sync::Arc<Sqlite>) -> Vec<i64> {
        db.read_all(sql("SELECT x FROM t ORDER BY x").slow())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_write_stands_or_falls_alone_within_a_batch() {
        let (dir, db) = with_table().await;
        // Sent together, so they share transactions: a conflict, a refusal that
        // undoes its own insert, and a panic must not touch the others.
        let (a, dup, refused, panicked, b) = tokio::join!(
            db.write(insert(1)),
            db.write(insert(1)),
            db.write(|tx| {
                insert(7)(tx)?;
                tx.rollback();
                Ok::<_, StoreError>("refused")
            }),
            db.write(|tx| -> Result<()> {
                insert(8)(tx)?;
                panic!("a bug in a write")
            }),
            db.write(insert(2)),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(dup.is_err(), "the second insert of 1 conflicts");
        assert_eq!(refused.unwrap(), "refused");
        assert!(panicked.is_err());
        assert_eq!(b.unwrap(), 1);
        assert_eq!(rows(&db).await, vec![1, 2]);
        // The writer goes on after all that; reads inline and slow see the same.
        db.write(insert(3)).await.unwrap();
        assert_eq!(rows(&db).await, vec![1, 2, 3]);
        let inline: Vec<i64> = db
            .read_all(sql("SELECT x FROM t ORDER BY x"))
            .await
            .unwrap();
        assert_eq!(inline, vec![1, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A job for `commit_batch` and the receiver of its answer.
    fn job<F, T>(f: F) -> (Box<dyn Job>, tokio::sync::oneshot::Receiver<Result<T>>)
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        (Box::new(Typed { f, reply }), answer)
    }

    #[test]
    fn a_batch_sqlite_rolled_back_whole_fails_whole_and_runs_no_more() {
        // The batch is handed to `commit_batch` whole: sent through the writer
        // thread, a loaded machine may split it (as CI once did).
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        // What a full disk does: SQLite ends the transaction under the batch. (Here
        // a job does it by hand.) Nothing of the batch may stay, and every job
        // hears so; none runs outside the transaction.
        let (a, mut a_answer) = job(insert(1));
        let (lost, mut lost_answer) = job(|tx| Ok::<_, StoreError>(tx.execute_batch("ROLLBACK")?));
        let (b, mut b_answer) = job(insert(2));
        commit_batch(&c, vec![a, lost, b], &Cell::new(false));
        let (a, lost, b) = (
            a_answer.try_recv().unwrap(),
            lost_answer.try_recv().unwrap(),
            b_answer.try_recv().unwrap(),
        );
        assert!(
            a.is_err() && lost.is_err() && b.is_err(),
            "{a:?} {lost:?} {b:?}"
        );
        let rows = |c: &Connection| -> Vec<i64> {
            let mut q = c.prepare("SELECT x FROM t ORDER BY x").unwrap();
            q.query_map([], |r| r.get(0))
                .unwrap()
                .map(|x| x.unwrap())
                .collect()
        };
        assert_eq!(rows(&c), Vec::<i64>::new());
        // The next batch runs in a transaction of its own again.
        let (again, mut again_answer) = job(insert(3));
        commit_batch(&c, vec![again], &Cell::new(false));
        assert_eq!(again_answer.try_recv().unwrap().unwrap(), 1);
        assert_eq!(rows(&c), vec![3]);
    }

    /// The writer does not checkpoint (so no write waits behind one); the
    /// checkpoint thread does, so the WAL stays bounded under a steady stream of
    /// writes, and the database file catches up a moment after the last write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpoint_thread_keeps_the_wal_short() {
        let (dir, db) = with_table().await;
        db.write(|tx| {
            Ok::<_, StoreError>(tx.execute_batch("CREATE TABLE b (x INTEGER PRIMARY KEY, v BLOB)")?)
        })
        .await
        .unwrap();
        // 40,000 rows of 4 KB: over 160 MB through the WAL, 64 writes at a time.
        for burst in 0..625i64 {
            let writes = (0..64i64).map(|i| {
                db.write(move |tx| {
                    sql("INSERT INTO b (x, v) VALUES ($1, zeroblob(4096))")
                        .bind(burst * 64 + i)
                        .lite_execute(tx)
                })
            });
            for w in futures_util::future::join_all(writes).await {
                w.unwrap();
            }
        }
        // A moment after the last write, the database file holds it all: a copy of
        // the file alone (no WAL) has every row.
        let mut rows = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let copy = dir.join("copy.db");
            std::fs::copy(dir.join("w.db"), &copy).unwrap();
            rows = Connection::open(&copy)
                .unwrap()
                .query_row("SELECT COUNT(*) FROM b", [], |r| r.get::<_, i64>(0))
                .unwrap_or(0);
            let _ = std::fs::remove_file(&copy);
            if rows == 40_000 {
                break;
            }
        }
        assert_eq!(rows, 40_000, "the database file has not caught up");
        // So a write soon after (once the checkpoint has finished) starts the WAL
        // over, and the file is cut back.
        let mut wal = u64::MAX;
        for x in 1..50 {
            db.write(insert(x)).await.unwrap();
            wal = std::fs::metadata(dir.join("w.db-wal")).unwrap().len();
            if wal <= WAL_RESTART_FRAMES as u64 * 4096 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            wal <= WAL_RESTART_FRAMES as u64 * 4096,
            "the WAL is {} MB",
            wal >> 20
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_in_memory_database_reads_what_it_wrote() {
        let db = std::sync::Arc::new(Sqlite::open("sqlite::memory:").unwrap());
        let n: Option<i64> = db
            .read_optional(sql("SELECT COUNT(*) FROM workspaces"))
            .await
            .unwrap();
        assert_eq!(n, Some(0), "the migrations ran on the one connection");
    }

    #[test]
    fn migrations_apply_once_and_edited_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("rollcall-migrate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Connection::open(dir.join("m.db")).unwrap();
        migrate(&c).unwrap();
        migrate(&c).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n as usize, MIGRATIONS.iter().count());
        c.execute("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = (SELECT MIN(version) FROM _sqlx_migrations)", [])
            .unwrap();
        assert!(matches!(migrate(&c), Err(StoreError::Migrate(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Migration 0014 rebuilds oauth_grants (member_id becomes nullable) under codes
    /// and tokens that refer to it: every row survives, with its id, and the foreign
    /// keys hold and are enforced after.
    #[test]
    fn the_grants_rebuild_keeps_grants_codes_and_tokens() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(PRAGMAS).unwrap();
        c.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version < 14) {
            c.execute_batch(&m.sql).unwrap();
            c.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, 0)",
                rusqlite::params![m.version, m.description.as_ref(), m.checksum.as_ref()],
            )
            .unwrap();
        }
        let t = "2026-01-01T00:00:00Z";
        c.execute_batch(&format!(
            "INSERT INTO workspaces (id, subdomain, name, created_at) VALUES (1, 'acme', 'Acme', '{t}');
             INSERT INTO members (id, workspace_id, user_name, user_name_ci, role, resource, created_at, updated_at)
               VALUES (x'01', 1, 'a@acme.test', 'a@acme.test', 'admin', '{{}}', '{t}', '{t}');
             INSERT INTO oauth_clients (id, name, public, secret_digest, redirect_uris, scopes, created_at)
               VALUES ('c', 'Okta', FALSE, x'00', '[]', 'scim:read', '{t}');
             INSERT INTO oauth_grants (id, client_id, workspace_id, member_id, scope, created_at, revoked_at, ended_reason)
               VALUES (7, 'c', 1, x'01', 'scim:read', '{t}', NULL, NULL),
                      (9, 'c', 1, x'01', 'scim:read', '{t}', '{t}', 'revoked');
             INSERT INTO oauth_codes (digest, client_id, workspace_id, member_id, redirect_uri, scope, created_at, expires_at, grant_id)
               VALUES (x'aa', 'c', 1, x'01', 'https://x/cb', 'scim:read', '{t}', '{t}', 9);
             INSERT INTO oauth_tokens (grant_id, kind, digest, scope, issued_at, expires_at)
               VALUES (7, 'access', x'b1', 'scim:read', '{t}', '{t}'), (9, 'refresh', x'b2', 'scim:read', '{t}', '{t}');"
        ))
        .unwrap();
        migrate(&c).unwrap();
        let grants: Vec<(i64, Option<Vec<u8>>, Option<String>)> = c
            .prepare("SELECT id, member_id, ended_reason FROM oauth_grants ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            grants,
            vec![
                (7, Some(vec![1]), None),
                (9, Some(vec![1]), Some("revoked".into()))
            ]
        );
        let tokens: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tokens, 2);
        assert!(foreign_keys_hold(&c).is_ok());
        // Still enforced: a token of no grant, a grant neither member's nor a client's own.
        assert!(c.execute_batch(&format!(
            "INSERT INTO oauth_tokens (grant_id, kind, digest, scope, issued_at, expires_at) VALUES (99, 'access', x'b3', '', '{t}', '{t}')"
        )).is_err());
        assert!(c.execute_batch(&format!(
            "INSERT INTO oauth_grants (client_id, workspace_id, scope, created_at) VALUES ('c', 1, '', '{t}')"
        )).is_err());
        c.execute_batch(&format!(
            "INSERT INTO oauth_grants (client_id, workspace_id, scope, created_at, secret_generation) VALUES ('c', 1, '', '{t}', 1)"
        ))
        .unwrap();
    }

    /// A migration that leaves a reference dangling is rolled back whole.
    #[test]
    fn a_migration_that_breaks_a_foreign_key_is_refused() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); \
             CREATE TABLE k (p INTEGER REFERENCES p (id)); INSERT INTO p VALUES (1); INSERT INTO k VALUES (1);",
        )
        .unwrap();
        c.execute_batch("BEGIN; PRAGMA defer_foreign_keys = ON; DELETE FROM p;")
            .unwrap();
        assert!(foreign_keys_hold(&c).is_err());
        c.execute_batch("ROLLBACK").unwrap();
        assert!(foreign_keys_hold(&c).is_ok());
    }

    /// The two raw calls into SQLite's C API (the only `unsafe` in the store).
    #[test]
    fn heap_calls() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            .unwrap();
        assert!(heap_used() > 0, "SQLite's allocations are counted");
        limit_heap(HEAP_LIMIT);
        // SAFETY: as in limit_heap; a negative argument only reads the limit.
        let now = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
        assert_eq!(now, HEAP_LIMIT);
    }
}
