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

/// Check the credentials against the stored client (None: unknown id). Public
/// clients send no secret; confidential ones must send theirs.
pub fn authenticate(creds: &Credentials, client: Option<&Client>) -> Result<(), AuthFailure> {
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
        (None, None) if client.public => Ok(()),
        (Some(stored), Some(secret)) if !client.public => {
            if secrets::constant_time_eq(stored, &secrets::digest(secret)) {
                Ok(())
            } else {
                Err(refused())
            }
        }
        _ => Err(refused()),
    }
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
        assert!(authenticate(&creds(Some("rc_cs_secret")), Some(&conf)).is_ok());
        assert!(authenticate(&creds(Some("wrong")), Some(&conf)).is_err());
        assert!(authenticate(&creds(None), Some(&conf)).is_err());
        assert!(authenticate(&creds(None), Some(&public)).is_ok());
        assert!(authenticate(&creds(Some("x")), Some(&public)).is_err());
        assert!(authenticate(&creds(None), None).is_err());
    }
}
