//! Members of a workspace. Every query is scoped by `workspace_id`.
//!
//! A member row keeps the canonical SCIM resource as JSON plus the facts Rollcall
//! indexes or uses itself (userName, externalId, role, active, names); the email
//! values live in `member_emails` so `emails.value eq ...` uses an index.

use super::scim_sql::{self, Bind, SqlBuilder};
use super::{Db, Result, StoreError, now, unique_violation};
use crate::on_pool;
use crate::scim::filter::Filter;
use crate::scim::schema::AttrRef;
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: Uuid,
    pub workspace_id: i64,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub role: String,
    pub active: bool,
    pub scim_managed: bool,
    pub resource: Json<Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

pub(crate) const COLUMNS: &str = "id, workspace_id, user_name, external_id, display_name, \
     given_name, family_name, role, active, scim_managed, resource, created_at, updated_at, version";

/// Everything written for a member; the `*_ci` keys are folded by the caller.
#[derive(Debug, Clone)]
pub struct MemberData {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub role: String,
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
fn email_keys(data: &MemberData) -> Vec<String> {
    let mut emails = data.emails_ci.clone();
    emails.sort();
    emails.dedup();
    emails
}

/// Index a member's email values (inside the caller's transaction).
macro_rules! insert_emails {
    ($tx:expr, $id:expr, $workspace_id:expr, $emails:expr) => {
        for email in $emails {
            sqlx::query(
                "INSERT INTO member_emails (member_id, workspace_id, value_ci) VALUES ($1, $2, $3)",
            )
            .bind($id)
            .bind($workspace_id)
            .bind(email)
            .execute($tx)
            .await?;
        }
    };
}

/// Turn a unique-index violation into the conflict a client can act on.
fn conflict(err: sqlx::Error) -> StoreError {
    match unique_violation(&err) {
        Some(what) if what.contains("external_id") => {
            StoreError::Conflict("externalId is already in use in this workspace".into())
        }
        Some(what) if what.contains("user_name") => {
            StoreError::Conflict("userName is already in use in this workspace".into())
        }
        _ => err.into(),
    }
}

pub async fn create(
    db: &Db,
    workspace_id: i64,
    data: &MemberData,
    password_hash: Option<&str>,
) -> Result<Member> {
    let id = Uuid::now_v7();
    let at = now();
    let insert = format!(
        "INSERT INTO members (id, workspace_id, user_name, user_name_ci, external_id, display_name, \
         given_name, family_name, role, active, scim_managed, password_hash, resource, created_at, \
         updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1) \
         RETURNING {COLUMNS}"
    );
    let emails = email_keys(data);
    on_pool!(db.writer(), |p| {
        let mut tx = p.begin().await?;
        let member = sqlx::query_as::<_, Member>(&insert)
            .bind(id)
            .bind(workspace_id)
            .bind(&data.user_name)
            .bind(fold(&data.user_name))
            .bind(&data.external_id)
            .bind(&data.display_name)
            .bind(&data.given_name)
            .bind(&data.family_name)
            .bind(&data.role)
            .bind(data.active)
            .bind(data.scim_managed)
            .bind(password_hash)
            .bind(Json(&data.resource))
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict)?;
        insert_emails!(&mut *tx, id, workspace_id, &emails);
        tx.commit().await?;
        Ok(member)
    })
}

pub async fn by_id(db: &Db, workspace_id: i64, id: Uuid) -> Result<Option<Member>> {
    let sql = format!("SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND id = $2");
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Member>(&sql)
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(p)
            .await
    })?)
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
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        member: Member,
        password_hash: Option<String>,
    }
    let sql = format!(
        "SELECT {COLUMNS}, password_hash FROM members WHERE workspace_id = $1 AND user_name_ci = $2"
    );
    let row = on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Row>(&sql)
            .bind(workspace_id)
            .bind(fold(user_name))
            .fetch_optional(p)
            .await
    })?;
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
    let sql = format!(
        "SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND id IN \
         (SELECT member_id FROM member_emails WHERE workspace_id = $1 AND value_ci = $2) \
         ORDER BY id LIMIT 1"
    );
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Member>(&sql)
            .bind(workspace_id)
            .bind(fold(email))
            .fetch_optional(p)
            .await
    })?)
}

/// One page of members in creation order.
pub async fn page(db: &Db, workspace_id: i64, offset: i64, limit: i64) -> Result<Vec<Member>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM members WHERE workspace_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
    );
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Member>(&sql)
            .bind(workspace_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await
    })?)
}

pub async fn count(db: &Db, workspace_id: i64) -> Result<i64> {
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM members WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(p)
            .await
    })?)
}

/// Bind `Bind` values, in order, to a query (any backend).
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Bool(v) => q.bind(*v),
                Bind::Uuid(u) => q.bind(*u),
                Bind::Time(t) => q.bind(*t),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }};
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
}

