//! askama page models. Each struct is one template under `templates/`.

use crate::domain::Role;
use askama::Template;
use askama_web::WebTemplate;

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    pub error: Option<String>,
    pub subdomain: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub workspace_name: String,
    pub csrf: String,
    pub next: String,
    pub email: String,
    pub error: Option<String>,
    pub password_allowed: bool,
    /// `/sso/start?next=...` when the workspace signs in through its IdP.
    pub sso_start: Option<String>,
}

/// The frame of every signed-in workspace page: navigation and flash messages.
pub struct Shell {
    pub workspace_name: String,
    pub me: String,
    pub csrf: String,
    pub is_admin: bool,
    /// Which navigation entry is current.
    pub tab: &'static str,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct MemberRow {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    pub scim_managed: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub shell: Shell,
    pub q: String,
    pub members: Vec<MemberRow>,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "member.html")]
pub struct MemberPage {
    pub shell: Shell,
    pub id: String,
    pub version: i64,
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub role: Role,
    pub roles: [Role; 4],
    pub active: bool,
    pub scim_managed: bool,
    pub editable: bool,
    pub why_not: String,
    /// The teams the member is in, by name.
    pub teams: Vec<TeamLink>,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_sso.html")]
pub struct SsoSettingsPage {
    pub shell: Shell,
    pub sso: crate::app::admin::SsoView,
    pub oidc_issuer: String,
    pub oidc_client_id: String,
    pub saml_metadata_url: String,
    pub saml_entity_id: String,
    pub saml_sso_url: String,
    pub saml_certificate: String,
    pub break_glass: String,
    pub scim_enabled: bool,
    /// "Manage teams with SCIM".
    pub scim_teams: bool,
    pub scim_url: String,
    pub authorize_url: String,
    pub token_url: String,
    pub password_signin: bool,
}

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_by: String,
    pub created: String,
    pub last_used: String,
    pub revoked: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_api.html")]
pub struct ApiSettingsPage {
    pub shell: Shell,
    pub scim_url: String,
    pub new_token: Option<String>,
    pub tokens: Vec<TokenRow>,
}

pub struct ClientRow {
    pub id: String,
    pub name: String,
    /// "Confidential" or "Public (PKCE)".
    pub kind: String,
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub grants: String,
    pub scopes: String,
    pub created: String,
    pub created_by: String,
    /// During a rotation's overlap: until when the old secret works.
    pub old_secret_until: Option<String>,
}

/// A client's id and secret, shown once after registering or rotating.
pub struct NewClientSecret {
    pub note: String,
    pub client_id: String,
    pub secret: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_clients.html")]
pub struct ClientsSettingsPage {
    pub shell: Shell,
    pub clients: Vec<ClientRow>,
    pub new_secret: Option<NewClientSecret>,
    pub token_url: String,
    pub authorize_url: String,
    pub scim_url: String,
    /// The rotation overlap, for people ("24 hours").
    pub overlap: String,
}

pub struct GrantRow {
    pub id: i64,
    /// Why it ended, for grants that did.
    pub ended: Option<String>,
    pub client: String,
    pub by: String,
    pub created: String,
    pub scope: String,
    pub last_used: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_apps.html")]
pub struct AppsSettingsPage {
    pub shell: Shell,
    pub grants: Vec<GrantRow>,
    pub ended: Vec<GrantRow>,
}

pub struct ActivityRow {
    pub at: String,
    pub operation: String,
    pub user_name: String,
    /// The team of a team entry.
    pub team: Option<TeamLink>,
    pub ok: bool,
    pub status: i32,
    pub detail: String,
    pub actor: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "activity.html")]
pub struct ActivityPage {
    pub shell: Shell,
    pub member_email: String,
    pub failures_only: bool,
    pub entries: Vec<ActivityRow>,
}

/// A link to a team's page.
pub struct TeamLink {
    pub id: String,
    pub name: String,
}

pub struct TeamRow {
    pub id: String,
    pub name: String,
    pub member_count: i64,
    /// Read-only here: the identity provider manages it.
    pub managed: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "teams.html")]
pub struct TeamsPage {
    pub shell: Shell,
    pub q: String,
    pub teams: Vec<TeamRow>,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// Whether teams are managed with SCIM (said on the page).
    pub scim_teams: bool,
}

pub struct TeamMemberRow {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub active: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub shell: Shell,
    pub id: String,
    pub name: String,
    pub member_count: i64,
    pub external_id: String,
    /// Managed by the identity provider: read-only here.
    pub managed: bool,
    /// An admin, and the team is not managed by the identity provider.
    pub editable: bool,
    pub members: Vec<TeamMemberRow>,
    /// The first page of members, when this is not it.
    pub first: Option<String>,
    pub next: Option<String>,
}

/// App host, authorization request: which workspace to authorize for.
#[derive(Template, WebTemplate)]
#[template(path = "oauth_workspace.html")]
pub struct OAuthWorkspacePage {
    pub client_name: String,
    /// The authorization request's query string, carried to the workspace host.
    pub request: String,
    pub subdomain: String,
    pub error: Option<String>,
}

/// Workspace host: the consent page.
#[derive(Template, WebTemplate)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub client_name: String,
    pub workspace_name: String,
    pub workspace_host: String,
    pub member: String,
    /// What each asked scope allows, in plain words.
    pub access: Vec<String>,
    /// Where the answer goes (the redirect URI's host).
    pub return_host: String,
    pub scim_enabled: bool,
    pub csrf: String,
    pub request: String,
}
