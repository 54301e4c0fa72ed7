//! PostgreSQL: writes queued and made many to a transaction.
//!
//! One write on its own is a transaction of its own: several round trips, each a
//! wake-up of a server backend, and a commit. Under load on a small machine that
//! per-statement work was PostgreSQL's share of the CPU and the limit of SCIM
//! writes and token refreshes (rollcall-bench: a core's worth for 1,600 writes a
//! second). A [`Queue`] hands what is queued when a writer is free to
//! [`Batched::together`], which makes the lot with a few statements over JSON
//! arrays in one transaction; each caller is answered after that commit, as
//! before: acknowledged means committed.
//!
//! A batch that fails before its commit (a unique index, a deadlock with some other
//! transaction, a value PostgreSQL refuses) is rolled back, and each of its writes
//! is then made on its own ([`Batched::alone`]), so an error is only its own
//! write's. A failed commit is not tried again (it may have happened): every write
//! of the batch gets the error, as a lone write would. Writes with the same
//! [`Batched::key`] never share a batch: the later one waits for the next, so it
//! sees the first.
//!
//! What is batched: `member_batch` (new members, member changes),
//! `refresh_batch` (refresh-token rotations), and one read, `member_reads` (one
//! member by a unique key: a statement with no transaction, never split).

use super::pg::Pg;
use super::{Result, StoreError};
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

/// Most writes in one batch.
const BATCH: usize = 32;

/// How a batch failed.
pub(crate) enum Failed {
    /// Before its commit: nothing was written; its writes can be made one by one.
    Early(StoreError),
    /// Nothing more to try: no transaction could be begun (each write on its own
    /// would wait as long again), or the commit failed (it may have happened).
    Stop(StoreError),
}

/// Run a caller's rules for a write: a panic in them is that write's error.
pub(crate) fn guarded<T>(rules: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(rules)).map_err(|_| {
        tracing::error!("the rules of a batched write panicked");
        StoreError::Unavailable("the write could not be made".into())
    })
}

/// A write that can be made in a batch.
pub(crate) trait Batched: Send + Sized + 'static {
    /// Batches of one queue in flight at once, each on a connection of its own: one
    /// waits for its commit while the next reads.
    const WRITERS: usize = 4;

    type Answer: Send;
    /// Writes with equal keys never share a batch.
    type Key: PartialEq;

    fn key(&self) -> Option<Self::Key>;

    /// Nobody waits for the answer any more (the request was dropped before its
    /// write began, as a dropped request's transaction used to roll back): skipped.
    fn abandoned(&self) -> bool;

    /// The whole batch in one transaction: each write's answer, in the batch's order.
    fn together(
        pg: &Pg,
        batch: &[Self],
    ) -> impl Future<Output = std::result::Result<Vec<Self::Answer>, Failed>> + Send;

    /// This write in a transaction of its own.
    fn alone(&self, pg: &Pg) -> impl Future<Output = Self::Answer> + Send;

    /// Send the answer to the caller.
    fn answer(self, answer: Self::Answer);

    /// Tell the caller the write failed.
    fn fail(self, error: &str);
}

/// A queue of writes and its writers, started with the first write.
pub(crate) struct Queue<J> {
    tx: OnceLock<mpsc::UnboundedSender<J>>,
    pub(crate) watch: Arc<Watch>,
}

impl<J> Default for Queue<J> {
    fn default() -> Self {
        Queue {
            tx: OnceLock::new(),
            watch: Default::default(),
        }
    }
}

impl<J> std::fmt::Debug for Queue<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("started", &self.tx.get().is_some())
            .field("watch", &self.watch)
            .finish()
    }
}

/// What the tests look at and hold (through `Db`'s testing entry points).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Writes sent and not yet taken by a writer.
    pub(crate) queued: AtomicUsize,
    /// The most writes tried together, and committed together.
    pub(crate) largest_tried: AtomicUsize,
    pub(crate) largest_written: AtomicUsize,
    /// Batches made again write by write.
    pub(crate) split: AtomicUsize,
    /// While set, writers take nothing from the queue.
    pub(crate) paused: AtomicBool,
    pub(crate) resumed: Notify,
}

impl Watch {
    async fn unpaused(&self) {
        loop {
            // Created before the check, so a resume in between is not missed.
            let resumed = self.resumed.notified();
            if !self.paused.load(Ordering::Acquire) {
                return;
            }
            resumed.await;
        }
    }

