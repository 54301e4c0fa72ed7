//! Teams of a workspace and their members. Every query is scoped by `workspace_id`.
//!
//! A team row keeps its member count, updated by every membership write in the same
//! transaction, so lists and pages never count a large team's rows. Memberships live
//! in `team_members` (one row per team and member, keyed by both), so adding or
//! removing one member of a 100,000-member team touches one index entry; members
//! are read in pages by member id, so a team of any size is streamed, never loaded.

use super::scim_sql::{self, Bind, SqlBuilder};
use super::sql::{Sql, sql};
use super::{Backend, Db, Engine, Result, StoreError, now, unique_violation};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Team {
    pub id: Uuid,
    pub workspace_id: i64,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Created or changed through SCIM: read-only on the pages while the workspace
    /// manages teams with SCIM.
    pub scim_managed: bool,
    pub member_count: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

crate::from_row!(Team {
    id,
    workspace_id,
    display_name,
    external_id,
    scim_managed,
    member_count,
    created_at,
    updated_at,
    version
});

const COLUMNS: &str = "id, workspace_id, display_name, external_id, scim_managed, member_count, \
                       created_at, updated_at, version";

/// A member of a team, as a team's member list shows it.
#[derive(Debug, Clone)]
pub struct TeamMember {
    pub id: Uuid,
    pub user_name: String,
    pub display_name: Option<String>,
    pub active: bool,
    pub scim_managed: bool,
}

crate::from_row!(TeamMember {
    id,
    user_name,
    display_name,
    active,
    scim_managed
});

/// A team a member is in.
#[derive(Debug, Clone)]
pub struct Membership {
    pub member_id: Uuid,
    pub team_id: Uuid,
    pub display_name: String,
}

crate::from_row!(Membership {
    member_id,
    team_id,
    display_name
});

/// Most ids in one `IN (...)` list or one multi-row INSERT.
const CHUNK: usize = 500;

fn fold(s: &str) -> String {
    crate::domain::fold_case(s)
}

fn conflict(err: StoreError) -> StoreError {
    match unique_violation(&err) {
        Some(what) if what.contains("display_name") || what.contains("teams_name") => {
            StoreError::Conflict(
                "displayName is already in use by another team in this workspace".into(),
            )
        }
        _ => err,
    }
}

/// `$first, $first+1, ...` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A member an edit named, found in the workspace.
#[derive(Debug, Clone)]
pub struct Named {
    pub id: Uuid,
    pub user_name: String,
}

crate::from_row!(Named { id, user_name });

/// The statements that find which of `ids` are members of the workspace: each
/// returns those it found.
fn existing_sql(workspace_id: i64, ids: &[Uuid]) -> Vec<Sql> {
    ids.chunks(CHUNK)
        .map(|chunk| {
            sql(format!(
                "SELECT id, user_name FROM members WHERE workspace_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            ))
            .bind(workspace_id)
            .bind_all(chunk.iter().map(|id| Bind::Uuid(*id)))
        })
        .collect()
}

fn add_sql(team_id: Uuid, ids: &[Uuid]) -> Vec<Sql> {
    ids.chunks(CHUNK)
        .map(|chunk| {
            let rows = (0..chunk.len())
                .map(|i| format!("($1, ${})", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            sql(format!(
                "INSERT INTO team_members (team_id, member_id) VALUES {rows} ON CONFLICT DO NOTHING"
            ))
            .bind(team_id)
            .bind_all(chunk.iter().map(|id| Bind::Uuid(*id)))
        })
        .collect()
}

fn remove_sql(team_id: Uuid, ids: &[Uuid]) -> Vec<Sql> {
    ids.chunks(CHUNK)
        .map(|chunk| {
            sql(format!(
                "DELETE FROM team_members WHERE team_id = $1 AND member_id IN ({})",
                placeholders(2, chunk.len())
            ))
            .bind(team_id)
            .bind_all(chunk.iter().map(|id| Bind::Uuid(*id)))
        })
        .collect()
}

/// A change to a team's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add these members (those already in the team stay as they are).
    Add(Vec<Uuid>),
    /// Remove these members (those not in the team are ignored).
    Remove(Vec<Uuid>),
    /// Remove every member.
    RemoveAll,
}

/// A change to a team, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub display_name: Option<String>,
    /// `Some(None)` clears it.
    pub external_id: Option<Option<String>>,
    pub scim_managed: Option<bool>,
    /// Applied in order.
    pub members: Vec<MemberChange>,
}

impl Edit {
    /// Every member id the edit names (to check they belong to the workspace).
    fn named_members(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .members
            .iter()
            .flat_map(|c| match c {
                MemberChange::Add(ids) | MemberChange::Remove(ids) => ids.as_slice(),
                MemberChange::RemoveAll => &[],
            })
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// What a team write did.
#[derive(Debug, Clone)]
pub struct Changed {
    pub team: Team,
    /// Memberships created and ended (an add of a member already in the team, or a
    /// removal of one not in it, counts nothing).
    pub added: u64,
    pub removed: u64,
    /// The members the edit named, as found.
    pub named: Vec<Named>,
}

/// Why a team write was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused<E> {
    /// These ids are not members of the team's workspace.
    UnknownMembers(Vec<Uuid>),
    /// The caller's own check refused.
    Caller(E),
}

/// The ids of `named` that are not members of the workspace, given those found.
fn missing(named: &[Uuid], found: &[Named]) -> Vec<Uuid> {
    let found: std::collections::HashSet<&Uuid> = found.iter().map(|n| &n.id).collect();
    named
        .iter()
        .filter(|id| !found.contains(id))
        .copied()
        .collect()
}

/// The statements of the membership changes, each with whether it adds (true) or
/// removes (false) memberships.
fn member_statements(team_id: Uuid, changes: &[MemberChange]) -> Vec<(Sql, bool)> {
    let mut out = Vec::new();
    for c in changes {
        match c {
            MemberChange::Add(ids) => {
                out.extend(add_sql(team_id, ids).into_iter().map(|q| (q, true)))
            }
            MemberChange::Remove(ids) => {
                out.extend(remove_sql(team_id, ids).into_iter().map(|q| (q, false)))
            }
            MemberChange::RemoveAll => out.push((
                sql("DELETE FROM team_members WHERE team_id = $1").bind(team_id),
                false,
            )),
        }
    }
    out
}

/// The UPDATE of the team row after an edit (`$1` workspace, `$2` id).
fn update_sql(team: &Team, edit: &Edit, added: u64, removed: u64) -> Sql {
    let name = edit
        .display_name
        .clone()
        .unwrap_or_else(|| team.display_name.clone());
    let external = edit
        .external_id
        .clone()
        .unwrap_or_else(|| team.external_id.clone());
    let managed = edit.scim_managed.unwrap_or(team.scim_managed);
    let delta = added as i64 - removed as i64;
    sql(format!(
        "UPDATE teams SET display_name_ci = $3, display_name = $4, external_id = $5, scim_managed = $6, \
         member_count = member_count + $7, updated_at = $8, version = version + 1 \
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(team.workspace_id)
    .bind(team.id)
    .bind(fold(&name))
    .bind(name)
    .bind(external)
    .bind(managed)
    .bind(delta)
    .bind(now())
}

/// Did the edit change anything but memberships that did not change?
fn edits_row(team: &Team, edit: &Edit, added: u64, removed: u64) -> bool {
    added > 0
        || removed > 0
        || edit
            .display_name
            .as_ref()
            .is_some_and(|n| *n != team.display_name)
        || edit
            .external_id
            .as_ref()
            .is_some_and(|e| *e != team.external_id)
        || edit.scim_managed.is_some_and(|m| m != team.scim_managed)
}

fn locked_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    };
    format!("SELECT {COLUMNS} FROM teams WHERE workspace_id = $1 AND id = $2{lock}")
}

/// A new team.
#[derive(Debug, Clone)]
pub struct NewTeam {
    pub display_name: String,
    pub external_id: Option<String>,
    pub scim_managed: bool,
    pub members: Vec<Uuid>,
}

/// Create a team with its first members, in one transaction. A member id that is
/// not a member of the workspace refuses the whole create.
pub async fn create(
    db: &Db,
    workspace_id: i64,
    new: &NewTeam,
) -> Result<std::result::Result<Team, Refused<std::convert::Infallible>>> {
    let id = Uuid::now_v7();
    let at = now();
    let insert = sql(format!(
        "INSERT INTO teams (id, workspace_id, display_name, display_name_ci, external_id, scim_managed, \
         member_count, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, 1) \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(workspace_id)
    .bind(&new.display_name)
    .bind(fold(&new.display_name))
    .bind(new.external_id.clone())
    .bind(new.scim_managed)
    .bind(at);
    let mut named = new.members.clone();
    named.sort_unstable();
    named.dedup();
    let checks = existing_sql(workspace_id, &named);
    let adds = add_sql(id, &named);
    let count = move |n: u64| {
        sql(format!(
            "UPDATE teams SET member_count = $2 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(n as i64)
    };
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                let mut found: Vec<Named> = Vec::with_capacity(named.len());
                for q in &checks {
                    found.extend(q.lite_all::<Named>(tx)?);
                }
                let unknown = missing(&named, &found);
                if !unknown.is_empty() {
                    tx.rollback();
                    return Ok(Err(Refused::UnknownMembers(unknown)));
                }
                let mut team: Team = insert.lite_one(tx).map_err(conflict)?;
                let mut n = 0;
                for q in &adds {
                    n += q.lite_execute(tx)?;
                }
                if n > 0 {
                    team = count(n).lite_one(tx)?;
                }
                Ok(Ok(team))
            })
            .await
        }
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            let mut found: Vec<Named> = Vec::with_capacity(named.len());
            for q in &checks {
                found.extend(q.pg_all::<Named>(&mut *tx).await?);
            }
            let unknown = missing(&named, &found);
            if !unknown.is_empty() {
                tx.rollback().await?;
                return Ok(Err(Refused::UnknownMembers(unknown)));
            }
            let mut team: Team = insert.pg_one(&mut *tx).await.map_err(conflict)?;
            let mut n = 0;
            for q in &adds {
                n += q.pg_execute(&mut *tx).await?;
            }
            if n > 0 {
                team = count(n).pg_one(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Ok(team))
        }
    }
}

/// Change one team atomically, the row locked (SQLite: the write thread;
/// PostgreSQL: `FOR UPDATE`), so concurrent membership changes queue and none is
/// lost. `change` sees the current team and returns the edit, or refuses (nothing
/// is written then). Every member id the edit names must be a member of the
/// workspace, or nothing is written. `NotFound` when there is no such team.
pub async fn modify<E: Send + 'static>(
    db: &Db,
    workspace_id: i64,
    id: Uuid,
    change: impl FnOnce(&Team) -> std::result::Result<Edit, E> + Send + 'static,
) -> Result<std::result::Result<Changed, Refused<E>>> {
    let select = sql(locked_sql(db.backend())).bind(workspace_id).bind(id);
    match db.engine() {
        Engine::Sqlite(s) => {
            s.write(move |tx| {
                let current: Team = select.lite_optional(tx)?.ok_or(StoreError::NotFound)?;
                let edit = match change(&current) {
                    Ok(e) => e,
                    Err(refused) => {
                        tx.rollback();
                        return Ok(Err(Refused::Caller(refused)));
                    }
                };
                let named = edit.named_members();
                let mut found = Vec::with_capacity(named.len());
                for q in existing_sql(workspace_id, &named) {
                    found.extend(q.lite_all::<Named>(tx)?);
                }
                let unknown = missing(&named, &found);
                if !unknown.is_empty() {
                    tx.rollback();
                    return Ok(Err(Refused::UnknownMembers(unknown)));
                }
                let (mut added, mut removed) = (0, 0);
                for (q, adds) in member_statements(id, &edit.members) {
                    let n = q.lite_execute(tx)?;
                    if adds { added += n } else { removed += n }
                }
                let team = if edits_row(&current, &edit, added, removed) {
                    update_sql(&current, &edit, added, removed)
                        .lite_one(tx)
                        .map_err(conflict)?
                } else {
                    current
                };
                Ok(Ok(Changed {
                    team,
                    added,
                    removed,
                    named: found,
                }))
            })
            .await
        }
        Engine::Postgres(p) => {
            let mut tx = p.begin().await?;
            let current: Team = select
                .pg_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            let edit = match change(&current) {
                Ok(e) => e,
                Err(refused) => {
                    tx.rollback().await?;
                    return Ok(Err(Refused::Caller(refused)));
                }
            };
            let named = edit.named_members();
            let mut found = Vec::with_capacity(named.len());
            for q in existing_sql(workspace_id, &named) {
                found.extend(q.pg_all::<Named>(&mut *tx).await?);
            }
            let unknown = missing(&named, &found);
            if !unknown.is_empty() {
                tx.rollback().await?;
                return Ok(Err(Refused::UnknownMembers(unknown)));
            }
            let (mut added, mut removed) = (0, 0);
            for (q, adds) in member_statements(id, &edit.members) {
                let n = q.pg_execute(&mut *tx).await?;
                if adds { added += n } else { removed += n }
            }
            let team = if edits_row(&current, &edit, added, removed) {
                update_sql(&current, &edit, added, removed)
                    .pg_one(&mut *tx)
                    .await
                    .map_err(conflict)?
            } else {
                current
            };
            tx.commit().await?;
            Ok(Ok(Changed {
                team,
                added,
                removed,
                named: found,
            }))
        }
    }
}

/// Delete a team and its memberships; the deleted team, or None (no such team, or
/// with `unless_managed`, one SCIM manages: checked in the same statement, so a
/// SCIM write in between cannot slip a managed team under a page's delete).
pub async fn delete(
    db: &Db,
    workspace_id: i64,
    id: Uuid,
    unless_managed: bool,
) -> Result<Option<Team>> {
    db.write_optional(
        sql(format!(
            "DELETE FROM teams WHERE workspace_id = $1 AND id = $2 AND NOT ($3 AND scim_managed) \
             RETURNING {COLUMNS}"
        ))
        .bind(workspace_id)
        .bind(id)
        .bind(unless_managed),
    )
    .await
}

pub async fn by_id(db: &Db, workspace_id: i64, id: Uuid) -> Result<Option<Team>> {
    db.read_optional(
        sql(format!(
            "SELECT {COLUMNS} FROM teams WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id),
    )
    .await
}

/// One page of a team's members in member id order, after `after` (None: from
/// the first). The team must be of the caller's workspace (checked by the caller
/// having read it through [`by_id`]).
pub async fn members_page(
    db: &Db,
    workspace_id: i64,
    team_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TeamMember>> {
    // The workspace is checked here too, not only by the caller's read of the team.
    // `m.id > $2` as well: PostgreSQL otherwise plans a merge join that reads the
    // members index from its start on every page (quadratic over a large team).
    let q = sql(
        "SELECT m.id, m.user_name, m.display_name, m.active, m.scim_managed \
         FROM team_members tm JOIN members m ON m.id = tm.member_id \
         WHERE tm.team_id = $1 AND tm.member_id > $2 AND m.id > $2 AND m.workspace_id = $4 \
         ORDER BY tm.member_id LIMIT $3",
    )
    .bind(team_id)
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit)
    .bind(workspace_id);
    db.read_all(if limit > 100 { q.slow() } else { q }).await
}

/// The teams of these members (in name order), for their `groups` attribute and
/// the member page.
pub async fn teams_of(db: &Db, workspace_id: i64, member_ids: &[Uuid]) -> Result<Vec<Membership>> {
    let mut out = Vec::new();
    for chunk in member_ids.chunks(CHUNK) {
        let q = sql(format!(
            "SELECT tm.member_id, t.id AS team_id, t.display_name FROM team_members tm \
             JOIN teams t ON t.id = tm.team_id \
             WHERE tm.member_id IN ({}) AND t.workspace_id = $1 ORDER BY t.display_name_ci",
            placeholders(2, chunk.len())
        ))
        .bind(workspace_id)
        .bind_all(chunk.iter().map(|id| Bind::Uuid(*id)));
        // One member's teams is an index probe; a page of members' is a scan's worth.
        let q = if chunk.len() > 1 { q.slow() } else { q };
        out.extend(db.read_all::<Membership>(q).await?);
    }
    Ok(out)
}

/// A SCIM list request for teams, already parsed.
pub struct Search<'a> {
    pub filter: Option<&'a Filter>,
    /// Order by name instead of by id (creation).
    pub by_name: bool,
    pub descending: bool,
    /// Zero-based.
    pub offset: i64,
    /// 0: count only.
    pub limit: i64,
}

/// Teams matching a SCIM filter: the total and one page.
pub async fn search(db: &Db, workspace_id: i64, s: &Search<'_>) -> Result<(i64, Vec<Team>)> {
    let mut b = SqlBuilder::new(db.backend());
    let ws = b.bind(Bind::Int(workspace_id));
    let mut cond = format!("t.workspace_id = {ws}");
    if let Some(f) = s.filter {
        let compiled = scim_sql::compile_team(&mut b, f)?;
        cond = format!("{cond} AND {compiled}");
    }
    let count_sql = format!("SELECT COUNT(*) FROM teams t WHERE {cond}");
    let count_binds = b.binds.clone();
    let count = || async {
        db.read_one::<i64>(sql(count_sql.clone()).bind_all(count_binds.clone()).slow())
            .await
    };
    if s.limit == 0 {
        return Ok((count().await?, Vec::new()));
    }
    let dir = if s.descending { "DESC" } else { "ASC" };
    let order = match (s.by_name, db.backend()) {
        (true, Backend::Sqlite) => format!("t.display_name_ci {dir}, t.id {dir}"),
        (true, Backend::Postgres) => format!("t.display_name_ci COLLATE \"C\" {dir}, t.id {dir}"),
        (false, _) => format!("t.id {dir}"),
    };
    let limit = b.bind(Bind::Int(s.limit));
    let offset = b.bind(Bind::Int(s.offset));
    let cols = COLUMNS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let page = sql(format!(
        "SELECT {cols} FROM teams t WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    ))
    .bind_all(b.binds);
    let page = if s.filter.is_some_and(index_lookup) {
        page
    } else {
        page.slow()
    };
    let rows: Vec<Team> = db.read_all(page).await?;
    let n = rows.len() as i64;
    let total = if n < s.limit && (n > 0 || s.offset == 0) {
        s.offset + n
    } else {
        count().await?
    };
    Ok((total, rows))
}

/// `displayName`, `externalId` or `id` equal to a string: one index probe.
fn index_lookup(f: &Filter) -> bool {
    matches!(
        f,
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value: CompValue::Str(_),
        } if attr.sub.is_none() && matches!(attr.attr.name, "displayName" | "externalId" | "id")
    )
}

pub async fn count(db: &Db, workspace_id: i64) -> Result<i64> {
    db.read_one(
        sql("SELECT COUNT(*) FROM teams WHERE workspace_id = $1")
            .bind(workspace_id)
            .slow(),
    )
    .await
}

/// Which page of the team list to show, in name order.
pub enum Cursor<'a> {
    First,
    After(&'a str),
    Before(&'a str),
}

/// Teams whose name contains `search` (ignoring case), one page in name order by
/// keyset on the folded name.
pub async fn browse(
    db: &Db,
    workspace_id: i64,
    search: &str,
    cursor: Cursor<'_>,
    limit: i64,
) -> Result<Vec<Team>> {
    let c = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " COLLATE \"C\"",
    };
    let pattern = {
        let escaped = fold(search)
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    };
    let mut text = format!(
        "SELECT {COLUMNS} FROM teams WHERE workspace_id = $1 AND display_name_ci LIKE $2 ESCAPE '\\'"
    );
    let (op, order, key) = match cursor {
        Cursor::First => ("", "ASC", None),
        Cursor::After(k) => (">", "ASC", Some(fold(k))),
        Cursor::Before(k) => ("<", "DESC", Some(fold(k))),
    };
    let mut q_binds: Vec<Bind> = vec![Bind::Int(workspace_id), Bind::Text(pattern)];
    if let Some(k) = key {
        text.push_str(&format!(" AND display_name_ci{c} {op} $3"));
        q_binds.push(Bind::Text(k));
    }
    text.push_str(&format!(
        " ORDER BY display_name_ci{c} {order} LIMIT ${}",
        q_binds.len() + 1
    ));
    q_binds.push(Bind::Int(limit));
    let mut rows: Vec<Team> = db.read_all(sql(text).bind_all(q_binds).slow()).await?;
    if matches!(cursor, Cursor::Before(_)) {
        rows.reverse();
    }
    Ok(rows)
}
