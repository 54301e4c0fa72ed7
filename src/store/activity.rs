//! Provisioning activity: every SCIM write and its outcome, so an admin can see why
//! the identity provider reports an error.

use super::{Db, Result, now};
use crate::on_pool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Activity {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub operation: String,
    pub member_id: Option<Uuid>,
    pub user_name: Option<String>,
    pub status: i32,
    pub detail: String,
}

pub struct NewActivity<'a> {
    pub workspace_id: i64,
    pub actor: &'a str,
    pub operation: &'a str,
    pub member_id: Option<Uuid>,
    pub user_name: Option<&'a str>,
    pub status: u16,
    pub detail: &'a str,
}

pub async fn record(db: &Db, a: &NewActivity<'_>) -> Result<()> {
    // Details are short by design; keep a hostile userName from bloating the log.
    let user_name = a.user_name.map(|u| u.chars().take(256).collect::<String>());
    let detail: String = a.detail.chars().take(500).collect();
    on_pool!(db.writer(), |p| {
        sqlx::query(
            "INSERT INTO scim_activity (workspace_id, at, actor, operation, member_id, user_name, status, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(a.workspace_id)
        .bind(now())
        .bind(a.actor)
        .bind(a.operation)
        .bind(a.member_id)
        .bind(&user_name)
        .bind(i32::from(a.status))
        .bind(&detail)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The most recent activity, newest first; optionally one member's, or failures only.
pub async fn recent(
    db: &Db,
    workspace_id: i64,
    member_id: Option<Uuid>,
    failures_only: bool,
    limit: i64,
) -> Result<Vec<Activity>> {
    let sql = "SELECT id, at, actor, operation, member_id, user_name, status, detail FROM scim_activity \
               WHERE workspace_id = $1 AND ($2 IS NULL OR member_id = $2) AND ($3 = FALSE OR status >= 400) \
               ORDER BY id DESC LIMIT $4";
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Activity>(sql)
            .bind(workspace_id)
            .bind(member_id)
            .bind(failures_only)
            .bind(limit)
            .fetch_all(p)
            .await
    })?)
}
