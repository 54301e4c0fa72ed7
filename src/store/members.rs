//! Members of a workspace. Every query is scoped by `workspace_id`.
//!
//! A member row keeps the canonical SCIM resource as JSON plus the facts Rollcall
//! indexes or uses itself (userName, externalId, role, active, names); the email
//! values live in `member_emails` so `emails.value eq ...` uses an index.

use super::member_reads::Key;
use super::scim_sql::{self, Bind, SqlBuilder};
use super::sql::{FromRow, Row, Sql, sql};
use super::{Backend, Db, Engine, Result, StoreError, now, unique_violation};
use crate::domain::Role;
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::schema::AttrRef;
use serde_json::Value;
use sqlx::types::Json;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Member {
    pub id: Uuid,
    pub workspace_id: i64,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub role: Role,
    pub active: bool,
    pub scim_managed: bool,
    pub resource: Json<Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

crate::from_row!(Member {
    id,
    workspace_id,
    user_name,
    external_id,
    display_name,
    given_name,
    family_name,
    role,
    active,
    scim_managed,
    resource,
    created_at,
    updated_at,
    version
});

pub(crate) const COLUMNS: &str = "id, workspace_id, user_name, external_id, display_name, \
     given_name, family_name, role, active, scim_managed, resource, created_at, updated_at, version";

/// `COLUMNS`, each prefixed with the table alias `alias`.
pub(crate) fn prefixed_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything written for a member; the `*_ci` keys are folded by the caller.
#[derive(Debug, Clone)]
pub struct MemberData {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub role: Role,
    pub active: bool,
    pub scim_managed: bool,
    pub resource: Value,
    /// Email values, case-folded.
    pub emails_ci: Vec<String>,
}

fn fold(s: &str) -> String {
    crate::domain::fold_case(s)
}

/// The distinct email keys to index.
pub(crate) fn email_keys(data: &MemberData) -> Vec<String> {
    let mut emails = data.emails_ci.clone();
    emails.sort();
    emails.dedup();
    emails
}

const INSERT_EMAIL_SQL: &str =
    "INSERT INTO member_emails (member_id, workspace_id, value_ci) VALUES ($1, $2, $3)";

/// The statements that index a member's email values.
fn email_inserts(id: Uuid, workspace_id: i64, emails: &[String]) -> Vec<Sql> {
    emails
        .iter()
        .map(|email| {
            sql(INSERT_EMAIL_SQL)
                .bind(id)
                .bind(workspace_id)
                .bind(email)
        })
        .collect()
}

/// The conflict a client can act on, for a violated unique index.
fn conflict_of(what: Option<String>) -> Option<StoreError> {
    match what {
        Some(what) if what.contains("external_id") => Some(StoreError::Conflict(
            "externalId is already in use in this workspace".into(),
        )),
        Some(what) if what.contains("user_name") => Some(StoreError::Conflict(
            "userName is already in use in this workspace".into(),
        )),
        _ => None,
    }
}

/// Turn a unique-index violation into the conflict a client can act on.
pub(crate) fn conflict(err: StoreError) -> StoreError {
    conflict_of(unique_violation(&err)).unwrap_or(err)
}

/// Bind the member data of the INSERT and UPDATE, in their order (`$3`..): the
/// names, the role and flags, then (INSERT only) the password hash, the resource,
/// the time.
fn bind_data(q: Sql, data: &MemberData) -> Sql {
    q.bind(data.user_name.clone())
        .bind(fold(&data.user_name))
        .bind(data.external_id.clone())
        .bind(data.display_name.clone())
        .bind(data.given_name.clone())
        .bind(data.family_name.clone())
        .bind(data.role)
        .bind(data.active)
        .bind(data.scim_managed)
}

pub async fn create(
    db: &Db,
    workspace_id: i64,
    data: &MemberData,
    password_hash: Option<&str>,
) -> Result<Member> {
    let id = Uuid::now_v7();
    match db.engine() {
        Engine::Sqlite(s) => {
            let (insert, emails) = insert_statements(workspace_id, id, data, password_hash, now());
            s.write(move |tx| {
                let member: Member = insert.lite_one(tx).map_err(conflict)?;
                for q in &emails {
                    q.lite_execute(tx)?;
                }
                Ok(member)
            })
            .await
        }
        Engine::Postgres(p) => {
            db.member_writes
                .create(
                    p,
                    workspace_id,
                    id,
                    data.clone(),
                    password_hash.map(str::to_owned),
                )
                .await
        }
    }
}

/// The INSERT of a new member and the statements that index its email values.
pub(crate) fn insert_statements(
    workspace_id: i64,
    id: Uuid,
    data: &MemberData,
    password_hash: Option<&str>,
    at: OffsetDateTime,
) -> (Sql, Vec<Sql>) {
    let insert = format!(
        "INSERT INTO members (id, workspace_id, user_name, user_name_ci, external_id, display_name, \
         given_name, family_name, role, active, scim_managed, password_hash, resource, created_at, \
         updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1) \
         RETURNING {COLUMNS}"
    );
    let insert = bind_data(sql(insert).bind(id).bind(workspace_id), data)
        .bind(password_hash)
        .bind(&data.resource)
        .bind(at);
    let emails = email_inserts(id, workspace_id, &email_keys(data));
    (insert, emails)
}

pub(crate) fn by_id_sql() -> String {
    format!("SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND id = $2")
}

pub async fn by_id(db: &Db, workspace_id: i64, id: Uuid) -> Result<Option<Member>> {
    db.read_optional(sql(by_id_sql()).bind(workspace_id).bind(id))
        .await
}

/// A member with its teams (id and name, in name order): what a SCIM User renders.
#[derive(Debug, Clone)]
pub struct WithTeams {
    pub member: Member,
    pub teams: Vec<(Uuid, String)>,
}

impl FromRow for WithTeams {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let teams: Option<String> = r.get("teams")?;
        let mut teams: Vec<(Uuid, String)> = teams
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (hex, name) = line.split_once(' ')?;
                Some((Uuid::parse_str(hex).ok()?, name.to_owned()))
            })
            .collect();
        teams.sort_by_cached_key(|(_, name)| fold(name));
        Ok(WithTeams {
            member: Member::from_row(r)?,
            teams,
        })
    }
}

