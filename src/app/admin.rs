//! Workspace administration: what operators (the CLI, `--demo`) and workspace
//! admins (the settings pages) do. Every function takes the workspace it acts on
//! (looked up once by the caller, `workspace` for a subdomain), never a name to look
//! up again.

use crate::domain::{Email, Role, Subdomain};
use crate::oauth::Scopes;
use crate::oauth::client::{self as oauth_client, GrantType};
use crate::secrets;
use crate::store::oauth::{self, ClientScope};
use crate::store::workspaces::Workspace;
use crate::store::{Db, StoreError, activity, members, sso, tokens, workspaces};
use serde_json::json;

/// Why an administration use case did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No workspace has this subdomain.
    #[error("no workspace '{0}'")]
    NoWorkspace(String),
    /// No OAuth client with this id that the caller may change (another
    /// workspace's, a deleted one; for a secret rotation, a public one).
    #[error("no OAuth client '{0}' here")]
    NoClient(String),
    /// What was given cannot be used. The message is safe to show on a page: it
    /// names what is wrong with what the admin gave, never what a fetch returned or
    /// a library said.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refuse(message: impl Into<String>) -> AdminError {
    AdminError::Refused(message.into())
}

/// The workspace with this subdomain.
pub async fn workspace(db: &Db, subdomain: &Subdomain) -> Result<Workspace, AdminError> {
    workspaces::by_subdomain(db, subdomain.as_str())
        .await?
        .ok_or_else(|| AdminError::NoWorkspace(subdomain.to_string()))
}

pub struct CreatedWorkspace {
    pub workspace: Workspace,
    pub admin: members::Member,
    pub admin_password: String,
}

/// A workspace with its first admin, who signs in with the returned password.
pub async fn create_workspace(
    db: &Db,
    subdomain: &Subdomain,
    name: &str,
    admin_email: &Email,
) -> Result<CreatedWorkspace, AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(refuse("name: a workspace needs a name"));
    }
    let workspace = workspaces::create(db, subdomain, name).await?;
    let password = secrets::generate_password();
    let hash = secrets::hash_password(password.clone()).await;
    let admin = members::create(
        db,
        workspace.id,
        &local_member(admin_email, Role::Admin),
        Some(&hash),
    )
    .await?;
    Ok(CreatedWorkspace {
        workspace,
        admin,
        admin_password: password,
    })
}

/// The stored form of a member created in Rollcall itself (not through SCIM): the
/// same canonical SCIM resource a SCIM client would read back.
pub fn local_member(email: &Email, role: Role) -> members::MemberData {
    members::MemberData {
        user_name: email.as_str().to_owned(),
        external_id: None,
        display_name: None,
        given_name: None,
        family_name: None,
        role,
        active: true,
        scim_managed: false,
        resource: json!({
            "userName": email.as_str(),
            "active": true,
            "emails": [{"value": email.as_str(), "type": "work", "primary": true}],
            "roles": [{"value": role.as_str(), "type": "role", "primary": true}],
        }),
        emails_ci: vec![email.folded()],
    }
}

/// Turn the workspace's SCIM API on or off.
pub async fn set_scim(db: &Db, workspace: &Workspace, enabled: bool) -> Result<(), AdminError> {
    workspaces::set_scim_enabled(db, workspace.id, enabled).await?;
    Ok(())
}

/// "Manage teams with SCIM": while on, the identity provider manages teams through
/// SCIM Groups and the teams it manages are read-only on the pages.
pub async fn set_scim_teams(db: &Db, workspace: &Workspace, on: bool) -> Result<(), AdminError> {
    workspaces::set_scim_teams(db, workspace.id, on).await?;
    Ok(())
}

/// Whether members may sign in with a password (while SSO is off; see
/// `set_password_policy` for the rules while it is on).
pub async fn set_password_signin(
    db: &Db,
    workspace: &Workspace,
    enabled: bool,
) -> Result<(), AdminError> {
    workspaces::set_password_signin(db, workspace.id, enabled).await?;
    Ok(())
}

/// A new API token for the workspace's SCIM API; returns the token, shown once.
pub async fn create_api_token(
    db: &Db,
    workspace: &Workspace,
    name: &str,
    created_by: &str,
) -> Result<String, AdminError> {
    let token = secrets::generate(secrets::Kind::ApiToken);
    tokens::create(
        db,
        workspace.id,
        name,
        created_by,
        &secrets::digest(&token),
        &secrets::display_prefix(&token),
    )
    .await?;
    Ok(token)
}

