//! PostgreSQL: lookups of one member by a unique key, made many to a statement.
//!
//! The reads IdPs send most are one member by a unique key: Okta's and Entra's
//! existence check before every write (`userName eq "..."`, `externalId eq "..."`)
//! and `GET /Users/{id}`. Each was a statement of its own, and on a small machine
//! PostgreSQL's work per statement (a backend wake-up, bind, executor start-up,
//! snapshot), not the index probe, was most of its share of the CPU. Queued as the
//! writes are (see `batch`), the lookups waiting when a reader is free go to the
//! database in one statement: a row of keys, each probing its own unique index.
//! A lookup that finds nothing queued goes at once, alone, in the same statement.
//! Nothing is written, so a batch needs no transaction and nothing to split: a
//! failed statement is every one of its lookups' error, as it was each one's.

use super::batch::{Batched, Failed, Queue};
use super::members::{self, WithTeams};
use super::pg::Pg;
use super::sql::{FromRow, Row, sql};
use super::{Backend, Result, StoreError};
use serde_json::{Value, json};
use std::sync::LazyLock;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A member's unique key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    /// Case-folded, as stored in `user_name_ci`.
    UserName(String),
    ExternalId(String),
    Id(Uuid),
}

/// One member wanted, and where its answer goes.
pub(crate) struct Lookup {
    workspace_id: i64,
    key: Key,
    done: oneshot::Sender<Result<Option<WithTeams>>>,
}

impl Batched for Lookup {
    type Answer = Result<Option<WithTeams>>;
    /// Reads need no order among themselves.
    type Key = ();

    fn key(&self) -> Option<()> {
        None
    }

    fn abandoned(&self) -> bool {
        self.done.is_closed()
    }

    async fn together(pg: &Pg, batch: &[Self]) -> std::result::Result<Vec<Self::Answer>, Failed> {
        match find(pg, batch).await {
            Ok(found) => Ok(found.into_iter().map(Ok).collect()),
            Err(e) => Err(Failed::Stop(e)),
        }
    }

    async fn alone(&self, pg: &Pg) -> Self::Answer {
        Ok(find(pg, std::slice::from_ref(self)).await?.pop().flatten())
    }

    fn answer(self, answer: Self::Answer) {
        let _ = self.done.send(answer);
    }

    fn fail(self, error: &str) {
        let _ = self
            .done
            .send(Err(StoreError::Unavailable(error.to_owned())));
    }
}

impl Queue<Lookup> {
    /// The member of `workspace_id` with this key, and its teams, read in one
    /// statement with whatever other lookups are waiting.
    pub(crate) async fn find(
        &self,
        pg: &Pg,
        workspace_id: i64,
        key: Key,
    ) -> Result<Option<WithTeams>> {
        if let Key::UserName(s) | Key::ExternalId(s) = &key
            && !super::storable(s)
        {
            // PostgreSQL refuses NUL in text; no member has it in a key.
            return Ok(None);
        }
        self.ask(pg, |done| Lookup {
            workspace_id,
            key,
            done,
        })
        .await
    }
}

/// The lookups' statement: `$1` a JSON array of `{"n": position, "w":
/// workspace_id}` with one of `"u"` (folded userName), `"e"` (externalId) or `"i"`
/// (id). Each key probes its own unique index; the other two branches compare with
/// NULL and are skipped without reading an index page.
pub(crate) fn lookup_sql() -> String {
    let cols = members::COLUMNS;
    format!(
        "SELECT k.n, {m_cols}, {teams} \
         FROM jsonb_to_recordset($1) AS k(n bigint, w bigint, u text, e text, i uuid) \
         CROSS JOIN LATERAL (\
         SELECT {cols} FROM members WHERE workspace_id = k.w AND user_name_ci = k.u \
         UNION ALL SELECT {cols} FROM members WHERE workspace_id = k.w AND external_id = k.e \
         UNION ALL SELECT {cols} FROM members WHERE workspace_id = k.w AND id = k.i) m",
        m_cols = members::prefixed_columns("m"),
        teams = members::teams_column(Backend::Postgres),
    )
}

/// The keys of a batch, as `lookup_sql`'s `$1`.
pub(crate) fn keys<'a>(batch: impl Iterator<Item = (i64, &'a Key)>) -> Value {
    Value::Array(
        batch
            .enumerate()
            .map(|(n, (w, key))| match key {
                Key::UserName(u) => json!({"n": n, "w": w, "u": u}),
                Key::ExternalId(e) => json!({"n": n, "w": w, "e": e}),
                Key::Id(i) => json!({"n": n, "w": w, "i": i}),
            })
            .collect(),
    )
}

struct Found {
    n: i64,
    member: WithTeams,
}

impl FromRow for Found {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Found {
            n: r.get("n")?,
            member: WithTeams::from_row(r)?,
        })
    }
}

/// Each lookup's member, in the batch's order.
async fn find(pg: &Pg, batch: &[Lookup]) -> Result<Vec<Option<WithTeams>>> {
    static SQL: LazyLock<String> = LazyLock::new(lookup_sql);
    let q = sql(SQL.as_str()).bind(keys(batch.iter().map(|l| (l.workspace_id, &l.key))));
    let mut out: Vec<Option<WithTeams>> = batch.iter().map(|_| None).collect();
    for found in pg.all::<Found>(&q).await? {
        // Unique keys: one row at most per position.
        if let Some(slot) = usize::try_from(found.n).ok().and_then(|n| out.get_mut(n)) {
            *slot = Some(found.member);
        }
    }
    Ok(out)
}
