//! Workspaces: one tenant each, addressed by subdomain.

use super::{Db, Result, StoreError, now, unique_violation};
use crate::domain::Subdomain;
use crate::on_pool;
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Workspace {
    pub id: i64,
    pub subdomain: String,
    pub name: String,
    pub scim_enabled: bool,
    pub password_signin: bool,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, subdomain, name, scim_enabled, password_signin, created_at";

pub async fn create(db: &Db, subdomain: &Subdomain, name: &str) -> Result<Workspace> {
    let sql = format!(
        "INSERT INTO workspaces (subdomain, name, created_at) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    );
    let res = on_pool!(db.writer(), |p| {
        sqlx::query_as::<_, Workspace>(&sql)
            .bind(subdomain.as_str())
            .bind(name)
            .bind(now())
            .fetch_one(p)
            .await
    });
    res.map_err(|e| match unique_violation(&e) {
        Some(_) => StoreError::Conflict(format!("workspace '{subdomain}' already exists")),
        None => e.into(),
    })
}

pub async fn by_subdomain(db: &Db, subdomain: &str) -> Result<Option<Workspace>> {
    let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE subdomain = $1");
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Workspace>(&sql)
            .bind(subdomain)
            .fetch_optional(p)
            .await
    })?)
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Workspace>> {
    let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE id = $1");
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_as::<_, Workspace>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await
    })?)
}

pub async fn count(db: &Db) -> Result<i64> {
    Ok(on_pool!(db.reader(), |p| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM workspaces")
            .fetch_one(p)
            .await
    })?)
}

pub async fn set_scim_enabled(db: &Db, workspace_id: i64, enabled: bool) -> Result<()> {
    let done = on_pool!(db.writer(), |p| {
        sqlx::query("UPDATE workspaces SET scim_enabled = $1 WHERE id = $2")
            .bind(enabled)
            .bind(workspace_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
    })?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn set_password_signin(db: &Db, workspace_id: i64, enabled: bool) -> Result<()> {
    let done = on_pool!(db.writer(), |p| {
        sqlx::query("UPDATE workspaces SET password_signin = $1 WHERE id = $2")
            .bind(enabled)
            .bind(workspace_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
    })?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