/// Revoke one of the workspace's API tokens (`Store(NotFound)`: not one of its own).
pub async fn revoke_api_token(db: &Db, workspace: &Workspace, id: i64) -> Result<(), AdminError> {
    tokens::revoke(db, workspace.id, id).await?;
    Ok(())
}

/// End one of the workspace's OAuth grants, and so all its tokens
/// (`Store(NotFound)`: not one of its own).
pub async fn revoke_grant(db: &Db, workspace: &Workspace, id: i64) -> Result<(), AdminError> {
    crate::store::oauth::revoke_grant(db, workspace.id, id).await?;
    Ok(())
}

/// A registered OAuth client; the secret (None for public clients) is shown once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedClient {
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// Register a global OAuth client (serving every workspace) for the authorization
/// code grant, allowed every scope. Redirect URIs are matched as exact strings
/// later, so they are stored exactly as given.
pub async fn create_client(
    db: &Db,
    name: &str,
    redirect_uris: &[String],
    public: bool,
) -> Result<CreatedClient, AdminError> {
    let spec = ClientSpec {
        name,
        redirect_uris,
        public,
        grants: &[],
        scopes: None,
    };
    register_client(db, None, &spec, "cli").await
}

/// What to register.
#[derive(Debug, Clone)]
pub struct ClientSpec<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    /// No secret; must use PKCE.
    pub public: bool,
    /// Empty: the authorization code grant only.
    pub grants: &'a [GrantType],
    /// None: every scope.
    pub scopes: Option<Scopes>,
}

/// Register an OAuth client: a workspace client when `workspace` is given (it
/// authorizes into that workspace only), else a global one. `created_by`: the admin
/// or `cli`, for the activity log.
pub async fn register_client(
    db: &Db,
    workspace: Option<&Workspace>,
    spec: &ClientSpec<'_>,
    created_by: &str,
) -> Result<CreatedClient, AdminError> {
    let grants = match spec.grants {
        [] => vec![GrantType::AuthorizationCode],
        some => some.to_vec(),
    };
    let scopes = spec.scopes.unwrap_or_else(Scopes::all);
    let name = spec.name.trim();
    oauth_client::check_registration(
        name,
        spec.public,
        workspace.is_some(),
        spec.redirect_uris,
        &grants,
        scopes,
    )
    .map_err(refuse)?;
    let id = format!("rc_client_{}", uuid::Uuid::new_v4().simple());
    let secret = (!spec.public).then(|| secrets::generate(secrets::Kind::ClientSecret));
    let digest = secret.as_deref().map(secrets::digest);
    let grant_types = GrantType::to_list(&grants);
    let scope_text = scopes.to_string();
    let client = oauth::create_client(
        db,
        &oauth::NewClient {
            id: &id,
            name,
            secret_digest: digest.as_deref(),
            redirect_uris: spec.redirect_uris,
            scopes: &scope_text,
            grant_types: &grant_types,
            workspace_id: workspace.map(|w| w.id),
            created_by: Some(created_by),
        },
    )
    .await?;
    log_client(
        db,
        &client,
        created_by,
        "register client",
        201,
        format!(
            "OAuth client {} ({}) registered: {}, grants {}, scopes {}",
            client.name,
            client.id,
            if client.public {
                "public"
            } else {
                "confidential"
            },
            grant_types,
            scope_text
        ),
    )
    .await;
    Ok(CreatedClient {
        client_id: id,
        client_secret: secret,
    })
}

/// A workspace client's change, in its workspace's activity log.
async fn log_client(
    db: &Db,
    client: &oauth::Client,
    actor: &str,
    operation: &str,
    status: u16,
    detail: String,
) {
    let Some(workspace_id) = client.workspace_id else {
        return;
    };
    let entry = activity::NewActivity {
        workspace_id,
        actor,
        operation,
        member_id: None,
        user_name: None,
        team_id: None,
        team_name: None,
        status,
        detail: &detail,
    };
    if let Err(e) = activity::record(db, &entry).await {
        tracing::warn!(error = %e, "could not record a client change");
    }
}

