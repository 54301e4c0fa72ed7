//! Provisioning activity: every SCIM write and its outcome, so an admin can see why
//! the identity provider reports an error.

use super::sql::{Sql, sql};
use super::{Db, Engine, Result, now};
use std::sync::OnceLock;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Activity {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub operation: String,
    pub member_id: Option<Uuid>,
    pub user_name: Option<String>,
    pub team_id: Option<Uuid>,
    pub team_name: Option<String>,
    pub status: i32,
    pub detail: String,
}

crate::from_row!(Activity {
    id,
    at,
    actor,
    operation,
    member_id,
    user_name,
    team_id,
    team_name,
    status,
    detail
});

pub struct NewActivity<'a> {
    pub workspace_id: i64,
    pub actor: &'a str,
    pub operation: &'a str,
    pub member_id: Option<Uuid>,
    pub user_name: Option<&'a str>,
    /// The team a team change was about.
    pub team_id: Option<Uuid>,
    pub team_name: Option<&'a str>,
    pub status: u16,
    pub detail: &'a str,
}

/// An entry waiting to be written.
#[derive(Clone)]
struct Pending {
    workspace_id: i64,
    at: OffsetDateTime,
    actor: String,
    operation: String,
    member_id: Option<Uuid>,
    user_name: Option<String>,
    team_id: Option<Uuid>,
    team_name: Option<String>,
    status: i32,
    detail: String,
}

enum Message {
    Entry(Pending),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Entries are written by one task, many per transaction: on SQLite every write
/// shares one connection, and a separate INSERT and commit per SCIM write was a
/// sixth of the write thread's time (rollcall-bench). Readers of the log flush first, so
/// within a process an entry is visible as soon as its write has answered.
#[derive(Debug, Default)]
pub struct ActivityQueue {
    tx: OnceLock<mpsc::UnboundedSender<Message>>,
}

/// Most entries written in one transaction.
const BATCH: usize = 256;

impl ActivityQueue {
    fn sender(&self, db: &Db) -> &mpsc::UnboundedSender<Message> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drain(db.clone(), rx));
            tx
        })
    }
}

async fn drain(db: Db, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Entry(e) => batch.push(e),
                Message::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && let Err(e) = insert(&db, &batch).await
        {
            tracing::warn!(error = %e, entries = batch.len(), "could not record provisioning activity");
        }
        batch.clear();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

const INSERT_SQL: &str = "INSERT INTO scim_activity (workspace_id, at, actor, operation, member_id, user_name, team_id, team_name, status, detail) ";

/// Multi-row INSERTs: one statement per 64 entries.
fn inserts(batch: &[Pending]) -> Vec<Sql> {
    batch
        .chunks(64)
        .map(|chunk| {
            let rows: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let p = (1..=10).map(|c| format!("${}", r * 10 + c));
                    format!("({})", p.collect::<Vec<_>>().join(", "))
                })
                .collect();
            chunk.iter().fold(
                sql(format!("{INSERT_SQL}VALUES {}", rows.join(", "))),
                |q, a| {
                    q.bind(a.workspace_id)
                        .bind(a.at)
                        .bind(a.actor.clone())
                        .bind(a.operation.clone())
                        .bind(a.member_id)
                        .bind(a.user_name.clone())
                        .bind(a.team_id)
                        .bind(a.team_name.clone())
                        .bind(a.status)
                        .bind(a.detail.clone())
                },
            )
        })
        .collect()
}

async fn insert(db: &Db, batch: &[Pending]) -> Result<()> {
    let statements = inserts(batch);
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                for q in &statements {
                    q.lite_execute(tx)?;
                }
                Ok(())
            })
            .await
        }
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            for q in &statements {
                q.pg_execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }
    }
}

/// Queue an entry; it is written shortly, with others.
pub async fn record(db: &Db, a: &NewActivity<'_>) -> Result<()> {
    // Details are short by design; keep a hostile userName from bloating the log.
    let entry = Pending {
        workspace_id: a.workspace_id,
        at: now(),
        actor: a.actor.to_owned(),
        operation: a.operation.to_owned(),
        member_id: a.member_id,
        user_name: a.user_name.map(|u| u.chars().take(256).collect()),
        team_id: a.team_id,
        team_name: a.team_name.map(|u| u.chars().take(256).collect()),
        status: i32::from(a.status),
        detail: a.detail.chars().take(500).collect(),
    };
    if db.activity.sender(db).send(Message::Entry(entry)).is_err() {
        tracing::warn!("the activity queue has stopped; an entry was dropped");
    }
    Ok(())
}

/// Wait until every entry queued so far is written.
pub async fn flush(db: &Db) {
    let Some(tx) = db.activity.tx.get() else {
        return;
    };
    let (done, wait) = oneshot::channel();
    if tx.send(Message::Flush(done)).is_ok() {
        let _ = wait.await;
    }
}

/// The most recent activity, newest first; optionally one member's, or failures only.
pub async fn recent(
    db: &Db,
    workspace_id: i64,
    member_id: Option<Uuid>,
    failures_only: bool,
    limit: i64,
) -> Result<Vec<Activity>> {
    flush(db).await;
    let text = "SELECT id, at, actor, operation, member_id, user_name, team_id, team_name, status, detail \
               FROM scim_activity WHERE workspace_id = $1 AND ($2 IS NULL OR member_id = $2) \
               AND ($3 = FALSE OR status >= 400) ORDER BY id DESC LIMIT $4";
    db.read_all::<Activity>(
        sql(text)
            .bind(workspace_id)
            .bind(member_id)
            .bind(failures_only)
            .bind(limit)
            .slow(),
    )
    .await
}

/// The most recent activity of one team, newest first (through its partial index).
pub async fn recent_of_team(
    db: &Db,
    workspace_id: i64,
    team_id: Uuid,
    limit: i64,
) -> Result<Vec<Activity>> {
    flush(db).await;
    let text = "SELECT id, at, actor, operation, member_id, user_name, team_id, team_name, status, detail \
               FROM scim_activity WHERE workspace_id = $1 AND team_id = $2 AND team_id IS NOT NULL \
               ORDER BY id DESC LIMIT $3";
    db.read_all::<Activity>(
        sql(text)
            .bind(workspace_id)
            .bind(team_id)
            .bind(limit)
            .slow(),
    )
    .await
}
