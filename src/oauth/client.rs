//! Clients: which redirect URIs may be registered, and client authentication at the
//! token, revocation and introspection endpoints (RFC 6749 §2.3.1).

use super::{OAuthError, Params};
use crate::secrets;
use crate::store::oauth::Client;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A redirect URI that may be registered: an absolute https URL, or http for a
/// loopback host (localhost, 127.0.0.1, [::1]); no fragment (RFC 6749 §3.1.2).
pub fn check_redirect_uri(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|_| format!("'{raw}' is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("'{raw}' must not have a fragment"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(format!("'{raw}' needs a host"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "'{raw}' must use https (http is allowed only for localhost, 127.0.0.1 and [::1])"
        )),
        other => Err(format!(
            "'{raw}': scheme '{other}' is not allowed; use https"
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// What a client presented to identify itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// Sent with HTTP Basic: a failure must answer `WWW-Authenticate: Basic`.
    pub basic: bool,
}

/// A failed client authentication, and whether it came by HTTP Basic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub error: OAuthError,
    pub basic: bool,
}

fn fail(error: OAuthError, basic: bool) -> AuthFailure {
    AuthFailure { error, basic }
}

/// The credentials in an `Authorization: Basic` header or the form fields
/// `client_id`/`client_secret`. Both ways at once is `invalid_request`.
pub fn credentials(authorization: Option<&str>, form: &Params) -> Result<Credentials, AuthFailure> {
    let basic = authorization
        .map(str::trim)
        .map(|h| h.split_once(' ').unwrap_or((h, "")))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim());
    if let Some(encoded) = basic {
        if form.get("client_secret").is_some() {
            return Err(fail(
                OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret in the form, not both",
                ),
                true,
            ));
        }
        let (id, secret) = decode_basic(encoded).ok_or_else(|| {
            fail(
                OAuthError::invalid_client("the Basic authorization header is malformed"),
                true,
            )
        })?;
        if form.get("client_id").is_some_and(|f| f != id) {
            return Err(fail(
                OAuthError::invalid_request("client_id in the form differs from HTTP Basic"),
                true,
            ));
        }
        return Ok(Credentials {
            client_id: id,
            secret: Some(secret).filter(|s| !s.is_empty()),
            basic: true,
        });
    }
    match form.get("client_id") {
        Some(id) => Ok(Credentials {
            client_id: id.to_owned(),
            secret: form.get("client_secret").map(str::to_owned),
            basic: false,
        }),
        None => Err(fail(
            OAuthError::invalid_client("client authentication is required"),
            false,
        )),
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined by ':' and
/// base64-encoded.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(encoded).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// How a client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A public client: its id alone.
    Public,
    /// A confidential client's secret of this generation: the current one, or the
    /// one a rotation replaced, during the overlap.
    Secret { generation: i64 },
}

/// Check the credentials against the stored client (None: unknown id) at `now`.
/// Public clients send no secret; confidential ones must send theirs, or during a
/// rotation's overlap the one it replaced.
pub fn authenticate(
    creds: &Credentials,
    client: Option<&Client>,
    now: time::OffsetDateTime,
) -> Result<Proof, AuthFailure> {
    let refused = || {
        fail(
            OAuthError::invalid_client("client authentication failed"),
            creds.basic,
        )
    };
    let Some(client) = client else {
        return Err(refused());
    };
    match (&client.secret_digest, &creds.secret) {
        (None, None) if client.public => Ok(Proof::Public),
        (Some(current), Some(secret)) if !client.public => {
            let presented = secrets::digest(secret);
            // Both compared, in constant time, whichever matches.
            let is_current = secrets::constant_time_eq(current, &presented);
            let is_previous = match (
                &client.previous_secret_digest,
                client.previous_secret_expires_at,
            ) {
                (Some(previous), Some(until)) => {
                    secrets::constant_time_eq(previous, &presented) && now < until
                }
                _ => false,
            };
            match (is_current, is_previous) {
                (true, _) => Ok(Proof::Secret {
                    generation: client.secret_generation,
                }),
                (false, true) => Ok(Proof::Secret {
                    generation: client.secret_generation - 1,
                }),
                (false, false) => Err(refused()),
            }
        }
        _ => Err(refused()),
    }
}

