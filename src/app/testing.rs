//! What the use cases' unit tests share: a fresh SQLite database file, settings, a
//! workspace with its admin, more members. No server.

use crate::app::admin::{self, CreatedWorkspace};
use crate::config::{Config, Settings};
use crate::domain::{Email, Role, Subdomain};
use crate::store::Db;
use crate::store::members::{self, Member};
use crate::store::workspaces::Workspace;

/// A new, migrated SQLite database in a file of its own, so reads take the read
/// connections as they do in production (in memory, the write thread's one
/// connection would serve them).
pub(crate) async fn db() -> Db {
    let dir = std::env::temp_dir().join("rollcall-app-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!(
        "sqlite://{}/{}.db",
        dir.display(),
        uuid::Uuid::new_v4().simple()
    );
    Db::connect(&url).await.expect("database")
}

/// The default settings, adjusted.
pub(crate) fn config(adjust: impl FnOnce(&mut Settings)) -> Config {
    let mut settings = Settings::default();
    adjust(&mut settings);
    Config::from_settings(settings).expect("settings")
}

/// Workspace `sub` with its first admin, `admin@<sub>.test`.
pub(crate) async fn workspace(db: &Db, sub: &str) -> CreatedWorkspace {
    let email = Email::parse(&format!("admin@{sub}.test")).expect("email");
    admin::create_workspace(
        db,
        &Subdomain::parse(sub).expect("subdomain"),
        "Acme",
        &email,
    )
    .await
    .expect("workspace")
}

/// Another member of `ws`, with a password when one is given.
pub(crate) async fn member(
    db: &Db,
    ws: &Workspace,
    email: &str,
    role: Role,
    password: Option<&str>,
) -> Member {
    let hash = match password {
        Some(p) => Some(crate::secrets::hash_password(p.to_owned()).await),
        None => None,
    };
    let data = admin::local_member(&Email::parse(email).expect("email"), role);
    members::create(db, ws.id, &data, hash.as_deref())
        .await
        .expect("member")
}
