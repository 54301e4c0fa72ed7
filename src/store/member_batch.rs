//! PostgreSQL: new members and member changes written many to a transaction.
//!
//! One change on its own is four round trips (BEGIN, the locked read, the UPDATE,
//! COMMIT), each a wake-up of a server backend, and a commit; a new member three or
//! more. Under load on a small machine that per-statement work was PostgreSQL's
//! share of the CPU and the limit of SCIM writes (rollcall-bench: a core's worth
//! for 1,600 writes a second). Here the writes queued when a writer is free are
//! made together: one statement inserts all the new members and one their email
//! rows; one statement locks and reads all the changed members (in id order, so
//! two batches never wait on each other in a circle), each change is computed
//! from its member as it is now, and one statement writes them all; one commit
//! makes the lot durable. Each caller is answered after that commit, as before:
//! acknowledged means committed.
//!
//! A batch that fails before its commit (a unique index, a deadlock with some other
//! transaction, a value PostgreSQL refuses) is rolled back, and each of its writes
//! is then made on its own, so an error is only its own write's. A failed commit
//! is not tried again (it may have happened): every write of the batch gets the
//! error, as a lone write would.
//!
//! Two changes of one member never share a batch: the later one waits for the next,
//! so it sees the first.

use super::members::{self, Locked, Member, MemberData, WithTeams};
use super::pg::Pg;
use super::sql::sql;
use super::{Backend, Result, StoreError, now};
use futures_util::FutureExt;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use uuid::Uuid;

/// Most changes in one batch.
const BATCH: usize = 32;
/// Batches in flight at once, each on a connection of its own: one waits for its
/// commit while the next reads.
const WRITERS: usize = 4;

/// A change: the new data for the member as it is now, or `None` when the caller's
/// rules refuse it (the caller keeps its reason). Called again if the batch it was
/// in is made again change by change.
pub(crate) type Change = Box<dyn Fn(&Member) -> Option<MemberData> + Send + Sync>;

/// A change made: the member before and after (with its teams).
pub(crate) type Changed = (Member, WithTeams);

enum Job {
    Change {
        workspace_id: i64,
        id: Uuid,
        change: Change,
        done: oneshot::Sender<Result<Option<Changed>>>,
    },
    Create {
        workspace_id: i64,
        id: Uuid,
        data: MemberData,
        password_hash: Option<String>,
        done: oneshot::Sender<Result<Member>>,
    },
}

impl Job {
    /// The member a change is to.
    fn changes(&self) -> Option<(i64, Uuid)> {
        match self {
            Job::Change {
                workspace_id, id, ..
            } => Some((*workspace_id, *id)),
            Job::Create { .. } => None,
        }
    }
}

/// A job's answer, until it is sent (a batch's worth at most: no need to box).
#[allow(clippy::large_enum_variant)]
enum Answer {
    Changed(Result<Option<Changed>>),
    Created(Result<Member>),
}

impl Job {
    fn answer(self, answer: Answer) {
        match (self, answer) {
            (Job::Change { done, .. }, Answer::Changed(a)) => {
                let _ = done.send(a);
            }
            (Job::Create { done, .. }, Answer::Created(a)) => {
                let _ = done.send(a);
            }
            // Not made (dropping the sender tells the caller so).
            _ => tracing::error!("a member write got another kind's answer"),
        }
    }

    fn fail(self, e: &str) {
        let e = || StoreError::Unavailable(e.to_owned());
        match self {
            Job::Change { done, .. } => {
                let _ = done.send(Err(e()));
            }
            Job::Create { done, .. } => {
                let _ = done.send(Err(e()));
            }
        }
    }
}

/// The queue of member changes and its writers, started with the first change.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    tx: OnceLock<mpsc::UnboundedSender<Job>>,
    pub(crate) watch: Arc<Watch>,
}

/// What the tests look at and hold (through `Db`'s testing entry points).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Changes sent and not yet taken by a writer.
    pub(crate) queued: AtomicUsize,
    /// The most changes tried together, and committed together.
    pub(crate) largest_tried: AtomicUsize,
    pub(crate) largest_written: AtomicUsize,
    /// Batches made again change by change.
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
}

