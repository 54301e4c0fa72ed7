//! PostgreSQL: refresh-token presentations made many to a transaction (see
//! `batch`). On its own a refresh is five round trips (BEGIN, the grant locked, its
//! state read, the family rotated and the new pair inserted, COMMIT). In a batch:
//! one statement locks the grants of all the presented tokens (in id order) and
//! notes them used, one reads every token's state (a new statement, so it sees what
//! the last refresh under those locks left), each presentation is planned by the
//! caller's rules, and one statement rotates every family and inserts every new
//! pair.
//!
//! Only issuing is made in a batch. A presentation that is refused, or that ends
//! its grant (a replaced token replayed), and two presentations of one grant, make
//! the batch go write by write instead: on its own a refusal changes nothing, not
//! even the grant's last use, and the one-at-a-time path already decides those
//! well. They are rare; issuing is the traffic.

use super::batch::{self, Batched, Failed};
use super::oauth::{self, Issued, NewTokens, RefreshPlan, RefreshState};
use super::pg::Pg;
use super::sql::{FromRow, Row, sql};
use super::{Result, StoreError};
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// The caller's rules for a presentation; its reason for a refusal stays with the
/// caller. May be called more than once (when the batch goes write by write).
pub(crate) type Plan = Box<dyn Fn(&RefreshState) -> RefreshPlan<()> + Send + Sync>;

/// What a presentation came to. `None` (outside): no such refresh token.
#[derive(Debug)]
pub(crate) enum Refreshed {
    Issued(Issued),
    /// Refused; nothing changed.
    Refused,
    /// Refused, and the grant ended.
    Ended,
}

pub(crate) struct Refresh {
    digest: Vec<u8>,
    tokens: NewTokens,
    at: OffsetDateTime,
    plan: Plan,
    done: oneshot::Sender<Result<Option<Refreshed>>>,
}

impl batch::Queue<Refresh> {
    /// Present refresh token `digest`, issuing `tokens` if `plan` says so.
    pub(crate) async fn refresh(
        &self,
        pg: &Pg,
        digest: Vec<u8>,
        tokens: NewTokens,
        at: OffsetDateTime,
        plan: Plan,
    ) -> Result<Option<Refreshed>> {
        self.ask(pg, |done| Refresh {
            digest,
            tokens,
            at,
            plan,
            done,
        })
        .await
    }
}

impl Batched for Refresh {
    type Answer = Result<Option<Refreshed>>;
    /// The token presented.
    type Key = Vec<u8>;

    fn key(&self) -> Option<Vec<u8>> {
        Some(self.digest.clone())
    }

    async fn together(pg: &Pg, batch: &[Self]) -> std::result::Result<Vec<Self::Answer>, Failed> {
        together(pg, batch).await
    }

    async fn alone(&self, pg: &Pg) -> Self::Answer {
        alone(pg, self).await
    }

    fn abandoned(&self) -> bool {
        self.done.is_closed()
    }

    fn answer(self, answer: Self::Answer) {
        let _ = self.done.send(answer);
    }

    fn fail(self, e: &str) {
        let _ = self.done.send(Err(StoreError::Unavailable(e.to_owned())));
    }
}

/// One presentation in a transaction of its own.
async fn alone(pg: &Pg, r: &Refresh) -> Result<Option<Refreshed>> {
    let mut tx = pg.begin().await?;
    // Locked first, then read: the read sees the family as the last refresh under
    // this lock left it (a new statement, a new snapshot).
    let lock = sql(oauth::REFRESH_LOCK_SQL)
        .bind(r.at)
        .bind(r.digest.clone());
    let Some(grant_id) = lock.pg_optional::<i64>(&mut *tx).await? else {
        return Ok(None);
    };
    let state = sql(oauth::REFRESH_STATE_SQL).bind(r.digest.clone());
    // Housekeeping may have deleted the (long expired) token since the lock found
    // it: unknown now, like any other.
    let Some(state) = state.pg_optional::<RefreshState>(&mut *tx).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    match batch::guarded(|| (r.plan)(&state))? {
        // Change nothing, not even the grant's last use.
        RefreshPlan::Refuse(()) => {
            tx.rollback().await?;
            Ok(Some(Refreshed::Refused))
        }
        RefreshPlan::EndGrant(()) => {
            sql(oauth::END_GRANT_REUSED_SQL)
                .bind(r.at)
                .bind(grant_id)
                .pg_execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(Refreshed::Ended))
        }
        RefreshPlan::Issue { scope } => {
            oauth::rotate_and_issue_pg(grant_id, &scope, &r.tokens, r.at)
                .pg_execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(Refreshed::Issued(Issued { grant_id, scope })))
        }
    }
}

/// Each presented refresh token (`d.digest`) as `t`, found by its digest's unique
/// index. A subquery the planner may not flatten (`OFFSET 0`): joined or with
/// `= ANY`, the planner, unable to size the array, could take the kind index
/// instead and read every refresh token.
macro_rules! presented_tokens {
    ($digests:literal) => {
        concat!(
            "unnest(",
            $digests,
            "::bytea[]) AS d(digest) CROSS JOIN LATERAL \
             (SELECT * FROM oauth_tokens WHERE digest = d.digest OFFSET 0) t"
        )
    };
}