/// A select-list column `teams` holding the teams of member `m`, one line per team:
/// its id as 32 hex digits, a space, its name (names have no control characters:
/// `scim::group::check_name`). Read in the member's own statement: a second
/// statement for the teams cost a sixth of `GET /Users/{id}`, and on PostgreSQL,
/// where each statement is a round trip, a sixth of a PATCH.
pub(crate) fn teams_column(backend: Backend) -> String {
    let teams = match backend {
        Backend::Sqlite => "group_concat(hex(t.id) || ' ' || t.display_name, char(10))",
        Backend::Postgres => {
            "string_agg(replace(t.id::text, '-', '') || ' ' || t.display_name, E'\\n')"
        }
    };
    format!(
        "(SELECT {teams} FROM team_members tm JOIN teams t ON t.id = tm.team_id \
         WHERE tm.member_id = m.id AND t.workspace_id = m.workspace_id) AS teams"
    )
}

/// The member and its teams, in one statement.
pub async fn by_id_with_teams(db: &Db, workspace_id: i64, id: Uuid) -> Result<Option<WithTeams>> {
    if let Engine::Postgres(p) = db.engine() {
        return db.member_reads.find(p, workspace_id, Key::Id(id)).await;
    }
    let q = sql(format!(
        "SELECT {COLUMNS}, {} FROM members m WHERE m.workspace_id = $1 AND m.id = $2",
        teams_column(db.backend())
    ))
    .bind(workspace_id)
    .bind(id);
    db.read_optional::<WithTeams>(q).await
}

/// The member with this userName (ignoring case) and its password hash, for sign-in.
pub async fn credentials(
    db: &Db,
    workspace_id: i64,
    user_name: &str,
) -> Result<Option<(Member, Option<String>)>> {
    if !super::storable(user_name) {
        return Ok(None);
    }
    struct WithHash {
        member: Member,
        password_hash: Option<String>,
    }
    impl FromRow for WithHash {
        fn from_row(r: &Row<'_>) -> Result<Self> {
            Ok(WithHash {
                member: Member::from_row(r)?,
                password_hash: r.get("password_hash")?,
            })
        }
    }
    let q = sql(format!(
        "SELECT {COLUMNS}, password_hash FROM members WHERE workspace_id = $1 AND user_name_ci = $2"
    ))
    .bind(workspace_id)
    .bind(fold(user_name));
    let row: Option<WithHash> = db.read_optional(q).await?;
    Ok(row.map(|r| (r.member, r.password_hash)))
}