/// An OAuth client as an admin or a script sees it (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    /// The workspace of a workspace client; null for a global client.
    pub workspace: Option<String>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub scopes: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    pub created_by: Option<String>,
    /// After a rotation: until when the replaced secret still works.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<time::OffsetDateTime>,
}

/// The clients of `workspace`, or (None) every client, global and of every
/// workspace. Oldest first.
pub async fn list_clients(
    db: &Db,
    workspace: Option<&Workspace>,
) -> Result<Vec<ClientView>, AdminError> {
    let now = crate::store::now();
    let rows = oauth::list_clients(db, workspace.map(|w| w.id)).await?;
    Ok(rows
        .into_iter()
        .map(|l| {
            let c = l.client;
            ClientView {
                grant_types: GrantType::parse_list(&c.grant_types)
                    .into_iter()
                    .map(GrantType::as_str)
                    .collect(),
                client_id: c.id,
                name: c.name,
                workspace: l.subdomain,
                public: c.public,
                redirect_uris: c.redirect_uris,
                scopes: c.scopes,
                created_at: c.created_at,
                created_by: c.created_by,
                previous_secret_expires_at: c.previous_secret_expires_at.filter(|t| *t > now),
            }
        })
        .collect())
}

/// A new secret, shown once, and until when the old one still works.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub previous_secret_expires_at: time::OffsetDateTime,
}

/// Give a confidential client a new secret; the old one keeps working for
/// `overlap` (then it stops, and the tokens it obtained by client credentials end).
/// `scope`: `Workspace` for an admin (its own workspace's clients only), `Any` for
/// the operator.
pub async fn rotate_client_secret(
    db: &Db,
    scope: ClientScope,
    client_id: &str,
    overlap: std::time::Duration,
    actor: &str,
) -> Result<RotatedSecret, AdminError> {
    let secret = secrets::generate(secrets::Kind::ClientSecret);
    // The setting is bounded (30 days); a caller passing more gets the bound.
    let bound = time::Duration::seconds(crate::config::MAX_SECRET_OVERLAP_SECS as i64);
    let overlap = time::Duration::try_from(overlap).map_or(bound, |d| d.min(bound));
    let until = crate::store::now() + overlap;
    let client = oauth::rotate_secret(db, scope, client_id, &secrets::digest(&secret), until)
        .await
        .map_err(|e| no_client(e, client_id))?;
    log_client(
        db,
        &client,
        actor,
        "rotate client secret",
        200,
        format!(
            "OAuth client {} ({}) has a new secret; the old one works until {}",
            client.name,
            client.id,
            until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
    )
    .await;
    Ok(RotatedSecret {
        client_id: client.id,
        client_secret: secret,
        previous_secret_expires_at: until,
    })
}

/// Delete a client: its grants and tokens end at once. `scope` as for
/// [`rotate_client_secret`].
pub async fn delete_client(
    db: &Db,
    scope: ClientScope,
    client_id: &str,
    actor: &str,
) -> Result<(), AdminError> {
    let client = oauth::delete_client(db, scope, client_id)
        .await
        .map_err(|e| no_client(e, client_id))?;
    log_client(
        db,
        &client,
        actor,
        "delete client",
        200,
        format!(
            "OAuth client {} ({}) deleted; its grants and tokens ended",
            client.name, client.id
        ),
    )
    .await;
    Ok(())
}

fn no_client(e: StoreError, client_id: &str) -> AdminError {
    match e {
        StoreError::NotFound => AdminError::NoClient(client_id.chars().take(100).collect()),
        other => other.into(),
    }
}

pub struct Demo {
    pub admin_email: String,
    pub admin_password: String,
    pub api_token: String,
    pub client: CreatedClient,
}

/// The demo OAuth client's redirect URI.
pub const DEMO_REDIRECT_URI: &str = "http://localhost:9999/callback";

/// An authorization request for the demo client, to paste into a browser.
pub fn demo_authorize_url(base: &str, client_id: &str) -> String {
    let mut url = format!("{base}/oauth2/authorize?");
    url.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", DEMO_REDIRECT_URI)
            .append_pair("state", "demo")
            .finish(),
    );
    url
}