impl Queue {
    /// Make `change` to member `id`, in a batch with whatever else is queued.
    /// `None`: refused by `change`; `NotFound`: no such member.
    pub(crate) async fn change(
        &self,
        pg: &Pg,
        workspace_id: i64,
        id: Uuid,
        change: Change,
    ) -> Result<Option<Changed>> {
        let (done, answer) = oneshot::channel();
        self.send(
            pg,
            Job::Change {
                workspace_id,
                id,
                change,
                done,
            },
        )?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("a member writer stopped".into()))?
    }

    /// Insert member `id`, in a batch with whatever else is queued.
    pub(crate) async fn create(
        &self,
        pg: &Pg,
        workspace_id: i64,
        id: Uuid,
        data: MemberData,
        password_hash: Option<String>,
    ) -> Result<Member> {
        let (done, answer) = oneshot::channel();
        self.send(
            pg,
            Job::Create {
                workspace_id,
                id,
                data,
                password_hash,
                done,
            },
        )?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("a member writer stopped".into()))?
    }

    fn send(&self, pg: &Pg, job: Job) -> Result<()> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..WRITERS {
                tokio::spawn(writer(pg.clone(), rx.clone(), self.watch.clone()));
            }
            tx
        });
        self.watch.queued.fetch_add(1, Ordering::Relaxed);
        tx.send(job)
            .map_err(|_| StoreError::Unavailable("the member writers stopped".into()))
    }
}

/// Take batches off the queue and write them until every sender is gone.
async fn writer(pg: Pg, rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>, watch: Arc<Watch>) {
    // Changes of a member already in the batch, for the next one (in order).
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
        for job in std::mem::take(&mut held) {
            add(&mut batch, &mut held, job);
        }
        // With changes held from the last batch, take more only if the queue is
        // free: another writer may be waiting on it for changes that never come.
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
                // (Held here, the first change still counts as queued.)
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
        // A change that panics fails its batch's callers (their answers are
        // dropped), not the writer.
        let wrote = AssertUnwindSafe(write(&pg, batch, &watch))
            .catch_unwind()
            .await;
        if wrote.is_err() {
            tracing::error!("a member write panicked; its batch was not answered");
        }
    }
}

/// Into the batch, or held for the next when its member is already in it.
fn add(batch: &mut Vec<Job>, held: &mut VecDeque<Job>, job: Job) {
    let taken = job
        .changes()
        .is_some_and(|member| batch.iter().any(|j| j.changes() == Some(member)));
    if taken || batch.len() >= BATCH {
        held.push_back(job);
    } else {
        batch.push(job);
    }
}

/// How a batch failed.
enum Failed {
    /// Before its commit: nothing was written; its changes can be made one by one.
    Early(StoreError),
    /// At its commit: it may or may not have been written.
    Commit(StoreError),
}

async fn write(pg: &Pg, batch: Vec<Job>, watch: &Watch) {
    if batch.len() > 1 {
        watch
            .largest_tried
            .fetch_max(batch.len(), Ordering::Relaxed);
        match together(pg, &batch).await {
            Ok(answers) => {
                watch
                    .largest_written
                    .fetch_max(batch.len(), Ordering::Relaxed);
                for (job, answer) in batch.into_iter().zip(answers) {
                    job.answer(answer);
                }
                return;
            }
            Err(Failed::Commit(e)) => {
                let e = e.to_string();
                for job in batch {
                    job.fail(&e);
                }
                return;
            }
            Err(Failed::Early(e)) => {
                watch.split.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, writes = batch.len(), "a batch of member writes is made one by one");
            }
        }
    }
    for job in batch {
        let answer = match &job {
            Job::Change {
                workspace_id,
                id,
                change,
                ..
            } => Answer::Changed(change_alone(pg, *workspace_id, *id, change).await),
            Job::Create {
                workspace_id,
                id,
                data,
                password_hash,
                ..
            } => Answer::Created(
                create_alone(pg, *workspace_id, *id, data, password_hash.as_deref()).await,
            ),
        };
        job.answer(answer);
    }
}