/// The member an identity provider vouched for: by userName (ignoring case), else
/// by one of its email values (ignoring case), preferring the oldest member.
pub async fn by_email(db: &Db, workspace_id: i64, email: &str) -> Result<Option<Member>> {
    if !super::storable(email) {
        return Ok(None);
    }
    if let Some((member, _)) = credentials(db, workspace_id, email).await? {
        return Ok(Some(member));
    }
    let q = sql(format!(
        "SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND id IN \
         (SELECT member_id FROM member_emails WHERE workspace_id = $1 AND value_ci = $2) \
         ORDER BY id LIMIT 1"
    ))
    .bind(workspace_id)
    .bind(fold(email));
    db.read_optional(q).await
}

/// The number of members of a workspace (`totalResults` of unfiltered lists: every
/// page of an import). Kept by the database as members are inserted (migration
/// 0017), so exact, and as cheap at 100,000 members as at ten: a COUNT(*) walked
/// the workspace's index entries on every page (about 10 ms at 100,000 members on
/// a small machine), and counting only the members newer than a counted boundary
/// still walked every member an import right after a bulk create had to page
/// through (5 ms a page on PostgreSQL at 20,000).
pub async fn count(db: &Db, workspace_id: i64) -> Result<i64> {
    match db.engine() {
        Engine::Sqlite(_) => db.read_one(sql(COUNT_SQLITE).bind(workspace_id)).await,
        Engine::Postgres(p) => {
            struct Summed {
                n: i64,
                deltas: i64,
            }
            crate::from_row!(Summed { n, deltas });
            let Summed { n, deltas } = db.read_one(sql(COUNT_PG).bind(workspace_id)).await?;
            if deltas > FOLD_AFTER {
                fold_counts(db, p, workspace_id);
            }
            Ok(n)
        }
    }
}

pub(crate) const COUNT_SQLITE: &str =
    "SELECT COALESCE((SELECT n FROM member_counts WHERE workspace_id = $1), 0)";
/// The count, and the delta rows it summed.
pub(crate) const COUNT_PG: &str = "SELECT COALESCE(SUM(n), 0)::BIGINT AS n, COUNT(*) AS deltas \
     FROM member_count_deltas WHERE workspace_id = $1";
/// A workspace's delta rows made one, in one statement: a reader sees the rows or
/// their sum, never both or neither. Two processes folding at once are safe: the
/// second's DELETE waits for the first, then finds the rows gone and does not see
/// the first's sum.
pub(crate) const FOLD_PG: &str = "WITH d AS (DELETE FROM member_count_deltas WHERE workspace_id = $1 \
     RETURNING n) INSERT INTO member_count_deltas (workspace_id, n) \
     SELECT $1, SUM(n) FROM d HAVING COUNT(*) > 0";
/// A count that summed more delta rows than this folds them (one row per INSERT
/// statement, so per batch of new members).
const FOLD_AFTER: i64 = 64;

/// Fold the workspace's count rows, in the background (at most one fold at a time
/// per process; a failure only leaves the rows for the next).
fn fold_counts(db: &Db, pg: &super::pg::Pg, workspace_id: i64) {
    use std::sync::atomic::Ordering;
    if db.cursors.folding.swap(true, Ordering::AcqRel) {
        return;
    }
    let (db, pg) = (db.clone(), pg.clone());
    tokio::spawn(async move {
        if let Err(e) = pg.execute(&sql(FOLD_PG).bind(workspace_id)).await {
            tracing::warn!(error = %e, "could not fold the member count");
        }
        db.cursors.folding.store(false, Ordering::Release);
    });
}