/// On an empty database: workspace `acme` with SCIM on, an admin, an API token and a
/// confidential OAuth client.
/// Returns None when the database already has workspaces.
pub async fn seed_demo(db: &Db) -> Result<Option<Demo>, AdminError> {
    if workspaces::count(db).await? > 0 {
        return Ok(None);
    }
    let admin_email = "admin@acme.test";
    let (Ok(subdomain), Ok(email)) = (Subdomain::parse("acme"), Email::parse(admin_email)) else {
        return Err(refuse("the demo workspace's names are not valid"));
    };
    let created = create_workspace(db, &subdomain, "Acme", &email).await?;
    set_scim(db, &created.workspace, true).await?;
    let api_token = create_api_token(db, &created.workspace, "Demo token", "demo").await?;
    let client = create_client(
        db,
        "Demo OAuth client",
        &[DEMO_REDIRECT_URI.to_owned()],
        false,
    )
    .await?;
    Ok(Some(Demo {
        admin_email: admin_email.into(),
        admin_password: created.admin_password,
        api_token,
        client,
    }))
}

/// What an admin may change about a member in Rollcall's own pages.
pub struct MemberEdit {
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
}

/// Why an admin's edit of a member was not saved. The messages are for the admin.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("This member is managed by your identity provider through SCIM; change them there.")]
    ScimManaged,
    /// Nobody can lock themselves out.
    #[error("You cannot remove your own admin role or deactivate yourself; ask another admin.")]
    OwnAccess,
    #[error("This member's record cannot be edited.")]
    Unreadable,
    /// The edited record is not a valid SCIM user (the SCIM error's detail).
    #[error("{0}")]
    Invalid(String),
    #[error("This member changed while you were editing; here is the current state, try again.")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether Rollcall's pages may edit `member`: SCIM-provisioned members belong to the
/// identity provider.
pub fn may_edit(member: &members::Member) -> Result<(), EditError> {
    if member.scim_managed {
        return Err(EditError::ScimManaged);
    }
    Ok(())
}

/// Apply an admin's edit. Refused for SCIM-managed members; `version` guards against
/// a concurrent change (a SCIM write that linked the member meanwhile, say).
pub async fn edit_member(
    db: &Db,
    me: &members::Member,
    member: &members::Member,
    edit: MemberEdit,
    version: i64,
) -> Result<members::Member, EditError> {
    may_edit(member)?;
    // Nobody can lock themselves out.
    if me.id == member.id && (edit.role != Role::Admin || !edit.active) {
        return Err(EditError::OwnAccess);
    }
    let mut doc = member.resource.0.clone();
    let Some(obj) = doc.as_object_mut() else {
        return Err(EditError::Unreadable);
    };
    let mut name = obj
        .get("name")
        .and_then(|n| n.as_object())
        .cloned()
        .unwrap_or_default();
    for (key, value) in [
        ("givenName", &edit.given_name),
        ("familyName", &edit.family_name),
    ] {
        match value.trim() {
            "" => name.remove(key),
            v => name.insert(key.into(), json!(v)),
        };
    }
    obj.insert("name".into(), serde_json::Value::Object(name));
    obj.insert("displayName".into(), json!(edit.display_name.trim()));
    obj.insert("active".into(), json!(edit.active));
    obj.insert(
        "roles".into(),
        json!([{"value": edit.role.as_str(), "type": "role", "primary": true}]),
    );
    let canonical =
        crate::scim::resource::normalize_user(&doc).map_err(|e| EditError::Invalid(e.detail))?;
    let mut data = crate::app::provisioning::member_data(canonical);
    data.scim_managed = false;
    members::update(db, member.workspace_id, member.id, &data, Some(version))
        .await
        .map_err(|e| match e {
            StoreError::VersionMismatch => EditError::Changed,
            other => EditError::Store(other),
        })
}

// ---- Sign-in through the workspace's identity provider --------------------------

/// A workspace's SSO settings as an admin or a script sees them (the client secret
/// only as "set" or not).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct SsoView {
    /// "oidc", "saml", or null when SSO is off.
    pub protocol: Option<String>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret_set: bool,
    pub saml_metadata_url: Option<String>,
    pub saml_idp_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_certificate: Option<String>,
    pub password_with_sso: bool,
    pub break_glass_email: Option<String>,
    pub auto_create: bool,
    /// What to give the identity provider.
    pub idp_values: crate::sso::IdpValues,
}

