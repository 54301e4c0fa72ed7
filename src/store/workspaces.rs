//! Workspaces: one tenant each, addressed by subdomain.

use super::sql::sql;
use super::{Db, Result, StoreError, now, unique_violation};
use crate::domain::Subdomain;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: i64,
    pub subdomain: String,
    pub name: String,
    pub scim_enabled: bool,
    /// "Manage teams with SCIM": teams are the identity provider's (SCIM Groups).
    pub scim_teams: bool,
    pub password_signin: bool,
    pub created_at: OffsetDateTime,
}

crate::from_row!(Workspace {
    id,
    subdomain,
    name,
    scim_enabled,
    scim_teams,
    password_signin,
    created_at
});

const COLUMNS: &str = "id, subdomain, name, scim_enabled, scim_teams, password_signin, created_at";

pub async fn create(db: &Db, subdomain: &Subdomain, name: &str) -> Result<Workspace> {
    let q = sql(format!(
        "INSERT INTO workspaces (subdomain, name, created_at) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    ))
    .bind(subdomain.as_str())
    .bind(name)
    .bind(now());
    db.write_one(q)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::Conflict(format!("workspace '{subdomain}' already exists")),
            None => e,
        })
}

pub async fn by_subdomain(db: &Db, subdomain: &str) -> Result<Option<Workspace>> {
    if !super::storable(subdomain) {
        return Ok(None);
    }
    db.read_optional(
        sql(format!(
            "SELECT {COLUMNS} FROM workspaces WHERE subdomain = $1"
        ))
        .bind(subdomain),
    )
    .await
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Workspace>> {
    db.read_optional(sql(format!("SELECT {COLUMNS} FROM workspaces WHERE id = $1")).bind(id))
        .await
}

pub async fn count(db: &Db) -> Result<i64> {
    db.read_one(sql("SELECT COUNT(*) FROM workspaces")).await
}

pub async fn set_scim_enabled(db: &Db, workspace_id: i64, enabled: bool) -> Result<()> {
    let q = sql("UPDATE workspaces SET scim_enabled = $1 WHERE id = $2")
        .bind(enabled)
        .bind(workspace_id);
    let changed = db.execute(q).await?;
    db.auth_changed();
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn set_password_signin(db: &Db, workspace_id: i64, enabled: bool) -> Result<()> {
    let q = sql("UPDATE workspaces SET password_signin = $1 WHERE id = $2")
        .bind(enabled)
        .bind(workspace_id);
    let changed = db.execute(q).await?;
    db.auth_changed();
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn set_scim_teams(db: &Db, workspace_id: i64, enabled: bool) -> Result<()> {
    let q = sql("UPDATE workspaces SET scim_teams = $1 WHERE id = $2")
        .bind(enabled)
        .bind(workspace_id);
    let changed = db.execute(q).await?;
    db.auth_changed();
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