/// A SCIM list request, already parsed.
pub struct Search<'a> {
    pub filter: Option<&'a Filter>,
    pub sort: Option<&'a AttrRef>,
    pub descending: bool,
    /// Zero-based.
    pub offset: i64,
    /// 0: count only.
    pub limit: i64,
    /// Read each member's teams (`WithTeams::teams`; empty when false). For the
    /// lookups IdPs send most (`index_lookup`: one member, or none) they are read
    /// in the page's own statement: a second statement was a second round trip on
    /// PostgreSQL for every existence check that found its member. A page of many
    /// reads them in one more statement for the whole page, which is cheaper than a
    /// subquery per row (an import page on PostgreSQL: 130 pages/s against 99).
    pub teams: bool,
}

/// The SQL of a list request: the count and the page, each with its parameters.
pub(crate) struct ListSql {
    pub count_sql: String,
    pub count_binds: Vec<Bind>,
    pub page_sql: String,
    pub page_binds: Vec<Bind>,
    /// The page statement reads the teams (see `Search::teams`).
    pub teams_inline: bool,
}

/// Build the SQL for `s`; with `after`, the page starts after that id (keyset)
/// instead of skipping `s.offset` rows.
pub(crate) fn list_sql(
    backend: Backend,
    workspace_id: i64,
    s: &Search<'_>,
    after: Option<Uuid>,
) -> Result<ListSql> {
    let mut b = SqlBuilder::new(backend);
    let ws = b.bind(Bind::Int(workspace_id));
    let mut cond = format!("m.workspace_id = {ws}");
    if let Some(f) = s.filter {
        let sql = scim_sql::compile(&mut b, f)?;
        cond = format!("{cond} AND {sql}");
    }
    let count_binds = b.binds.clone();
    let count_sql = format!("SELECT COUNT(*) FROM members m WHERE {cond}");
    let order = scim_sql::order_by(&b, s.sort, s.descending);
    let cols = prefixed_columns("m");
    let teams_inline = s.teams && s.filter.is_some_and(index_lookup);
    let cols = if teams_inline {
        format!("{cols}, {}", teams_column(backend))
    } else {
        format!("{cols}, NULL AS teams")
    };
    // LIMIT and OFFSET are written as numbers (ours, not the client's text), not
    // bound: with them as parameters, and the teams subquery in the statement,
    // PostgreSQL judged its generic plan dearer than one made for the values and
    // planned the statement again on every execution (while the team tables had no
    // statistics, as in a workspace without teams: `plans::lists_keep_one_plan`).
    let (limit, offset) = (s.limit.max(0), s.offset.max(0));
    let page_sql = match after {
        Some(after) => {
            let after = b.bind(Bind::Uuid(after));
            format!(
                "SELECT {cols} FROM members m WHERE {cond} AND m.id > {after} ORDER BY {order} LIMIT {limit}"
            )
        }
        None => format!(
            "SELECT {cols} FROM members m WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        ),
    };
    Ok(ListSql {
        count_sql,
        count_binds,
        page_sql,
        page_binds: b.binds,
        teams_inline,
    })
}

/// Members matching a SCIM filter: the total and one page.
///
/// The page is read first: a first page shorter than asked for is the whole
/// result, so the common lookups (`userName eq ...`, found or not) take one query.
/// Otherwise the total is counted. Pages in the default order resume from a keyset
/// cursor when one is remembered (see `cursors`), so an import does not make the
/// database skip ever more rows.
pub async fn search(db: &Db, workspace_id: i64, s: &Search<'_>) -> Result<(i64, Vec<WithTeams>)> {
    // One member by a unique key, on PostgreSQL: with the other lookups waiting.
    if let Engine::Postgres(p) = db.engine()
        && let Some(key) = s.filter.and_then(unique_key)
        && s.offset == 0
        && s.limit > 0
    {
        let mut found: Vec<WithTeams> = db
            .member_reads
            .find(p, workspace_id, key)
            .await?
            .into_iter()
            .collect();
        if !s.teams {
            found.iter_mut().for_each(|m| m.teams.clear());
        }
        return Ok((found.len() as i64, found));
    }
    let keyset = s.filter.is_none() && s.sort.is_none() && !s.descending;
    let after = if keyset && s.offset > 0 {
        db.cursors.get(workspace_id, s.offset)
    } else {
        None
    };
    let q = &list_sql(db.backend(), workspace_id, s, after)?;
    let unfiltered = s.filter.is_none();
    let count = || async move {
        if unfiltered {
            return count(db, workspace_id).await;
        }
        db.read_one::<i64>(
            sql(q.count_sql.clone())
                .bind_all(q.count_binds.iter().cloned())
                .slow(),
        )
        .await
    };
    if s.limit == 0 {
        return Ok((count().await?, Vec::new()));
    }
    // The lookups IdPs send most are one index probe: run inline (see `sqlite`).
    let page = sql(q.page_sql.clone()).bind_all(q.page_binds.iter().cloned());
    let page = if s.filter.is_some_and(index_lookup) {
        page
    } else {
        page.slow()
    };
    let mut rows: Vec<WithTeams> = db.read_all(page).await?;
    if s.teams && !q.teams_inline && !rows.is_empty() {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.member.id).collect();
        let mut of: std::collections::HashMap<Uuid, Vec<(Uuid, String)>> = Default::default();
        for m in super::teams::teams_of(db, workspace_id, &ids).await? {
            of.entry(m.member_id)
                .or_default()
                .push((m.team_id, m.display_name));
        }
        for r in &mut rows {
            if let Some(mut teams) = of.remove(&r.member.id) {
                teams.sort_by_cached_key(|(_, name)| fold(name));
                r.teams = teams;
            }
        }
    }
    if keyset && let Some(last) = rows.last() {
        db.cursors
            .put(workspace_id, s.offset + rows.len() as i64, last.member.id);
    }
    let n = rows.len() as i64;
    let total = if n < s.limit && (n > 0 || s.offset == 0) {
        // A short page is the end of the result: nothing to count.
        s.offset + n
    } else {
        count().await?
    };
    Ok((total, rows))
}