pub async fn sso_settings(
    db: &Db,
    config: &crate::config::Config,
    ws: &Workspace,
) -> Result<SsoView, AdminError> {
    let row = sso::get(db, ws.id).await?;
    Ok(SsoView {
        protocol: crate::sso::active_protocol(&row).map(|p| p.as_str().to_owned()),
        oidc_issuer: row.oidc_issuer,
        oidc_client_id: row.oidc_client_id,
        oidc_client_secret_set: row.oidc_client_secret.is_some(),
        saml_metadata_url: row.saml_metadata_url,
        saml_idp_entity_id: row.saml_idp_entity_id,
        saml_sso_url: row.saml_sso_url,
        saml_certificate: row.saml_certificate,
        password_with_sso: row.password_with_sso,
        break_glass_email: row.break_glass_email,
        auto_create: row.auto_create,
        idp_values: crate::sso::idp_values(config, &ws.subdomain),
    })
}

/// Sign in through OIDC: the issuer (checked by fetching its discovery document
/// when `probe`), client id, and client secret (sealed with the server key; None
/// keeps the stored one). Turns SSO on with OIDC.
pub async fn set_oidc(
    db: &Db,
    sso_rt: &crate::sso::Sso,
    ws: &Workspace,
    issuer: &str,
    client_id: &str,
    client_secret: Option<&str>,
    probe: bool,
) -> Result<(), AdminError> {
    let issuer = issuer.trim();
    crate::sso::oidc::check_issuer(issuer).map_err(|e| refuse(format!("issuer: {e}")))?;
    let client_id = client_id.trim();
    if client_id.is_empty() {
        return Err(refuse("client-id: empty"));
    }
    if probe && let Err(e) = sso_rt.oidc.probe(issuer).await {
        tracing::warn!(workspace = %ws.subdomain, issuer, error = ?e, "OIDC discovery failed");
        return Err(refuse(
            "issuer: could not fetch a valid OpenID Connect discovery document from that issuer",
        ));
    }
    let mut row = sso::get(db, ws.id).await?;
    match client_secret.map(str::trim) {
        Some("") => return Err(refuse("client-secret: empty")),
        Some(secret) => {
            row.oidc_client_secret = Some(
                sso_rt
                    .key
                    .seal(&crate::sso::client_secret_context(ws.id), secret.as_bytes()),
            )
        }
        None if row.oidc_client_secret.is_none() => return Err(refuse("client-secret: required")),
        None => {}
    }
    row.protocol = Some("oidc".into());
    row.oidc_issuer = Some(issuer.to_owned());
    row.oidc_client_id = Some(client_id.to_owned());
    sso::put(db, ws.id, &row).await?;
    Ok(())
}

/// Where a SAML IdP's settings come from.
pub enum SamlSource {
    /// Metadata to fetch (https).
    MetadataUrl(String),
    /// Metadata XML given directly.
    MetadataXml(String),
    /// The three values typed in.
    Values {
        entity_id: String,
        sso_url: String,
        certificate: String,
    },
}

/// Sign in through SAML. Turns SSO on with SAML. Metadata URLs are fetched through
/// `fetch` (public addresses only, unless allow-listed).
pub async fn set_saml(
    db: &Db,
    fetch: &crate::sso::fetch::Fetcher,
    ws: &Workspace,
    source: SamlSource,
) -> Result<(), AdminError> {
    use crate::sso::saml;
    let (md, url) = match source {
        SamlSource::MetadataUrl(url) => {
            let md = fetch_metadata(fetch, &url).await.map_err(|e| {
                tracing::warn!(workspace = %ws.subdomain, url, error = %e, "SAML metadata fetch failed");
                refuse("metadata-url: could not fetch a valid metadata document from that URL")
            })?;
            (md, Some(url))
        }
        // What the admin pasted or typed: its errors may be quoted back.
        SamlSource::MetadataXml(xml) => (
            saml::parse_idp_metadata(&xml).map_err(|e| refuse(format!("metadata: {e}")))?,
            None,
        ),
        SamlSource::Values {
            entity_id,
            sso_url,
            certificate,
        } => (
            saml::check_settings(&entity_id, &sso_url, &certificate)
                .map_err(|e| refuse(e.to_string()))?,
            None,
        ),
    };
    let mut row = sso::get(db, ws.id).await?;
    row.protocol = Some("saml".into());
    row.saml_metadata_url = url;
    row.saml_idp_entity_id = Some(md.entity_id);
    row.saml_sso_url = Some(md.sso_url);
    row.saml_certificate = Some(md.certificate_pem);
    sso::put(db, ws.id, &row).await?;
    Ok(())
}