/// One new member in a transaction of its own.
async fn create_alone(
    pg: &Pg,
    workspace_id: i64,
    id: Uuid,
    data: &MemberData,
    password_hash: Option<&str>,
) -> Result<Member> {
    let (insert, emails) = members::insert_statements(workspace_id, id, data, password_hash, now());
    let mut tx = pg.begin().await?;
    let member: Member = insert.pg_one(&mut *tx).await.map_err(members::conflict)?;
    for q in &emails {
        q.pg_execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(member)
}

/// One change in a transaction of its own.
async fn change_alone(
    pg: &Pg,
    workspace_id: i64,
    id: Uuid,
    change: &Change,
) -> Result<Option<Changed>> {
    let select = sql(members::locked_sql(Backend::Postgres))
        .bind(workspace_id)
        .bind(id);
    let mut tx = pg.begin().await?;
    let Locked {
        current,
        email_keys: stored,
    } = select
        .pg_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let Some(data) = change(&current.member) else {
        tx.rollback().await?;
        return Ok(None);
    };
    let member: Member = members::update_statement(workspace_id, id, &data, now())
        .pg_one(&mut *tx)
        .await
        .map_err(members::conflict)?;
    for q in members::reindex(workspace_id, id, &data, stored.as_deref()) {
        q.pg_execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Some((
        current.member,
        WithTeams {
            member,
            teams: current.teams,
        },
    )))
}

/// The members of a batch, locked in id order: `$1` a JSON array of
/// `{"w": workspace_id, "i": id}`, `$2` their ids as an array literal (see `ids`):
/// the primary key's index finds them (the planner guesses a hundred rows for a
/// JSON array, and might walk the table to join that many).
pub(crate) fn locked_batch_sql() -> String {
    members::locked_sql_where(
        Backend::Postgres,
        "m.id = ANY($2::uuid[]) AND (m.workspace_id, m.id) IN \
         (SELECT k.w, k.i FROM jsonb_to_recordset($1) AS k(w bigint, i uuid)) ORDER BY m.id",
    )
}

/// Ids as a PostgreSQL array literal (`{...}`), bound as text.
pub(crate) fn ids<'a>(ids: impl Iterator<Item = &'a Uuid>) -> String {
    let mut out = String::from("{");
    for (n, id) in ids.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out.push('}');
    out
}

/// Write a batch's new data: `$1` a JSON array of the rows, `$2` the time, `$3`
/// their ids (as `locked_batch_sql`'s `$2`).
pub(crate) fn update_batch_sql() -> String {
    let returning = members::COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE members m SET user_name = u.user_name, user_name_ci = u.user_name_ci, \
         external_id = u.external_id, display_name = u.display_name, given_name = u.given_name, \
         family_name = u.family_name, role = u.role, active = u.active, \
         scim_managed = u.scim_managed, resource = u.resource, updated_at = $2, \
         version = m.version + 1 \
         FROM jsonb_to_recordset($1) AS u(w bigint, i uuid, user_name text, user_name_ci text, \
         external_id text, display_name text, given_name text, family_name text, role text, \
         active boolean, scim_managed boolean, resource jsonb) \
         WHERE m.id = ANY($3::uuid[]) AND m.workspace_id = u.w AND m.id = u.i \
         RETURNING {returning}"
    )
}

/// One row of `update_batch_sql`'s `$1`.
pub(crate) fn update_row(workspace_id: i64, id: Uuid, data: &MemberData) -> Value {
    json!({
        "w": workspace_id,
        "i": id,
        "user_name": data.user_name,
        "user_name_ci": crate::domain::fold_case(&data.user_name),
        "external_id": data.external_id,
        "display_name": data.display_name,
        "given_name": data.given_name,
        "family_name": data.family_name,
        "role": data.role.as_str(),
        "active": data.active,
        "scim_managed": data.scim_managed,
        "resource": data.resource,
    })
}

/// Insert a batch's new members: `$1` a JSON array of the rows, `$2` the time.
pub(crate) fn insert_batch_sql() -> String {
    format!(
        "INSERT INTO members (id, workspace_id, user_name, user_name_ci, external_id, \
         display_name, given_name, family_name, role, active, scim_managed, password_hash, \
         resource, created_at, updated_at, version) \
         SELECT r.i, r.w, r.user_name, r.user_name_ci, r.external_id, r.display_name, \
         r.given_name, r.family_name, r.role, r.active, r.scim_managed, r.password_hash, \
         r.resource, $2, $2, 1 \
         FROM jsonb_to_recordset($1) AS r(w bigint, i uuid, user_name text, user_name_ci text, \
         external_id text, display_name text, given_name text, family_name text, role text, \
         active boolean, scim_managed boolean, resource jsonb, password_hash text) \
         RETURNING {}",
        members::COLUMNS
    )
}

/// Index a batch's new members' email values: `$1` a JSON array of
/// `{"m": member id, "w": workspace_id, "v": folded value}`.
pub(crate) const INSERT_EMAILS_BATCH_SQL: &str = "INSERT INTO member_emails (member_id, workspace_id, value_ci) \
     SELECT e.m, e.w, e.v FROM jsonb_to_recordset($1) AS e(m uuid, w bigint, v text)";