/// `userName`, `externalId`, `id` or `emails.value` equal to a string: answered by a
/// unique or email index (the plans test checks it), so cheap enough to run inline.
fn index_lookup(f: &Filter) -> bool {
    match f {
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value: CompValue::Str(_),
        } => matches!(
            (attr.attr.name, attr.sub.map(|s| s.name)),
            ("userName" | "externalId" | "id", None) | ("emails", Some("value"))
        ),
        _ => false,
    }
}

/// `userName`, `externalId` or `id` equal to a string (an id in its canonical
/// form): at most one member, found by a unique index; as the filter compiles
/// (`scim_sql`), so the answer is the same either way.
fn unique_key(f: &Filter) -> Option<Key> {
    let Filter::Compare {
        attr,
        op: CompareOp::Eq,
        value: CompValue::Str(s),
    } = f
    else {
        return None;
    };
    if attr.sub.is_some() {
        return None;
    }
    match attr.attr.name {
        "userName" => Some(Key::UserName(fold(s))),
        "externalId" => Some(Key::ExternalId(s.clone())),
        "id" => Uuid::parse_str(s)
            .ok()
            .filter(|u| u.hyphenated().to_string() == *s)
            .map(Key::Id),
        _ => None,
    }
}

pub(crate) const DELETE_EMAILS_SQL: &str = "DELETE FROM member_emails WHERE member_id = $1";

pub(crate) fn update_sql(check_version: bool) -> String {
    let version_check = if check_version {
        " AND version = $14"
    } else {
        ""
    };
    format!(
        "UPDATE members SET user_name = $3, user_name_ci = $4, external_id = $5, display_name = $6, \
         given_name = $7, family_name = $8, role = $9, active = $10, scim_managed = $11, resource = $12, \
         updated_at = $13, version = version + 1 \
         WHERE workspace_id = $1 AND id = $2{version_check} RETURNING {COLUMNS}"
    )
}

/// Replace a member's data. With `expected_version`, only if the stored version
/// still is that one (`VersionMismatch` otherwise).
pub async fn update(
    db: &Db,
    workspace_id: i64,
    id: Uuid,
    data: &MemberData,
    expected_version: Option<i64>,
) -> Result<Member> {
    let data = data.clone();
    modify(
        db,
        workspace_id,
        id,
        move |current| match expected_version {
            Some(v) if v != current.version => Err(StoreError::VersionMismatch),
            _ => Ok(data.clone()),
        },
    )
    .await?
    .map(|changed| changed.member)
}

