//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3) and the redirects that
//! answer it (RFC 6749 §4.1.2, RFC 9207 `iss`).
//!
//! Order matters: the client and its redirect URI are checked first, and while either
//! is in doubt the answer is a page, never a redirect (no open redirector). After that
//! every error goes back to the client's redirect URI.

use super::{OAuthError, Params, Scopes, pkce};
use crate::oauth::ErrorCode;
use crate::store::oauth::Client;

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub state: Option<String>,
    /// S256 challenge, when the client sent one.
    pub code_challenge: Option<String>,
}

/// Why a request was refused, and how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Client or redirect URI unknown or wrong: a page for the person, no redirect.
    Page(String),
    /// Everything else: back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Check `params` against `client` (None when no client has the id it names).
pub fn validate(params: &Params, client: Option<&Client>) -> Result<AuthorizeRequest, Refusal> {
    let Some(client_id) = params.get("client_id") else {
        return Err(Refusal::Page(
            "The application that sent you here did not say who it is (client_id is missing)."
                .into(),
        ));
    };
    let Some(client) = client.filter(|c| c.id == client_id) else {
        return Err(Refusal::Page(format!(
            "The application that sent you here is not registered with this server (unknown client_id '{client_id}')."
        )));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(Refusal::Page(format!(
            "{} did not say where to send you back (redirect_uri is missing).",
            client.name
        )));
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Refusal::Page(format!(
            "{} asked to send you back to an address it has not registered, so Rollcall will not go there.",
            client.name
        )));
    }
    let state = params.get("state").map(str::to_owned);
    let refuse = |error: OAuthError| Refusal::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    };
    if !super::client::allows(client, super::client::GrantType::AuthorizationCode) {
        return Err(refuse(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not allowed the authorization code grant",
        )));
    }

    match params.get("response_type") {
        None => {
            return Err(refuse(OAuthError::invalid_request(
                "response_type is missing",
            )));
        }
        Some("code") => {}
        Some(other) => {
            return Err(refuse(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type '{other}' is not supported; use 'code'"),
            )));
        }
    }

    let allowed = Scopes::parse(&client.scopes).unwrap_or_default();
    let scopes = match params.get("scope").map(Scopes::parse) {
        None => allowed,
        Some(Err(e)) => return Err(refuse(OAuthError::invalid_scope(e))),
        Some(Ok(s)) if s.is_empty() => allowed,
        Some(Ok(s)) if !s.is_subset_of(allowed) => {
            return Err(refuse(OAuthError::invalid_scope(format!(
                "this client may ask only for '{allowed}'"
            ))));
        }
        Some(Ok(s)) => s,
    };

    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) if client.public => {
            return Err(refuse(OAuthError::invalid_request(
                "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
            )));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge_method was sent without code_challenge",
            )));
        }
        (Some(_), None | Some("plain")) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge_method must be S256; plain is not supported",
            )));
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(refuse(OAuthError::invalid_request(format!(
                "code_challenge_method '{m}' is not supported; use S256"
            ))));
        }
        (Some(c), Some(_)) if !pkce::well_formed(c) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            )));
        }
        (Some(c), Some(_)) => Some(c.to_owned()),
    };

    Ok(AuthorizeRequest {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state,
        code_challenge,
    })
}

/// The redirect URI with `pairs` added to its query, keeping the registered string
/// as it is.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let sep = if redirect_uri.ends_with(['?', '&']) {
        ""
    } else if redirect_uri.contains('?') {
        "&"
    } else {
        "?"
    };
    format!("{redirect_uri}{sep}{query}")
}

/// Where a successful authorization sends the browser: code, state, iss.
pub fn success_redirect(req: &AuthorizeRequest, code: &str, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    redirect_with(&req.redirect_uri, &pairs)
}

