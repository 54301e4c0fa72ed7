//! PostgreSQL: new members and member changes made many to a transaction (see
//! `batch`): one statement inserts all the new members and one their email rows;
//! one statement locks and reads all the changed members (in id order, so two
//! batches never wait on each other in a circle), each change is computed from its
//! member as it is now, and one statement writes them all. Two changes of one
//! member never share a batch.

use super::batch::{self, Batched, Failed};
use super::members::{self, Locked, Member, MemberData, WithTeams};
use super::pg::Pg;
use super::sql::sql;
use super::{Backend, Result, StoreError, now};
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A change: the new data for the member as it is now, or `None` when the caller's
/// rules refuse it (the caller keeps its reason). Called again if the batch it was
/// in is made again change by change.
pub(crate) type Change = Box<dyn Fn(&Member) -> Option<MemberData> + Send + Sync>;

/// A change made: the member before and after (with its teams).
pub(crate) type Changed = (Member, WithTeams);

pub(crate) enum MemberWrite {
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

/// A write's answer, until it is sent (a batch's worth at most: no need to box).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Answer {
    Changed(Result<Option<Changed>>),
    Created(Result<Member>),
}

impl Batched for MemberWrite {
    /// Two: fewer, larger batches. Against four, in four alternated rollcall-bench
    /// rounds on PostgreSQL (20,000 members, 32 connections): POST 4,666 -> 5,153,
    /// PATCH 4,720 -> 5,271, PUT 4,576 -> 5,119 (the refresh batches, given two as
    /// well, fell from 4,906 to 4,182: they keep four).
    const WRITERS: usize = 2;

    type Answer = Answer;
    /// The member a change is to.
    type Key = (i64, Uuid);

    fn key(&self) -> Option<(i64, Uuid)> {
        match self {
            MemberWrite::Change {
                workspace_id, id, ..
            } => Some((*workspace_id, *id)),
            MemberWrite::Create { .. } => None,
        }
    }

    fn abandoned(&self) -> bool {
        match self {
            MemberWrite::Change { done, .. } => done.is_closed(),
            MemberWrite::Create { done, .. } => done.is_closed(),
        }
    }

    async fn together(pg: &Pg, batch: &[Self]) -> std::result::Result<Vec<Answer>, Failed> {
        together(pg, batch).await
    }

    async fn alone(&self, pg: &Pg) -> Answer {
        match self {
            MemberWrite::Change {
                workspace_id,
                id,
                change,
                ..
            } => Answer::Changed(change_alone(pg, *workspace_id, *id, change).await),
            MemberWrite::Create {
                workspace_id,
                id,
                data,
                password_hash,
                ..
            } => Answer::Created(
                create_alone(pg, *workspace_id, *id, data, password_hash.as_deref()).await,
            ),
        }
    }

    fn answer(self, answer: Answer) {
        match (self, answer) {
            (MemberWrite::Change { done, .. }, Answer::Changed(a)) => {
                let _ = done.send(a);
            }
            (MemberWrite::Create { done, .. }, Answer::Created(a)) => {
                let _ = done.send(a);
            }
            // Not made (dropping the sender tells the caller so).
            _ => tracing::error!("a member write got another kind's answer"),
        }
    }

    fn fail(self, e: &str) {
        let e = || StoreError::Unavailable(e.to_owned());
        match self {
            MemberWrite::Change { done, .. } => {
                let _ = done.send(Err(e()));
            }
            MemberWrite::Create { done, .. } => {
                let _ = done.send(Err(e()));
            }
        }
    }
}

impl batch::Queue<MemberWrite> {
    /// Make `change` to member `id`, in a batch with whatever else is queued.
    /// `None`: refused by `change`; `NotFound`: no such member.
    pub(crate) async fn change(
        &self,
        pg: &Pg,
        workspace_id: i64,
        id: Uuid,
        change: Change,
    ) -> Result<Option<Changed>> {
        self.ask(pg, |done| MemberWrite::Change {
            workspace_id,
            id,
            change,
            done,
        })
        .await
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
        self.ask(pg, |done| MemberWrite::Create {
            workspace_id,
            id,
            data,
            password_hash,
            done,
        })
        .await
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
    let Some(data) = batch::guarded(|| change(&current.member))? else {
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
/// `{"w": workspace_id, "i": id}`, `$2` their ids as an array literal
/// (`batch::array`), for the primary key's index.
pub(crate) fn locked_batch_sql() -> String {
    members::locked_sql_where(
        Backend::Postgres,
        "m.id = ANY($2::uuid[]) AND (m.workspace_id, m.id) IN \
         (SELECT k.w, k.i FROM jsonb_to_recordset($1) AS k(w bigint, i uuid)) ORDER BY m.id",
    )
}

/// Write a batch's new data: `$1` a JSON array of the rows, `$2` the time, `$3`
/// their ids (as `locked_batch_sql`'s `$2`).
pub(crate) fn update_batch_sql() -> String {
    let returning = members::prefixed_columns("m");
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
async fn together(pg: &Pg, batch: &[MemberWrite]) -> std::result::Result<Vec<Answer>, Failed> {
    let mut answers: Vec<Option<Answer>> = batch.iter().map(|_| None).collect();
    let at = now();
    let mut tx = pg.begin().await.map_err(Failed::Stop)?;

    // New members, then their email rows.
    let mut rows = Vec::new();
    let mut emails = Vec::new();
    for job in batch {
        if let MemberWrite::Create {
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
            if let MemberWrite::Create { id, .. } = job {
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
        .filter_map(|(n, j)| j.key().map(|(w, id)| (n, w, id)))
        .collect();
    if !changed.is_empty() {
        let keys: Vec<Value> = changed
            .iter()
            .map(|(_, w, i)| json!({"w": w, "i": i}))
            .collect();
        let found: Vec<Locked> = sql(locked_batch_sql())
            .bind(Value::Array(keys))
            .bind(batch::array(changed.iter().map(|(_, _, id)| id)))
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
            let MemberWrite::Change { change, .. } = &batch[n] else {
                continue;
            };
            let Some(current) = found.remove(&(w, id)) else {
                answers[n] = Some(Answer::Changed(Err(StoreError::NotFound)));
                continue;
            };
            match batch::guarded(|| change(&current.current.member)).map_err(Failed::Early)? {
                Some(data) => writes.push((n, current, data)),
                None => answers[n] = Some(Answer::Changed(Ok(None))),
            }
        }
        if !writes.is_empty() {
            // The time of the change: taken under the locks, so a member's
            // versions never go back in time (another batch may have written it
            // while this one waited for its lock).
            let changed_at = now();
            let rows: Vec<Value> = writes
                .iter()
                .map(|(_, c, data)| {
                    update_row(c.current.member.workspace_id, c.current.member.id, data)
                })
                .collect();
            let written: Vec<Member> = sql(update_batch_sql())
                .bind(Value::Array(rows))
                .bind(changed_at)
                .bind(batch::array(
                    writes.iter().map(|(_, c, _)| &c.current.member.id),
                ))
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
    tx.commit().await.map_err(Failed::Stop)?;
    Ok(answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Answer::Changed(Err(StoreError::Decode("a write was not made".into())))
            })
        })
        .collect())
}