/// The UPDATE of a member's data.
pub(crate) fn update_statement(
    workspace_id: i64,
    id: Uuid,
    data: &MemberData,
    at: OffsetDateTime,
) -> Sql {
    bind_data(sql(update_sql(false)).bind(workspace_id).bind(id), data)
        .bind(&data.resource)
        .bind(at)
}

/// The statements that rewrite a member's email rows, when its keys changed
/// (`stored`: the keys as `locked_sql` reads them).
pub(crate) fn reindex(
    workspace_id: i64,
    id: Uuid,
    data: &MemberData,
    stored: Option<&str>,
) -> Vec<Sql> {
    let keys = email_keys(data);
    if !keys_changed(&keys, stored) {
        return Vec::new();
    }
    let mut statements = vec![sql(DELETE_EMAILS_SQL).bind(id)];
    statements.extend(email_inserts(id, workspace_id, &keys));
    statements
}

/// Read-modify-write of one member in one write transaction, the row locked
/// (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT ... FOR NO KEY UPDATE`, in a batch with
/// other changes: see `member_batch`), so concurrent writers queue instead of
/// losing updates. `change` sees the current member and returns the new data, or
/// refuses with its own error (nothing is written then); it may be called more than
/// once (on PostgreSQL, when its batch is made again change by change), each time
/// with the member as it is then. The changed member comes back with its teams,
/// read under the same lock.
pub async fn modify<E: Send + 'static>(
    db: &Db,
    workspace_id: i64,
    id: Uuid,
    change: impl Fn(&Member) -> std::result::Result<MemberData, E> + Send + Sync + 'static,
) -> Result<std::result::Result<WithTeams, E>> {
    match db.engine() {
        Engine::Sqlite(s) => {
            let select = sql(locked_sql(db.backend())).bind(workspace_id).bind(id);
            s.write(move |tx| {
                let Locked {
                    current,
                    email_keys: stored,
                } = select.lite_optional(tx)?.ok_or(StoreError::NotFound)?;
                let data = match change(&current.member) {
                    Ok(d) => d,
                    Err(refused) => {
                        tx.rollback();
                        return Ok(Err(refused));
                    }
                };
                let member: Member = update_statement(workspace_id, id, &data, now())
                    .lite_one(tx)
                    .map_err(conflict)?;
                for q in reindex(workspace_id, id, &data, stored.as_deref()) {
                    q.lite_execute(tx)?;
                }
                Ok(Ok(WithTeams {
                    member,
                    teams: current.teams,
                }))
            })
            .await
        }
        Engine::Postgres(p) => {
            // The caller's reason for a refusal, kept here: the batch sees only `None`.
            let refusal = Arc::new(std::sync::Mutex::new(None));
            let reason = refusal.clone();
            let change: super::member_batch::Change = Box::new(move |m| match change(m) {
                Ok(data) => Some(data),
                Err(e) => {
                    *reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    None
                }
            });
            match db.member_writes.change(p, workspace_id, id, change).await? {
                Some((before, after)) => {
                    took_admin_away(db, &before, &after.member);
                    Ok(Ok(after))
                }
                None => refusal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .map(Err)
                    .ok_or_else(|| StoreError::Decode("a refused change left no reason".into())),
            }
        }
    }
}

/// An active admin deactivated or given another role ends the OAuth grants they
/// authorized (a trigger, migration 0012): the tokens this process keeps are
/// forgotten before the change is answered.
fn took_admin_away(db: &Db, before: &Member, after: &Member) {
    let admin = |m: &Member| m.active && m.role == crate::domain::Role::Admin;
    if admin(before) && !admin(after) {
        db.auth_changed();
    }
}

/// Do the new email keys (sorted, distinct) differ from the stored ones (one per
/// line, as `locked_sql` reads them)?
fn keys_changed(keys: &[String], stored: Option<&str>) -> bool {
    let mut stored_keys: Vec<&str> = stored.map(|k| k.split('\n').collect()).unwrap_or_default();
    stored_keys.sort_unstable();
    // (A key with a line break could not be told apart in the stored list.)
    keys.iter().map(String::as_str).ne(stored_keys) || keys.iter().any(|k| k.contains('\n'))
}