/// The whole batch in one transaction: each job's answer, in the batch's order.
async fn together(pg: &Pg, batch: &[Job]) -> std::result::Result<Vec<Answer>, Failed> {
    let mut answers: Vec<Option<Answer>> = batch.iter().map(|_| None).collect();
    let at = now();
    let mut tx = pg.begin().await.map_err(Failed::Early)?;

    // New members, then their email rows.
    let mut rows = Vec::new();
    let mut emails = Vec::new();
    for job in batch {
        if let Job::Create {
            workspace_id,
            id,
            data,
            password_hash,
            ..
        } = job
        {
            let mut row = update_row(*workspace_id, *id, data);
            row["password_hash"] = json!(password_hash);
            rows.push(row);
            for v in members::email_keys(data) {
                emails.push(json!({"m": id, "w": workspace_id, "v": v}));
            }
        }
    }
    if !rows.is_empty() {
        let inserted: Vec<Member> = sql(insert_batch_sql())
            .bind(Value::Array(rows))
            .bind(at)
            .pg_all(&mut *tx)
            .await
            .map_err(Failed::Early)?;
        if !emails.is_empty() {
            sql(INSERT_EMAILS_BATCH_SQL)
                .bind(Value::Array(emails))
                .pg_execute(&mut *tx)
                .await
                .map_err(Failed::Early)?;
        }
        let mut inserted: HashMap<Uuid, Member> = inserted.into_iter().map(|m| (m.id, m)).collect();
        for (n, job) in batch.iter().enumerate() {
            if let Job::Create { id, .. } = job {
                let member = inserted.remove(id).ok_or_else(|| {
                    Failed::Early(StoreError::Decode(
                        "an inserted member came not back".into(),
                    ))
                })?;
                answers[n] = Some(Answer::Created(Ok(member)));
            }
        }
    }

    // Changes: the members locked and read, the changes computed, then written.
    let changed: Vec<(usize, i64, Uuid)> = batch
        .iter()
        .enumerate()
        .filter_map(|(n, j)| j.changes().map(|(w, id)| (n, w, id)))
        .collect();
    if !changed.is_empty() {
        let keys: Vec<Value> = changed
            .iter()
            .map(|(_, w, i)| json!({"w": w, "i": i}))
            .collect();
        let found: Vec<Locked> = sql(locked_batch_sql())
            .bind(Value::Array(keys))
            .bind(ids(changed.iter().map(|(_, _, id)| id)))
            .pg_all(&mut *tx)
            .await
            .map_err(Failed::Early)?;
        let mut found: HashMap<(i64, Uuid), Locked> = found
            .into_iter()
            .map(|c| ((c.current.member.workspace_id, c.current.member.id), c))
            .collect();
        // The job's place, its member as it was (with its stored keys), its new data.
        let mut writes: Vec<(usize, Locked, MemberData)> = Vec::new();
        for (n, w, id) in changed {
            let Job::Change { change, .. } = &batch[n] else {
                continue;
            };
            let Some(current) = found.remove(&(w, id)) else {
                answers[n] = Some(Answer::Changed(Err(StoreError::NotFound)));
                continue;
            };
            match change(&current.current.member) {
                Some(data) => writes.push((n, current, data)),
                None => answers[n] = Some(Answer::Changed(Ok(None))),
            }
        }
        if !writes.is_empty() {
            let rows: Vec<Value> = writes
                .iter()
                .map(|(_, c, data)| {
                    update_row(c.current.member.workspace_id, c.current.member.id, data)
                })
                .collect();
            let written: Vec<Member> = sql(update_batch_sql())
                .bind(Value::Array(rows))
                .bind(at)
                .bind(ids(writes.iter().map(|(_, c, _)| &c.current.member.id)))
                .pg_all(&mut *tx)
                .await
                .map_err(Failed::Early)?;
            let mut written: HashMap<Uuid, Member> =
                written.into_iter().map(|m| (m.id, m)).collect();
            for (n, current, data) in writes {
                let before = current.current.member;
                let Some(member) = written.remove(&before.id) else {
                    // Locked above, so still there: a batch that cannot be trusted.
                    return Err(Failed::Early(StoreError::NotFound));
                };
                for q in members::reindex(
                    before.workspace_id,
                    before.id,
                    &data,
                    current.email_keys.as_deref(),
                ) {
                    q.pg_execute(&mut *tx).await.map_err(Failed::Early)?;
                }
                let after = WithTeams {
                    member,
                    teams: current.current.teams,
                };
                answers[n] = Some(Answer::Changed(Ok(Some((before, after)))));
            }
        }
    }
    tx.commit().await.map_err(Failed::Commit)?;
    Ok(answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Answer::Changed(Err(StoreError::Decode("a write was not made".into())))
            })
        })
        .collect())
}