/// The grants a client may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// The authorization code grant, and the refresh tokens it brings.
    AuthorizationCode,
    /// RFC 6749 §4.4: the client's own access, for confidential workspace clients.
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 2] = [GrantType::AuthorizationCode, GrantType::ClientCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Stored grant types, space-separated; unknown words are ignored.
    pub fn parse_list(raw: &str) -> Vec<GrantType> {
        GrantType::ALL
            .into_iter()
            .filter(|g| raw.split(' ').any(|w| w == g.as_str()))
            .collect()
    }

    pub fn to_list(grants: &[GrantType]) -> String {
        GrantType::ALL
            .into_iter()
            .filter(|g| grants.contains(g))
            .map(GrantType::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// May `client` use grant `g`?
pub fn allows(client: &Client, g: GrantType) -> bool {
    GrantType::parse_list(&client.grant_types).contains(&g)
}

/// May `client` act in workspace `workspace_id`? A global client serves every
/// workspace; a workspace client only its own.
pub fn serves_workspace(client: &Client, workspace_id: i64) -> bool {
    client.workspace_id.is_none_or(|w| w == workspace_id)
}

/// What registering a client needs to be right, whoever registers it: a name,
/// at least one grant; client credentials only for a confidential workspace client;
/// the authorization code grant with at least one redirect URI, each allowed by
/// [`check_redirect_uri`]; at least one scope. The message names the field.
pub fn check_registration(
    name: &str,
    public: bool,
    workspace: bool,
    redirect_uris: &[String],
    grants: &[GrantType],
    scopes: super::Scopes,
) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("name: a client needs a name".into());
    }
    if name.trim().chars().count() > 100 {
        return Err("name: at most 100 characters".into());
    }
    if grants.is_empty() {
        return Err("grant: allow at least one grant".into());
    }
    if grants.contains(&GrantType::ClientCredentials) {
        if public {
            return Err(
                "grant: client credentials needs a confidential client (one with a secret)".into(),
            );
        }
        if !workspace {
            return Err(
                "grant: client credentials is for workspace clients (its tokens act for the client's workspace)"
                    .into(),
            );
        }
    }
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(
            "redirect-uri: the authorization code grant needs at least one redirect URI".into(),
        );
    }
    for uri in redirect_uris {
        check_redirect_uri(uri).map_err(|e| format!("redirect-uri: {e}"))?;
    }
    if scopes.is_empty() {
        return Err("scope: allow at least one scope".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{ErrorCode, parse_params};

    fn client(public: bool, secret: Option<&str>) -> Client {
        Client {
            id: "c1".into(),
            name: "Okta".into(),
            public,
            secret_digest: secret.map(secrets::digest),
            redirect_uris: vec!["https://okta.example/cb".into()],
            scopes: "scim:read scim:write".into(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            workspace_id: None,
            grant_types: "authorization_code".into(),
            secret_generation: 1,
            previous_secret_digest: None,
            previous_secret_expires_at: None,
            created_by: None,
        }
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://example.com/cb",
            "https://example.com/cb?x=1",
            "http://localhost:9999/callback",
            "http://LOCALHOST/cb",
            "http://127.0.0.1:8000/cb",
            "http://[::1]:8000/cb",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.2/cb",
            "https://example.com/cb#frag",
            "/relative",
            "javascript:alert(1)",
            "ftp://example.com/x",
            "custom:/x",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // id "a b" and secret "p:w%" encoded per §2.3.1.
        let header = format!("Basic {}", STANDARD.encode("a+b:p%3Aw%25"));
        let c = credentials(Some(&header), &Params::default()).unwrap();
        assert_eq!(c.client_id, "a b");
        assert_eq!(c.secret.as_deref(), Some("p:w%"));
        assert!(c.basic);
    }

    #[test]
    fn one_method_only() {
        let header = format!("Basic {}", STANDARD.encode("c1:s"));
        let form = parse_params(b"client_id=c1&client_secret=s").unwrap();
        let e = credentials(Some(&header), &form).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::InvalidRequest);
        // The same client_id in the form as well is harmless.
        let form = parse_params(b"client_id=c1").unwrap();
        assert!(credentials(Some(&header), &form).is_ok());
        let form = parse_params(b"client_id=other").unwrap();
        assert_eq!(
            credentials(Some(&header), &form).unwrap_err().error.code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_basic_flag() {
        for h in ["Basic !!!", "Basic Zm9v", "basic "] {
            let e = credentials(Some(h), &Params::default()).unwrap_err();
            assert_eq!(e.error.code, ErrorCode::InvalidClient, "{h}");
            assert!(e.basic);
        }
        let e = credentials(None, &Params::default()).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::InvalidClient);
        assert!(!e.basic);
    }

    #[test]
    fn authentication() {
        let conf = client(false, Some("rc_cs_secret"));
        let public = client(true, None);
        let creds = |secret: Option<&str>| Credentials {
            client_id: "c1".into(),
            secret: secret.map(str::to_owned),
            basic: false,
        };
        let now = time::OffsetDateTime::UNIX_EPOCH;
        assert!(authenticate(&creds(Some("rc_cs_secret")), Some(&conf), now).is_ok());
        assert!(authenticate(&creds(Some("wrong")), Some(&conf), now).is_err());
        assert!(authenticate(&creds(None), Some(&conf), now).is_err());
        assert_eq!(
            authenticate(&creds(None), Some(&public), now),
            Ok(Proof::Public)
        );
        assert!(authenticate(&creds(Some("x")), Some(&public), now).is_err());
        assert!(authenticate(&creds(None), None, now).is_err());
    }

    #[test]
    fn a_replaced_secret_works_until_the_overlap_ends() {
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let mut c = client(false, Some("rc_cs_new"));
        c.secret_generation = 2;
        c.previous_secret_digest = Some(secrets::digest("rc_cs_old"));
        c.previous_secret_expires_at = Some(now + time::Duration::seconds(1));
        let creds = |secret: &str| Credentials {
            client_id: "c1".into(),
            secret: Some(secret.into()),
            basic: true,
        };
        assert_eq!(
            authenticate(&creds("rc_cs_new"), Some(&c), now),
            Ok(Proof::Secret { generation: 2 })
        );
        assert_eq!(
            authenticate(&creds("rc_cs_old"), Some(&c), now),
            Ok(Proof::Secret { generation: 1 })
        );
        let later = now + time::Duration::seconds(1);
        let e = authenticate(&creds("rc_cs_old"), Some(&c), later).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::InvalidClient);
        assert!(e.basic);
        assert!(authenticate(&creds("rc_cs_new"), Some(&c), later).is_ok());
    }

    #[test]
    fn registrations() {
        use crate::oauth::Scopes;
        let uris = vec!["https://example.com/cb".to_owned()];
        let code = [GrantType::AuthorizationCode];
        let cc = [GrantType::ClientCredentials];
        let all = Scopes::all();
        assert!(check_registration("Entra", false, true, &uris, &code, all).is_ok());
        assert!(check_registration("Script", false, true, &[], &cc, all).is_ok());
        assert!(check_registration("Okta", false, false, &uris, &code, all).is_ok());
        for (why, r) in [
            (
                "no name",
                check_registration(" ", false, true, &uris, &code, all),
            ),
            (
                "no grant",
                check_registration("X", false, true, &uris, &[], all),
            ),
            (
                "public cc",
                check_registration("X", true, true, &[], &cc, all),
            ),
            (
                "global cc",
                check_registration("X", false, false, &[], &cc, all),
            ),
            (
                "code without uri",
                check_registration("X", false, true, &[], &code, all),
            ),
            (
                "bad uri",
                check_registration(
                    "X",
                    false,
                    true,
                    &["http://evil.example/".into()],
                    &code,
                    all,
                ),
            ),
            (
                "no scope",
                check_registration("X", false, true, &uris, &code, Scopes::default()),
            ),
        ] {
            assert!(r.is_err(), "{why}");
        }
        assert_eq!(
            GrantType::parse_list("client_credentials authorization_code nonsense"),
            GrantType::ALL.to_vec()
        );
        assert_eq!(
            GrantType::to_list(&[GrantType::ClientCredentials]),
            "client_credentials"
        );
    }
}