/// A member as `locked_sql` reads it: with its teams and its stored email keys.
pub(crate) struct Locked {
    pub(crate) current: WithTeams,
    pub(crate) email_keys: Option<String>,
}

impl FromRow for Locked {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Locked {
            current: WithTeams::from_row(r)?,
            email_keys: r.get("email_keys")?,
        })
    }
}

/// The member, its teams (for the answer) and its indexed email keys (one line
/// each), locked for update; one statement, so a change that keeps the keys (a
/// PATCH of `active`, most PUTs) does not rewrite them.
pub(crate) fn locked_sql(backend: Backend) -> String {
    locked_sql_where(backend, "m.workspace_id = $1 AND m.id = $2")
}

/// `locked_sql` for the members that match `condition` (which may end with an
/// ORDER BY: the rows are locked in that order).
///
/// On PostgreSQL the lock is `FOR NO KEY UPDATE`, the one the UPDATE that follows
/// takes: it queues other writers of the member as `FOR UPDATE` did, but not the
/// inserts that refer to it (a team membership, a grant), whose key check needs
/// only that the row stays. Member ids never change and members are never deleted.
pub(crate) fn locked_sql_where(backend: Backend, condition: &str) -> String {
    let (lock, keys) = match backend {
        Backend::Sqlite => ("", "group_concat(value_ci, char(10))"),
        Backend::Postgres => (" FOR NO KEY UPDATE OF m", "string_agg(value_ci, E'\\n')"),
    };
    format!(
        "SELECT {COLUMNS}, {}, (SELECT {keys} FROM member_emails e WHERE e.member_id = m.id) \
         AS email_keys FROM members m WHERE {condition}{lock}",
        teams_column(backend)
    )
}

/// Which page of the member list to show, in userName order.
pub enum Cursor<'a> {
    First,
    After(&'a str),
    Before(&'a str),
}

/// Members whose userName starts with `prefix` (folded), one page in userName order,
/// by keyset: fast at any depth, using the (workspace_id, user_name_ci) index.
pub async fn browse(
    db: &Db,
    workspace_id: i64,
    prefix: &str,
    cursor: Cursor<'_>,
    limit: i64,
) -> Result<Vec<Member>> {
    let prefix = fold(prefix);
    // Byte order everywhere, like the index (PostgreSQL: a "C"-collated index).
    let c = match db.backend() {
        super::Backend::Sqlite => "",
        super::Backend::Postgres => " COLLATE \"C\"",
    };
    let mut text =
        format!("SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND user_name_ci{c} >= $2");
    // The upper bound of the prefix range: every string that starts with it sorts below.
    let upper = (!prefix.is_empty()).then(|| format!("{prefix}\u{10FFFF}"));
    if upper.is_some() {
        text.push_str(&format!(" AND user_name_ci{c} < $3"));
    }
    let (op, order) = match cursor {
        Cursor::First => ("", "ASC"),
        Cursor::After(_) => (">", "ASC"),
        Cursor::Before(_) => ("<", "DESC"),
    };
    let key = match cursor {
        Cursor::After(k) | Cursor::Before(k) => Some(fold(k)),
        Cursor::First => None,
    };
    let next = if upper.is_some() { 4 } else { 3 };
    if key.is_some() {
        text.push_str(&format!(" AND user_name_ci{c} {op} ${next}"));
    }
    let limit_at = next + usize::from(key.is_some());
    text.push_str(&format!(
        " ORDER BY user_name_ci{c} {order} LIMIT ${limit_at}"
    ));
    let mut q = sql(text).bind(workspace_id).bind(prefix);
    if let Some(u) = upper {
        q = q.bind(u);
    }
    if let Some(k) = key {
        q = q.bind(k);
    }
    let mut rows: Vec<Member> = db.read_all(q.bind(limit).slow()).await?;
    if matches!(cursor, Cursor::Before(_)) {
        rows.reverse();
    }
    Ok(rows)
}