/// Fetch and parse IdP metadata. The error is for the server log only.
async fn fetch_metadata(
    fetch: &crate::sso::fetch::Fetcher,
    url: &str,
) -> anyhow::Result<crate::sso::saml::IdpMetadata> {
    use anyhow::{Context, bail};
    let parsed = url::Url::parse(url).context("not a URL")?;
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && local) {
        bail!("not https");
    }
    let xml = fetch.get_text(url).await?;
    Ok(crate::sso::saml::parse_idp_metadata(&xml)?)
}

/// Turn SSO off (settings are kept; passwords follow the workspace's switch again).
pub async fn sso_off(db: &Db, ws: &Workspace) -> Result<(), AdminError> {
    let mut row = sso::get(db, ws.id).await?;
    row.protocol = None;
    sso::put(db, ws.id, &row).await?;
    Ok(())
}

/// Whether passwords stay allowed for everyone while SSO is on, and which admin (if
/// any) keeps a password as a break-glass account.
pub async fn set_password_policy(
    db: &Db,
    ws: &Workspace,
    password_with_sso: bool,
    break_glass_email: Option<&str>,
) -> Result<(), AdminError> {
    let break_glass = match break_glass_email.map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(email) => {
            let member = members::by_email(db, ws.id, email)
                .await?
                .ok_or_else(|| refuse(format!("break-glass: no member '{email}'")))?;
            if member.role != Role::Admin || !member.active {
                return Err(refuse(format!(
                    "break-glass: '{email}' is not an active admin"
                )));
            }
            Some(member.user_name)
        }
    };
    let mut row = sso::get(db, ws.id).await?;
    row.password_with_sso = password_with_sso;
    row.break_glass_email = break_glass;
    sso::put(db, ws.id, &row).await?;
    Ok(())
}

