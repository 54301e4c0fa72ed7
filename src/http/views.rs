//! askama page models. Each struct is one template under `templates/`.

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

pub struct MemberRow {
    pub user_name: String,
    pub display_name: String,
    pub role: String,
    pub active: bool,
    pub scim_managed: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub workspace_name: String,
    pub me: String,
    pub csrf: String,
    pub members: Vec<MemberRow>,
    pub total: i64,
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