/// Lock the grants of the presented refresh tokens (`$2`: their digests, see
/// `digests`), in id order, and note them used at `$1`.
pub(crate) const LOCK_BATCH_SQL: &str = concat!(
    "WITH l AS (SELECT id FROM oauth_grants WHERE id IN (SELECT t.grant_id FROM ",
    presented_tokens!("$2"),
    " WHERE t.kind = 'refresh') ORDER BY id FOR UPDATE) \
     UPDATE oauth_grants g SET last_used_at = $1 FROM l WHERE g.id = l.id"
);

/// Digests as a PostgreSQL `bytea[]` literal, bound as text.
pub(crate) fn digests<'a>(digests: impl Iterator<Item = &'a [u8]>) -> String {
    // Each element quoted, its backslash escaped: "\\x0a1b...".
    batch::array(digests.map(|d| format!("\"\\\\x{}\"", hex::encode(d))))
}

/// The states of the presented refresh tokens (`$1` as `LOCK_BATCH_SQL`'s `$2`).
pub(crate) fn state_batch_sql() -> String {
    format!(
        "{}, t.digest FROM {} {} WHERE t.kind = 'refresh'",
        oauth::REFRESH_STATE_COLUMNS,
        presented_tokens!("$1"),
        oauth::REFRESH_STATE_JOINS
    )
}

/// Rotate each family and insert each new pair: `$1` a JSON array of
/// `{"g": grant, "s": scope, "t": the presentation's time, "a"/"r": access/refresh
/// digest in hex, "ae"/"re": their expiry}` (times in microseconds since the
/// epoch), `$2` the grants as an array literal. Each family is rotated at its own
/// presentation's time, as on its own: the grace period for a replaced token runs
/// from then.
pub(crate) const ROTATE_AND_ISSUE_BATCH_SQL: &str = "WITH p AS (SELECT g, s, a, r, \
     TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond' AS t, \
     TIMESTAMPTZ 'epoch' + ae * INTERVAL '1 microsecond' AS ae, \
     TIMESTAMPTZ 'epoch' + re * INTERVAL '1 microsecond' AS re \
     FROM jsonb_to_recordset($1) AS p(g bigint, s text, a text, r text, t bigint, ae bigint, re bigint)), \
     rotated AS (UPDATE oauth_tokens o SET rotated_at = p.t FROM p \
     WHERE o.grant_id = ANY($2::bigint[]) AND o.grant_id = p.g \
     AND o.kind = 'refresh' AND o.rotated_at IS NULL AND o.revoked_at IS NULL) \
     INSERT INTO oauth_tokens (grant_id, kind, digest, scope, issued_at, expires_at) \
     SELECT g, 'access', decode(a, 'hex'), s, t, ae FROM p \
     UNION ALL \
     SELECT g, 'refresh', decode(r, 'hex'), s, t, re FROM p";

/// Microseconds since the epoch.
fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// A token's state with its digest.
struct Found {
    digest: Vec<u8>,
    state: RefreshState,
}

impl FromRow for Found {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Found {
            digest: r.get("digest")?,
            state: RefreshState::from_row(r)?,
        })
    }
}

/// The whole batch in one transaction.
async fn together(
    pg: &Pg,
    batch: &[Refresh],
) -> std::result::Result<Vec<Result<Option<Refreshed>>>, Failed> {
    // The grants' last use: the batch's latest presentation.
    let at = batch.iter().map(|r| r.at).max().unwrap_or_else(super::now);
    let digests = digests(batch.iter().map(|r| r.digest.as_slice()));
    let mut tx = pg.begin().await.map_err(Failed::Stop)?;
    sql(LOCK_BATCH_SQL)
        .bind(at)
        .bind(digests.clone())
        .pg_execute(&mut *tx)
        .await
        .map_err(Failed::Early)?;
    let found: Vec<Found> = sql(state_batch_sql())
        .bind(digests)
        .pg_all(&mut *tx)
        .await
        .map_err(Failed::Early)?;
    let mut found: HashMap<Vec<u8>, RefreshState> =
        found.into_iter().map(|f| (f.digest, f.state)).collect();
    let mut answers = Vec::with_capacity(batch.len());
    let mut rows = Vec::new();
    let mut grants = Vec::new();
    for r in batch {
        let Some(state) = found.remove(&r.digest) else {
            answers.push(Ok(None));
            continue;
        };
        if grants.contains(&state.grant_id) {
            return Err(Failed::Early(StoreError::Conflict(
                "two presentations of one grant".into(),
            )));
        }
        let plan = batch::guarded(|| (r.plan)(&state)).map_err(Failed::Early)?;
        let RefreshPlan::Issue { scope } = plan else {
            return Err(Failed::Early(StoreError::Conflict(
                "a presentation not issued".into(),
            )));
        };
        grants.push(state.grant_id);
        rows.push(json!({
            "g": state.grant_id,
            "s": scope,
            "t": micros(r.at),
            "a": hex::encode(&r.tokens.access_digest),
            "r": hex::encode(&r.tokens.refresh_digest),
            "ae": micros(r.tokens.access_expires_at),
            "re": micros(r.tokens.refresh_expires_at),
        }));
        answers.push(Ok(Some(Refreshed::Issued(Issued {
            grant_id: state.grant_id,
            scope,
        }))));
    }
    if !rows.is_empty() {
        sql(ROTATE_AND_ISSUE_BATCH_SQL)
            .bind(Value::Array(rows))
            .bind(batch::array(grants.iter()))
            .pg_execute(&mut *tx)
            .await
            .map_err(Failed::Early)?;
    }
    tx.commit().await.map_err(Failed::Stop)?;
    Ok(answers)
}