/// Whether people the IdP vouches for but Rollcall does not know become contributors.
pub async fn set_auto_create(db: &Db, ws: &Workspace, on: bool) -> Result<(), AdminError> {
    let mut row = sso::get(db, ws.id).await?;
    row.auto_create = on;
    sso::put(db, ws.id, &row).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    #[tokio::test]
    async fn workspaces_are_created_once_and_found_by_subdomain() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        assert_eq!(acme.admin.role, Role::Admin);
        assert!(acme.admin.active && !acme.admin.scim_managed);
        let sub = Subdomain::parse("ACME").unwrap();
        assert_eq!(workspace(&db, &sub).await.unwrap().id, acme.workspace.id);

        let email = Email::parse("someone@acme.test").unwrap();
        let again = create_workspace(&db, &sub, "Acme again", &email)
            .await
            .map(|c| c.workspace.id);
        assert!(
            matches!(again, Err(AdminError::Store(StoreError::Conflict(_)))),
            "{again:?}"
        );
        let nameless = create_workspace(&db, &Subdomain::parse("globex").unwrap(), " ", &email)
            .await
            .map(|c| c.workspace.id);
        assert!(
            matches!(nameless, Err(AdminError::Refused(_))),
            "{nameless:?}"
        );
        let missing = workspace(&db, &Subdomain::parse("globex").unwrap()).await;
        assert!(
            matches!(&missing, Err(AdminError::NoWorkspace(s)) if s == "globex"),
            "{:?}",
            missing.map(|w| w.id)
        );
    }

    #[tokio::test]
    async fn settings_change_the_workspace_they_are_given() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let globex = testing::workspace(&db, "globex").await;
        set_scim(&db, &acme.workspace, true).await.unwrap();
        let sub = |s: &str| Subdomain::parse(s).unwrap();
        assert!(workspace(&db, &sub("acme")).await.unwrap().scim_enabled);
        assert!(!workspace(&db, &sub("globex")).await.unwrap().scim_enabled);

        // An API token acts for its own workspace only.
        let token = create_api_token(&db, &globex.workspace, "IdP", "test")
            .await
            .unwrap();
        let caller = crate::app::provisioning::authenticate(&db, &token)
            .await
            .unwrap()
            .expect("the token works");
        assert_eq!(caller.workspace.id, globex.workspace.id);
        let listed = tokens::list(&db, globex.workspace.id).await.unwrap();
        // Revoking it through the other workspace finds nothing and changes nothing.
        let wrong = revoke_api_token(&db, &acme.workspace, listed[0].id).await;
        assert!(matches!(
            wrong,
            Err(AdminError::Store(StoreError::NotFound))
        ));
        revoke_api_token(&db, &globex.workspace, listed[0].id)
            .await
            .unwrap();
        assert!(
            crate::app::provisioning::authenticate(&db, &token)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_break_glass_account_must_be_an_active_admin() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let ws = &acme.workspace;
        testing::member(&db, ws, "viewer@acme.test", Role::Viewer, None).await;
        for who in ["nobody@acme.test", "viewer@acme.test"] {
            let e = set_password_policy(&db, ws, false, Some(who)).await;
            assert!(matches!(e, Err(AdminError::Refused(_))), "{who}: {e:?}");
        }
        set_password_policy(&db, ws, false, Some(" admin@acme.test "))
            .await
            .unwrap();
        let row = sso::get(&db, ws.id).await.unwrap();
        assert_eq!(row.break_glass_email.as_deref(), Some("admin@acme.test"));
        assert!(!row.password_with_sso);
    }

    fn edit(role: Role, active: bool) -> MemberEdit {
        MemberEdit {
            given_name: "Ada".into(),
            family_name: " Lovelace ".into(),
            display_name: "Ada L.".into(),
            role,
            active,
        }
    }

    #[tokio::test]
    async fn admins_edit_members_but_never_lock_themselves_out() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let me = &acme.admin;
        let e = edit_member(&db, me, me, edit(Role::Viewer, true), me.version).await;
        assert!(matches!(e, Err(EditError::OwnAccess)), "{e:?}");
        let e = edit_member(&db, me, me, edit(Role::Admin, false), me.version).await;
        assert!(matches!(e, Err(EditError::OwnAccess)), "{e:?}");

        let them =
            testing::member(&db, &acme.workspace, "c@acme.test", Role::Contributor, None).await;
        let saved = edit_member(&db, me, &them, edit(Role::Admin, true), them.version)
            .await
            .unwrap();
        assert_eq!(saved.role, Role::Admin);
        assert_eq!(saved.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(saved.display_name.as_deref(), Some("Ada L."));
        assert_eq!(saved.version, them.version + 1);
        assert!(!saved.scim_managed);
        // Edited from a page read before that change: refused, nothing written.
        let stale = edit_member(&db, me, &them, edit(Role::Viewer, true), them.version).await;
        assert!(matches!(stale, Err(EditError::Changed)), "{stale:?}");
        let now = members::by_id(&db, acme.workspace.id, them.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.role, Role::Admin);

        // SCIM-managed members belong to the identity provider.
        let mut scim = now.clone();
        scim.scim_managed = true;
        let e = edit_member(&db, me, &scim, edit(Role::Viewer, true), now.version).await;
        assert!(matches!(e, Err(EditError::ScimManaged)), "{e:?}");
    }

    #[tokio::test]
    async fn clients_need_a_name_and_good_redirect_uris() {
        let db = testing::db().await;
        let uris = ["https://idp.example.com/cb".to_owned()];
        let c = create_client(&db, "Okta", &uris, false).await.unwrap();
        assert!(c.client_secret.as_deref().unwrap().starts_with("rc_cs_"));
        let stored = crate::store::oauth::client(&db, &c.client_id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.redirect_uris, uris);
        assert!(!stored.public);
        let public = create_client(&db, "CLI", &uris, true).await.unwrap();
        assert!(public.client_secret.is_none());
        for (name, uris) in [
            ("", vec!["https://idp.example.com/cb".to_owned()]),
            ("Okta", vec![]),
            (
                "Okta",
                vec!["https://idp.example.com/cb#fragment".to_owned()],
            ),
        ] {
            let e = create_client(&db, name, &uris, false).await;
            assert!(matches!(e, Err(AdminError::Refused(_))), "{name} {uris:?}");
        }
    }
}