/// Where an error sends the browser: error, error_description, state, iss.
pub fn error_redirect(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let description = super::error::sanitize(&error.description);
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    redirect_with(redirect_uri, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::parse_params;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(public: bool) -> Client {
        Client {
            id: "c1".into(),
            name: "Okta".into(),
            public,
            secret_digest: None,
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

    fn check(query: &str, public: bool) -> Result<AuthorizeRequest, Refusal> {
        let c = client(public);
        validate(&parse_params(query.as_bytes()).unwrap(), Some(&c))
    }

    fn redirect_error(r: Result<AuthorizeRequest, Refusal>) -> ErrorCode {
        match r {
            Err(Refusal::Redirect { error, state, .. }) => {
                assert_eq!(state.as_deref(), Some("s1"));
                error.code
            }
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    const GOOD: &str =
        "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fokta.example%2Fcb&state=s1";

    #[test]
    fn a_plain_confidential_request_gets_all_allowed_scopes() {
        let r = check(GOOD, false).unwrap();
        assert_eq!(r.scopes, Scopes::all());
        assert_eq!(r.state.as_deref(), Some("s1"));
        assert_eq!(r.code_challenge, None);
        let r = check(&format!("{GOOD}&scope=scim:read"), false).unwrap();
        assert_eq!(r.scopes.to_string(), "scim:read");
    }

    #[test]
    fn client_and_redirect_problems_are_pages() {
        for q in [
            "response_type=code&redirect_uri=https%3A%2F%2Fokta.example%2Fcb",
            "response_type=code&client_id=nope&redirect_uri=https%3A%2F%2Fokta.example%2Fcb",
            "response_type=code&client_id=c1",
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
            // Exact match: no trailing slash, no case folding, no extra query.
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fokta.example%2Fcb%2F",
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2FOKTA.example%2Fcb",
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fokta.example%2Fcb%3Fx%3D1",
        ] {
            assert!(matches!(check(q, false), Err(Refusal::Page(_))), "{q}");
        }
        let p = parse_params(GOOD.as_bytes()).unwrap();
        assert!(matches!(validate(&p, None), Err(Refusal::Page(_))));
    }

    #[test]
    fn other_problems_redirect() {
        let bad_type = GOOD.replace("response_type=code", "response_type=token");
        assert_eq!(
            redirect_error(check(&bad_type, false)),
            ErrorCode::UnsupportedResponseType
        );
        let no_type = GOOD.replace("response_type=code&", "");
        assert_eq!(
            redirect_error(check(&no_type, false)),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirect_error(check(&format!("{GOOD}&scope=admin"), false)),
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn scopes_beyond_the_clients_are_refused() {
        let mut c = client(false);
        c.scopes = "scim:read".into();
        let p = parse_params(format!("{GOOD}&scope=scim:write").as_bytes()).unwrap();
        assert_eq!(
            redirect_error(validate(&p, Some(&c))),
            ErrorCode::InvalidScope
        );
        let p = parse_params(GOOD.as_bytes()).unwrap();
        assert_eq!(
            validate(&p, Some(&c)).unwrap().scopes.to_string(),
            "scim:read"
        );
    }

    #[test]
    fn pkce_rules() {
        let s256 = format!("{GOOD}&code_challenge={CHALLENGE}&code_challenge_method=S256");
        assert_eq!(
            check(&s256, true).unwrap().code_challenge.as_deref(),
            Some(CHALLENGE)
        );
        assert!(check(&s256, false).is_ok());
        // Public clients must use PKCE.
        assert_eq!(redirect_error(check(GOOD, true)), ErrorCode::InvalidRequest);
        for q in [
            format!("{GOOD}&code_challenge={CHALLENGE}&code_challenge_method=plain"),
            format!("{GOOD}&code_challenge={CHALLENGE}"),
            format!("{GOOD}&code_challenge_method=S256"),
            format!("{GOOD}&code_challenge=short&code_challenge_method=S256"),
            format!("{GOOD}&code_challenge={CHALLENGE}%2B&code_challenge_method=S256"),
            format!("{GOOD}&code_challenge={CHALLENGE}&code_challenge_method=s256"),
        ] {
            assert_eq!(
                redirect_error(check(&q, false)),
                ErrorCode::InvalidRequest,
                "{q}"
            );
        }
    }

    #[test]
    fn redirects_carry_state_and_iss() {
        let r = check(GOOD, false).unwrap();
        assert_eq!(
            success_redirect(&r, "rc_ac_x", "http://localhost:8080"),
            "https://okta.example/cb?code=rc_ac_x&state=s1&iss=http%3A%2F%2Flocalhost%3A8080"
        );
        let e = OAuthError::new(ErrorCode::AccessDenied, "the member said no");
        assert_eq!(
            error_redirect("https://x.example/cb?a=1", &e, None, "https://id.example"),
            "https://x.example/cb?a=1&error=access_denied&error_description=the+member+said+no&iss=https%3A%2F%2Fid.example"
        );
    }
}
