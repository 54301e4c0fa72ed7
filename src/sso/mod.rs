//! Sign-in through the workspace's identity provider: OpenID Connect (`oidc`) and
//! SAML 2.0 (`saml`). This module holds the rules that do not depend on the protocol:
//! which settings are valid, who may still use a password, and the values an admin
//! gives the IdP. No axum here; storage goes through `crate::store::sso`.

pub mod fetch;
pub mod key;
pub mod oidc;
pub mod saml;

use crate::config::Config;
use crate::store::sso::SsoRow;
pub use key::ServerKey;

/// What the server keeps for SSO across requests.
pub struct Sso {
    pub key: ServerKey,
    pub oidc: oidc::Oidc,
    /// Every request to an identity provider goes through this.
    pub fetch: std::sync::Arc<fetch::Fetcher>,
}

impl Sso {
    /// `fetch_allow`: the operator's `sso_fetch_allow` entries.
    pub fn new(key: ServerKey, fetch_allow: &[String]) -> Result<Sso, reqwest::Error> {
        let fetch = std::sync::Arc::new(fetch::Fetcher::new(fetch_allow)?);
        Ok(Sso {
            key,
            oidc: oidc::Oidc::new(fetch.clone()),
            fetch,
        })
    }
}

/// Which protocol a workspace signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Oidc,
    Saml,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Oidc => "oidc",
            Protocol::Saml => "saml",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "oidc" => Some(Protocol::Oidc),
            "saml" => Some(Protocol::Saml),
            _ => None,
        }
    }
}

/// The protocol in use, when SSO is on and configured enough to use.
pub fn active_protocol(row: &SsoRow) -> Option<Protocol> {
    match row.protocol.as_deref().and_then(Protocol::parse)? {
        Protocol::Oidc
            if row.oidc_issuer.is_some()
                && row.oidc_client_id.is_some()
                && row.oidc_client_secret.is_some() =>
        {
            Some(Protocol::Oidc)
        }
        Protocol::Saml
            if row.saml_idp_entity_id.is_some()
                && row.saml_sso_url.is_some()
                && row.saml_certificate.is_some() =>
        {
            Some(Protocol::Saml)
        }
        _ => None,
    }
}

/// Whether the sign-in page offers a password form at all.
pub fn password_form_shown(workspace_password_signin: bool, row: &SsoRow) -> bool {
    if active_protocol(row).is_none() {
        return workspace_password_signin;
    }
    row.password_with_sso || row.break_glass_email.is_some()
}

/// Whether this member may sign in with a password. Without SSO the workspace's own
/// switch decides. With SSO on, passwords are off unless the admin kept them on, except
/// for the named break-glass account, which must still be an admin.
pub fn password_allowed(
    workspace_password_signin: bool,
    row: &SsoRow,
    user_name: &str,
    is_admin: bool,
) -> bool {
    if active_protocol(row).is_none() {
        return workspace_password_signin;
    }
    if row.password_with_sso {
        return true;
    }
    match &row.break_glass_email {
        Some(email) => {
            is_admin && crate::domain::fold_case(email) == crate::domain::fold_case(user_name)
        }
        None => false,
    }
}

/// What an admin copies into the identity provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdpValues {
    /// OIDC: the sign-in redirect URI to register.
    pub oidc_redirect_uri: String,
    /// OIDC: where a sign-in may start from the IdP's dashboard.
    pub oidc_initiate_login_uri: String,
    /// SAML: our entity id (Audience URI).
    pub saml_sp_entity_id: String,
    /// SAML: Assertion Consumer Service URL (Single sign-on URL, Reply URL).
    pub saml_acs_url: String,
    /// SAML: our metadata, for IdPs that import it.
    pub saml_metadata_url: String,
}

pub fn idp_values(config: &Config, subdomain: &str) -> IdpValues {
    let origin = config.workspace_origin(subdomain);
    IdpValues {
        oidc_redirect_uri: format!("{origin}/sso/oidc/callback"),
        oidc_initiate_login_uri: format!("{origin}/sso/start"),
        saml_sp_entity_id: format!("{origin}/sso/saml/metadata"),
        saml_acs_url: format!("{origin}/sso/saml/acs"),
        saml_metadata_url: format!("{origin}/sso/saml/metadata"),
    }
}

/// The sealing context of a workspace's OIDC client secret.
pub fn client_secret_context(workspace_id: i64) -> String {
    format!("oidc_client_secret:{workspace_id}")
}

/// Allowed clock difference with the IdP when checking times.
pub const CLOCK_SKEW_SECS: i64 = 60;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn oidc_on() -> SsoRow {
        SsoRow {
            protocol: Some("oidc".into()),
            oidc_issuer: Some("https://idp.test".into()),
            oidc_client_id: Some("c".into()),
            oidc_client_secret: Some(vec![1]),
            ..SsoRow::default()
        }
    }

    #[test]
    fn passwords_follow_the_workspace_switch_without_sso() {
        let off = SsoRow::default();
        assert!(password_allowed(true, &off, "a@b.c", false));
        assert!(!password_allowed(false, &off, "a@b.c", true));
        assert!(password_form_shown(true, &off));
        // Half-configured SSO is not SSO.
        let half = SsoRow {
            protocol: Some("saml".into()),
            ..SsoRow::default()
        };
        assert!(password_allowed(true, &half, "a@b.c", false));
    }

    #[test]
    fn sso_turns_passwords_off_except_break_glass_admin() {
        let mut row = oidc_on();
        assert!(!password_allowed(true, &row, "admin@x.test", true));
        assert!(!password_form_shown(true, &row));
        row.break_glass_email = Some("Admin@X.test".into());
        assert!(password_form_shown(true, &row));
        assert!(password_allowed(true, &row, "admin@x.TEST", true));
        assert!(
            !password_allowed(true, &row, "admin@x.test", false),
            "no longer admin"
        );
        assert!(!password_allowed(true, &row, "other@x.test", true));
        row.password_with_sso = true;
        assert!(password_allowed(true, &row, "other@x.test", false));
    }

    #[test]
    fn idp_values_are_on_the_workspace_host() {
        let config = crate::config::Config::from_settings(Settings {
            base_url: Some("https://rollcall.example.com".into()),
            ..Settings::default()
        })
        .unwrap();
        let v = idp_values(&config, "acme");
        assert_eq!(
            v.oidc_redirect_uri,
            "https://acme.rollcall.example.com/sso/oidc/callback"
        );
        assert_eq!(
            v.saml_acs_url,
            "https://acme.rollcall.example.com/sso/saml/acs"
        );
        assert_eq!(
            v.saml_sp_entity_id,
            "https://acme.rollcall.example.com/sso/saml/metadata"
        );
    }
}
