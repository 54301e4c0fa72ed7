//! Members of a workspace. Every query is scoped by `workspace_id`.
//!
//! A member row keeps the canonical SCIM resource as JSON plus the facts Rollcall
//! indexes or uses itself (userName, externalId, role, active, names); the email
//! values live in `member_emails` so `emails.value eq ...` uses an index.

use super::{Db, Result, StoreError, now, unique_violation};
use crate::on_pool;
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
    let mut emails = data.emails_ci.clone();
    emails.sort();
    emails.dedup();
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
        for email in &emails {
            sqlx::query(
                "INSERT INTO member_emails (member_id, workspace_id, value_ci) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(workspace_id)
            .bind(email)
            .execute(&mut *tx)
            .await?;
        }
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
