//! The workspace administration use cases (`rollcall::app::admin`) as the tests call
//! them: by subdomain, which is parsed and looked up here, in one place.

use rollcall::app::admin::{self, AdminError, CreatedWorkspace, SsoView};
use rollcall::config::Config;
use rollcall::domain::{Email, Subdomain};
use rollcall::store::Db;
use rollcall::store::workspaces::Workspace;

pub use rollcall::app::admin::{
    ClientSpec, CreatedClient, DEMO_REDIRECT_URI, SamlSource, create_client, local_member,
    seed_demo,
};
pub use rollcall::oauth::client::GrantType;
pub use rollcall::store::oauth::ClientScope;

/// The workspace with this subdomain.
pub async fn workspace(db: &Db, subdomain: &str) -> Result<Workspace, AdminError> {
    let sub =
        Subdomain::parse(subdomain).map_err(|_| AdminError::NoWorkspace(subdomain.to_owned()))?;
    admin::workspace(db, &sub).await
}

pub async fn create_workspace(
    db: &Db,
    subdomain: &str,
    name: &str,
    admin_email: &str,
) -> Result<CreatedWorkspace, AdminError> {
    let sub = Subdomain::parse(subdomain).map_err(|e| AdminError::Refused(e.0))?;
    let email = Email::parse(admin_email).map_err(|e| AdminError::Refused(e.0))?;
    admin::create_workspace(db, &sub, name, &email).await
}

pub async fn set_scim(db: &Db, subdomain: &str, enabled: bool) -> Result<(), AdminError> {
    admin::set_scim(db, &workspace(db, subdomain).await?, enabled).await
}

pub async fn create_api_token(
    db: &Db,
    subdomain: &str,
    name: &str,
    created_by: &str,
) -> Result<String, AdminError> {
    admin::create_api_token(db, &workspace(db, subdomain).await?, name, created_by).await
}

pub async fn sso_settings(
    db: &Db,
    config: &Config,
    subdomain: &str,
) -> Result<SsoView, AdminError> {
    admin::sso_settings(db, config, &workspace(db, subdomain).await?).await
}

pub async fn set_oidc(
    db: &Db,
    sso: &rollcall::sso::Sso,
    subdomain: &str,
    issuer: &str,
    client_id: &str,
    client_secret: Option<&str>,
    probe: bool,
) -> Result<(), AdminError> {
    let ws = workspace(db, subdomain).await?;
    admin::set_oidc(db, sso, &ws, issuer, client_id, client_secret, probe).await
}

pub async fn set_saml(
    db: &Db,
    fetch: &rollcall::sso::fetch::Fetcher,
    subdomain: &str,
    source: SamlSource,
) -> Result<(), AdminError> {
    admin::set_saml(db, fetch, &workspace(db, subdomain).await?, source).await
}

pub async fn sso_off(db: &Db, subdomain: &str) -> Result<(), AdminError> {
    admin::sso_off(db, &workspace(db, subdomain).await?).await
}

pub async fn set_password_policy(
    db: &Db,
    subdomain: &str,
    password_with_sso: bool,
    break_glass_email: Option<&str>,
) -> Result<(), AdminError> {
    let ws = workspace(db, subdomain).await?;
    admin::set_password_policy(db, &ws, password_with_sso, break_glass_email).await
}

pub async fn set_auto_create(db: &Db, subdomain: &str, on: bool) -> Result<(), AdminError> {
    admin::set_auto_create(db, &workspace(db, subdomain).await?, on).await
}

/// A client of workspace `subdomain` with these grants (none: the code grant) and
/// every scope; confidential.
pub async fn register_client(
    db: &Db,
    subdomain: &str,
    name: &str,
    redirect_uris: &[String],
    grants: &[GrantType],
) -> Result<CreatedClient, AdminError> {
    let ws = workspace(db, subdomain).await?;
    let spec = ClientSpec {
        name,
        redirect_uris,
        public: false,
        grants,
        scopes: None,
    };
    admin::register_client(db, Some(&ws), &spec, "test").await
}

/// A client of workspace `subdomain` allowed only client credentials.
pub async fn script_client(db: &Db, subdomain: &str, name: &str) -> CreatedClient {
    register_client(db, subdomain, name, &[], &[GrantType::ClientCredentials])
        .await
        .expect("workspace client")
}

pub async fn delete_client(db: &Db, client_id: &str) -> Result<(), AdminError> {
    admin::delete_client(db, ClientScope::Any, client_id, "test").await
}

/// "Manage teams with SCIM" (issue 14): `/Groups` answers only while it is on.
pub async fn set_scim_teams(db: &Db, subdomain: &str, on: bool) -> Result<(), AdminError> {
    admin::set_scim_teams(db, &workspace(db, subdomain).await?, on).await
}