    /// Hold (`true`) or let go the writers.
    #[cfg(feature = "testing")]
    pub(crate) fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        if !paused {
            self.resumed.notify_waiters();
        }
    }

    /// Queued, the most tried together, the most committed together, the batches
    /// split.
    #[cfg(feature = "testing")]
    pub(crate) fn stats(&self) -> (usize, usize, usize, usize) {
        (
            self.queued.load(Ordering::Relaxed),
            self.largest_tried.load(Ordering::Relaxed),
            self.largest_written.load(Ordering::Relaxed),
            self.split.load(Ordering::Relaxed),
        )
    }
}

impl<J: Batched> Queue<J> {
    /// Queue the write `job` makes with the sender of its answer, and wait for
    /// that answer.
    pub(crate) async fn ask<T>(
        &self,
        pg: &Pg,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> J,
    ) -> Result<T> {
        let (done, answer) = oneshot::channel();
        self.send(pg, job(done))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("a batch writer stopped".into()))?
    }

    fn send(&self, pg: &Pg, job: J) -> Result<()> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..J::WRITERS {
                tokio::spawn(writer(pg.clone(), rx.clone(), self.watch.clone()));
            }
            tx
        });
        self.watch.queued.fetch_add(1, Ordering::Relaxed);
        tx.send(job)
            .map_err(|_| StoreError::Unavailable("the batch writers stopped".into()))
    }
}

/// Take batches off the queue and write them until every sender is gone.
async fn writer<J: Batched>(pg: Pg, rx: Arc<Mutex<mpsc::UnboundedReceiver<J>>>, watch: Arc<Watch>) {
    // Writes whose key is already in the batch, for the next one (in order).
    let mut held: VecDeque<J> = VecDeque::new();
    loop {
        let mut batch: Vec<J> = Vec::with_capacity(BATCH);
        for job in std::mem::take(&mut held) {
            add(&mut batch, &mut held, job);
        }
        // With writes held from the last batch, take more only if the queue is
        // free: another writer may be waiting on it for writes that never come.
        let rx = if batch.is_empty() {
            Some(rx.lock().await)
        } else {
            rx.try_lock().ok()
        };
        if let Some(mut rx) = rx {
            if batch.is_empty() {
                match rx.recv().await {
                    Some(job) => batch.push(job),
                    None => return,
                }
                // (Held here, the first write still counts as queued.)
                watch.unpaused().await;
                watch.queued.fetch_sub(1, Ordering::Relaxed);
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => add(&mut batch, &mut held, job),
                    Err(_) => break,
                }
                watch.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
        // A write that panics fails its batch's callers (their answers are
        // dropped), not the writer.
        let wrote = AssertUnwindSafe(write(&pg, batch, &watch))
            .catch_unwind()
            .await;
        if wrote.is_err() {
            tracing::error!("a batched write panicked; its batch was not answered");
        }
    }
}

/// Into the batch, or held for the next when its key is already in it.
fn add<J: Batched>(batch: &mut Vec<J>, held: &mut VecDeque<J>, job: J) {
    let taken = job
        .key()
        .is_some_and(|key| batch.iter().any(|j| j.key().as_ref() == Some(&key)));
    if taken || batch.len() >= BATCH {
        held.push_back(job);
    } else {
        batch.push(job);
    }
}

async fn write<J: Batched>(pg: &Pg, mut batch: Vec<J>, watch: &Watch) {
    batch.retain(|job| !job.abandoned());
    if batch.len() > 1 {
        watch
            .largest_tried
            .fetch_max(batch.len(), Ordering::Relaxed);
        match J::together(pg, &batch).await {
            Ok(answers) => {
                watch
                    .largest_written
                    .fetch_max(batch.len(), Ordering::Relaxed);
                for (job, answer) in batch.into_iter().zip(answers) {
                    job.answer(answer);
                }
                return;
            }
            Err(Failed::Stop(e)) => {
                let e = e.to_string();
                for job in batch {
                    job.fail(&e);
                }
                return;
            }
            Err(Failed::Early(e)) => {
                watch.split.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, writes = batch.len(), "a batch is made again write by write");
            }
        }
    }
    for job in batch {
        let answer = job.alone(pg).await;
        job.answer(answer);
    }
}

/// A list of values as a PostgreSQL array literal (`{...}`), bound as text and cast
/// in the statement (`$n::uuid[]`): an index finds the rows, where the planner
/// would guess a hundred rows for a JSON array and might walk the table to join
/// that many. For values whose text needs no quoting (ids, numbers) or that come
/// quoted (`refresh_batch::digests`): nothing a client sent.
pub(crate) fn array<T: std::fmt::Display>(values: impl Iterator<Item = T>) -> String {
    let mut out = String::from("{");
    for (n, v) in values.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}