/// Members matching a SCIM filter: the total and one page.
pub async fn search(db: &Db, workspace_id: i64, s: &Search<'_>) -> Result<(i64, Vec<Member>)> {
    let mut b = SqlBuilder::new(db.backend());
    let ws = b.bind(Bind::Int(workspace_id));
    let mut cond = format!("m.workspace_id = {ws}");
    if let Some(f) = s.filter {
        let sql = scim_sql::compile(&mut b, f).map_err(|e| StoreError::InvalidFilter(e.detail))?;
        cond = format!("{cond} AND {sql}");
    }
    let filter_binds = b.binds.len();
    let count_sql = format!("SELECT COUNT(*) FROM members m WHERE {cond}");
    let total = on_pool!(db.reader(), |p| {
        bind_all!(
            sqlx::query_scalar::<_, i64>(&count_sql),
            &b.binds[..filter_binds]
        )
        .fetch_one(p)
        .await
    })?;
    if s.limit == 0 || s.offset >= total {
        return Ok((total, Vec::new()));
    }
    let order = scim_sql::order_by(&b, s.sort, s.descending);
    let limit = b.bind(Bind::Int(s.limit));
    let offset = b.bind(Bind::Int(s.offset));
    let cols = COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let page_sql = format!(
        "SELECT {cols} FROM members m WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    );
    let rows = on_pool!(db.reader(), |p| {
        bind_all!(sqlx::query_as::<_, Member>(&page_sql), &b.binds)
            .fetch_all(p)
            .await
    })?;
    Ok((total, rows))
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
    modify(db, workspace_id, id, |current| match expected_version {
        Some(v) if v != current.version => Err(StoreError::VersionMismatch),
        _ => Ok(data.clone()),
    })
    .await?
}

/// Read-modify-write of one member in one write transaction, the row locked
/// (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT ... FOR UPDATE`), so concurrent
/// writers queue instead of losing updates. `change` sees the current member and
/// returns the new data, or refuses with its own error (nothing is written then).
pub async fn modify<E>(
    db: &Db,
    workspace_id: i64,
    id: Uuid,
    change: impl FnOnce(&Member) -> std::result::Result<MemberData, E>,
) -> Result<std::result::Result<Member, E>> {
    let (begin, lock) = match db.backend() {
        super::Backend::Sqlite => ("BEGIN IMMEDIATE", ""),
        super::Backend::Postgres => ("BEGIN", " FOR UPDATE"),
    };
    let select = format!("SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND id = $2{lock}");
    let update = format!(
        "UPDATE members SET user_name = $3, user_name_ci = $4, external_id = $5, display_name = $6, \
         given_name = $7, family_name = $8, role = $9, active = $10, scim_managed = $11, resource = $12, \
         updated_at = $13, version = version + 1 WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    on_pool!(db.writer(), |p| {
        let mut tx = p.begin_with(begin).await?;
        let current = sqlx::query_as::<_, Member>(&select)
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let data = match change(&current) {
            Ok(d) => d,
            Err(refused) => {
                tx.rollback().await?;
                return Ok(Err(refused));
            }
        };
        let member = sqlx::query_as::<_, Member>(&update)
            .bind(workspace_id)
            .bind(id)
            .bind(&data.user_name)
            .bind(fold(&data.user_name))
            .bind(&data.external_id)
            .bind(&data.display_name)
            .bind(&data.given_name)
            .bind(&data.family_name)
            .bind(&data.role)
            .bind(data.active)
            .bind(data.scim_managed)
            .bind(Json(&data.resource))
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict)?;
        sqlx::query("DELETE FROM member_emails WHERE member_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_emails!(&mut *tx, id, workspace_id, &email_keys(&data));
        tx.commit().await?;
        Ok(Ok(member))
    })
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
    let mut sql =
        format!("SELECT {COLUMNS} FROM members WHERE workspace_id = $1 AND user_name_ci{c} >= $2");
    // The upper bound of the prefix range: every string that starts with it sorts below.
    let upper = (!prefix.is_empty()).then(|| format!("{prefix}\u{10FFFF}"));
    if upper.is_some() {
        sql.push_str(&format!(" AND user_name_ci{c} < $3"));
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
        sql.push_str(&format!(" AND user_name_ci{c} {op} ${next}"));
    }
    let limit_at = next + usize::from(key.is_some());
    sql.push_str(&format!(
        " ORDER BY user_name_ci{c} {order} LIMIT ${limit_at}"
    ));
    let mut rows = on_pool!(db.reader(), |p| {
        let mut q = sqlx::query_as::<_, Member>(&sql)
            .bind(workspace_id)
            .bind(&prefix);
        if let Some(u) = &upper {
            q = q.bind(u);
        }
        if let Some(k) = &key {
            q = q.bind(k);
        }
        q.bind(limit).fetch_all(p).await
    })?;
    if matches!(cursor, Cursor::Before(_)) {
        rows.reverse();
    }
    Ok(rows)
}
