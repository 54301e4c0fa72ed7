//! The SQLite write path: one thread runs the hot write transactions back to back,
//! many to a commit.
//!
//! SQLite has one writer. Through sqlx, a write transaction (BEGIN, INSERT, email
//! rows, COMMIT; eight statements for a refresh-token rotation) holds the one writer
//! connection across a round trip to sqlx's worker thread per statement, and on a
//! busy server each answer also waits for an async worker to be free: the writer
//! sat idle between statements while every other write queued (`rollcall-bench`
//! showed the server using under one of its two cores during the write cases).
//!
//! Here a write is a closure sent to this thread. The thread borrows sqlx's writer
//! connection (its raw handle, through `lock_handle`, so sqlx's own writes and these
//! still share one connection and never meet a busy database), and runs every
//! closure waiting, each in a savepoint of one `BEGIN IMMEDIATE` transaction: a
//! closure that fails or refuses is rolled back to its savepoint alone, and one
//! COMMIT (one WAL append) covers the lot. Answers go back after the COMMIT, so a
//! write acknowledged to a client is committed.

use super::{Result, StoreError};
use rusqlite::Connection;
use std::cell::Cell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most closures in one transaction.
const BATCH: usize = 64;
/// How long the thread keeps sqlx's writer connection while work keeps arriving,
/// before letting sqlx's own writes have it.
const HOLD: Duration = Duration::from_millis(20);

/// A write transaction's view of the connection, inside its savepoint.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    undo: Cell<bool>,
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
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn FnOnce(Result<(), String>) + Send>;
    /// Answer with an error without running.
    fn fail(self: Box<Self>, why: String);
}

struct Typed<F, T, E> {
    f: F,
    reply: tokio::sync::oneshot::Sender<std::result::Result<T, E>>,
}

fn failed(why: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(format!("sqlite write: {why}")))
}

impl<F, T, E> Job for Typed<F, T, E>
where
    F: FnOnce(&Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn FnOnce(Result<(), String>) + Send> {
        let Typed { f, reply } = *self;
        let out = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(E::from(failed(&e.to_string()))),
            Ok(()) => {
                let tx = Tx {
                    conn,
                    undo: Cell::new(false),
                };
                let out = f(&tx);
                let end = if out.is_err() || tx.undo.get() {
                    "ROLLBACK TO job; RELEASE job"
                } else {
                    "RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => out,
                    Err(e) => Err(E::from(failed(&e.to_string()))),
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

/// The handle requests send their writes through; one per SQLite database.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Start the writer thread for `pool` (the one-connection SQLite writer pool).
    /// Must be called within the Tokio runtime that serves the pool.
    pub(crate) fn start(pool: sqlx::SqlitePool) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("rollcall-sqlite-writer".into())
            .spawn(move || run(pool, runtime, rx))?;
        Ok(Writer { jobs })
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
        if self.jobs.send(Box::new(Typed { f, reply })).is_err() {
            return Err(E::from(failed("the writer thread has stopped")));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(E::from(failed("the writer thread has stopped"))))
    }
}

/// The writer thread: wait for work, borrow the connection, run batches until the
/// queue is empty (or `HOLD` has passed), give the connection back.
fn run(pool: sqlx::SqlitePool, runtime: tokio::runtime::Handle, rx: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = rx.recv() {
        let mut first = Some(first);
        let borrowed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                let mut conn = pool.acquire().await?;
                let mut handle = conn.lock_handle().await?;
                // SAFETY: sqlx's worker thread leaves the handle alone until `handle` is
                // dropped, at the end of this block, after `c`; `from_handle` never closes
                // it. sqlx and rusqlite link the same libsqlite3-sys, so the pointer types
                // are one and the same.
                let c = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) }
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let since = Instant::now();
                loop {
                    let mut batch: Vec<Box<dyn Job>> = first.take().into_iter().collect();
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                    commit_batch(&c, batch);
                    if since.elapsed() > HOLD {
                        break;
                    }
                }
                drop(c);
                Ok::<_, sqlx::Error>(())
            })
        }));
        match borrowed {
            Ok(Ok(())) => {}
            // No connection: whoever was first in line hears why.
            Ok(Err(e)) => {
                if let Some(job) = first.take() {
                    job.fail(e.to_string());
                }
            }
            // The runtime is gone (shutting down): nothing more can be written.
            Err(_) => return,
        }
    }
}

/// One transaction for `batch`: each job in its savepoint, one COMMIT, then the answers.
fn commit_batch(c: &Connection, batch: Vec<Box<dyn Job>>) {
    if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
        for job in batch {
            job.fail(e.to_string());
        }
        return;
    }
    let mut deliveries = Vec::with_capacity(batch.len());
    for job in batch {
        // A panicking job answers with an error (its reply is dropped) and leaves
        // nothing behind; the others in the batch go on.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(c))) {
            Ok(deliver) => deliveries.push(deliver),
            Err(_) => {
                let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
            }
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
    use crate::store::Db;

    async fn db(dir: &std::path::Path) -> Db {
        let db = Db::connect(&format!("sqlite://{}/w.db", dir.display()))
            .await
            .unwrap();
        db.sqlite_writer()
            .unwrap()
            .write(|tx| {
                tx.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
                    .map_err(crate::store::fast::fail)
            })
            .await
            .unwrap();
        db
    }

    fn insert(x: i64) -> impl FnOnce(&super::Tx<'_>) -> crate::store::Result<usize> {
        move |tx| {
            tx.execute("INSERT INTO t (x) VALUES (?1)", [x])
                .map_err(crate::store::fast::fail)
        }
    }

    async fn rows(db: &Db) -> Vec<i64> {
        db.sqlite_writer()
            .unwrap()
            .write(|tx| {
                let mut s = tx.prepare("SELECT x FROM t ORDER BY x").unwrap();
                let v = s.query_map([], |r| r.get(0)).unwrap();
                Ok::<_, crate::store::StoreError>(v.map(Result::unwrap).collect())
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_write_stands_or_falls_alone_within_a_batch() {
        let dir = std::env::temp_dir().join(format!("rollcall-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = db(&dir).await;
        let w = db.sqlite_writer().unwrap();
        // Sent together, so they share transactions: a conflict, a refusal that
        // undoes its own insert, and a panic must not touch the others.
        let (a, dup, refused, panicked, b) = tokio::join!(
            w.write(insert(1)),
            w.write(insert(1)),
            w.write(|tx| {
                insert(7)(tx)?;
                tx.rollback();
                Ok::<_, crate::store::StoreError>("refused")
            }),
            w.write(|tx| -> crate::store::Result<()> {
                insert(8)(tx)?;
                panic!("a bug in a write")
            }),
            w.write(insert(2)),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(dup.is_err(), "the second insert of 1 conflicts");
        assert_eq!(refused.unwrap(), "refused");
        assert!(panicked.is_err());
        assert_eq!(b.unwrap(), 1);
        assert_eq!(rows(&db).await, vec![1, 2]);
        // The writer goes on after all that.
        w.write(insert(3)).await.unwrap();
        assert_eq!(rows(&db).await, vec![1, 2, 3]);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
