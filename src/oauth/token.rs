//! The token endpoint's grants (RFC 6749 §4.1.3, §6), with PKCE (RFC 7636 §4.6)
//! and refresh-token rotation (RFC 9700 §4.14); and what introspection reports
//! (RFC 7662).

use super::{OAuthError, Params, Scopes, pkce};
use crate::oauth::ErrorCode;
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<Scopes>,
    },
    /// RFC 6749 §4.4: the client's own access.
    ClientCredentials { scope: Option<Scopes> },
}

pub fn parse_grant(p: &Params) -> Result<Grant, OAuthError> {
    let scope = || {
        p.get("scope")
            .map(Scopes::parse)
            .transpose()
            .map_err(OAuthError::invalid_scope)
            .map(|s| s.filter(|s| !s.is_empty()))
    };
    let required = |name: &str| {
        p.get(name)
            .map(str::to_owned)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    };
    match p.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => Ok(Grant::AuthorizationCode {
            code: required("code")?,
            redirect_uri: p.get("redirect_uri").map(str::to_owned),
            code_verifier: p.get("code_verifier").map(str::to_owned),
        }),
        Some("refresh_token") => Ok(Grant::RefreshToken {
            refresh_token: required("refresh_token")?,
            scope: scope()?,
        }),
        Some("client_credentials") => Ok(Grant::ClientCredentials { scope: scope()? }),
        Some(other) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type '{other}' is not supported; use authorization_code, refresh_token or client_credentials"
            ),
        )),
    }
}

/// What an authorization code was bound to when it was issued.
#[derive(Debug, Clone)]
pub struct CodeBinding<'a> {
    /// The member who consented is still an active admin.
    pub authorizer_is_admin: bool,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

/// Check a code presentation against what the code is bound to. Every failure is
/// `invalid_grant` (RFC 6749 §5.2, RFC 7636 §4.6).
pub fn check_code(
    code: &CodeBinding<'_>,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), OAuthError> {
    // Another client's code reads as no code at all.
    if code.client_id != client_id {
        return Err(OAuthError::invalid_grant("unknown authorization code"));
    }
    if !code.authorizer_is_admin {
        return Err(OAuthError::invalid_grant(
            "the member who authorized this is no longer an active admin",
        ));
    }
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("the code expired"));
    }
    if redirect_uri != Some(code.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri must be the one sent in the authorization request",
        ));
    }
    match (code.code_challenge, code_verifier) {
        (None, None) => Ok(()),
        // A verifier for a code issued without a challenge: a downgrade attempt
        // (RFC 9700 §2.1.1).
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier was sent but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is missing")),
        (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        )),
    }
}

/// The scope of refreshed tokens: what was asked, if within the grant (RFC 6749 §6),
/// else everything granted.
pub fn refresh_scope(requested: Option<Scopes>, granted: Scopes) -> Result<Scopes, OAuthError> {
    match requested {
        None => Ok(granted),
        Some(s) if s.is_subset_of(granted) => Ok(s),
        Some(_) => Err(OAuthError::invalid_scope(format!(
            "the grant covers only '{granted}'"
        ))),
    }
}

/// The scope of a client-credentials token: what was asked, narrowed to what the
/// client is allowed (RFC 6749 §3.3 lets the server issue less; the response says
/// what); everything allowed when nothing was asked. Nothing left: `invalid_scope`.
pub fn client_credentials_scope(
    requested: Option<Scopes>,
    allowed: Scopes,
) -> Result<Scopes, OAuthError> {
    let scope = requested.map_or(allowed, |r| r.intersection(allowed));
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "this client may have only '{allowed}'"
        )));
    }
    Ok(scope)
}

/// What presenting a (live, unexpired) refresh token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// It is the newest: rotate it.
    Rotate,
    /// It was replaced less than the grace period ago (the client probably lost the
    /// answer): issue a new pair that replaces the newest, so the family never forks.
    WithinGrace,
    /// It was replaced longer ago: someone is replaying it. End the grant.
    Reuse,
}

pub fn refresh_use(
    rotated_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    grace: Duration,
) -> RefreshUse {
    match rotated_at {
        None => RefreshUse::Rotate,
        Some(at) if now - at <= grace => RefreshUse::WithinGrace,
        Some(_) => RefreshUse::Reuse,
    }
}

/// A refresh token as it stands (read under its grant's lock).
#[derive(Debug, Clone)]
pub struct RefreshFacts<'a> {
    pub client_id: &'a str,
    pub grant_scope: &'a str,
    /// The token or its grant was revoked.
    pub revoked: bool,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
}

/// What a refresh-token presentation gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// A new pair with this scope, replacing the family's newest refresh token.
    Issue(Scopes),
    /// Refused; nothing changes.
    Refuse(OAuthError),
    /// Refused, and the grant ends: a replaced token was replayed after the grace.
    EndGrant(OAuthError),
}

/// The refresh rules: the token must be this client's, live and unexpired; a
/// replaced token works only within the grace period; the scope may narrow, never
/// widen (RFC 6749 §6, RFC 9700 §4.14.2).
pub fn decide_refresh(
    t: &RefreshFacts<'_>,
    client_id: &str,
    requested: Option<Scopes>,
    now: OffsetDateTime,
    grace: Duration,
) -> RefreshDecision {
    if t.client_id != client_id {
        return RefreshDecision::Refuse(OAuthError::invalid_grant("unknown refresh token"));
    }
    if t.revoked {
        return RefreshDecision::Refuse(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    if now >= t.expires_at {
        return RefreshDecision::Refuse(OAuthError::invalid_grant("the refresh token expired"));
    }
    if refresh_use(t.rotated_at, now, grace) == RefreshUse::Reuse {
        return RefreshDecision::EndGrant(OAuthError::invalid_grant(
            "the refresh token was already used; the grant is revoked",
        ));
    }
    let granted = Scopes::parse(t.grant_scope).unwrap_or_default();
    match refresh_scope(requested, granted) {
        Ok(scope) => RefreshDecision::Issue(scope),
        Err(e) => RefreshDecision::Refuse(e),
    }
}

/// The successful token response (RFC 6749 §5.1). Client credentials bring no
/// refresh token (§4.4.3).
pub fn token_response(
    access_token: &str,
    expires_in: Duration,
    refresh_token: Option<&str>,
    scope: Scopes,
) -> Value {
    let mut v = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in.as_secs(),
        "scope": scope.to_string(),
    });
    if let Some(r) = refresh_token {
        v["refresh_token"] = json!(r);
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// Everything introspection needs to know about a stored token.
#[derive(Debug, Clone)]
pub struct TokenFacts {
    pub kind: TokenKind,
    pub scope: String,
    pub client_id: String,
    /// The member who authorized the grant; None for client credentials.
    pub member_id: Option<String>,
    pub workspace: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    /// The token or its grant was revoked.
    pub revoked: bool,
}

/// Would the token work if used now? A replaced refresh token still works during
/// the grace period.
pub fn is_active(t: &TokenFacts, now: OffsetDateTime, grace: Duration) -> bool {
    !t.revoked
        && now < t.expires_at
        && (t.kind == TokenKind::Access
            || refresh_use(t.rotated_at, now, grace) != RefreshUse::Reuse)
}

/// The introspection answer (RFC 7662 §2.2). Unknown, expired, revoked, or another
/// client's token: `{"active": false}` and nothing else.
pub fn introspection(
    t: Option<&TokenFacts>,
    issuer: &str,
    now: OffsetDateTime,
    grace: Duration,
) -> Value {
    match t {
        Some(t) if is_active(t, now, grace) => json!({
            "active": true,
            "scope": t.scope,
            "client_id": t.client_id,
            "token_type": match t.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            },
            "exp": t.expires_at.unix_timestamp(),
            "iat": t.issued_at.unix_timestamp(),
            // The client itself, for client credentials.
            "sub": t.member_id.as_deref().unwrap_or(&t.client_id),
            "iss": issuer,
            "workspace": t.workspace,
        }),
        _ => json!({"active": false}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::parse_params;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn grants_parse() {
        let g = parse_grant(&parse_params(b"grant_type=authorization_code&code=x").unwrap());
        assert!(matches!(g, Ok(Grant::AuthorizationCode { .. })));
        let g = parse_grant(
            &parse_params(b"grant_type=refresh_token&refresh_token=r&scope=scim:read").unwrap(),
        )
        .unwrap();
        assert_eq!(
            g,
            Grant::RefreshToken {
                refresh_token: "r".into(),
                scope: Some(Scopes::parse("scim:read").unwrap())
            }
        );
        let code = |q: &[u8]| parse_grant(&parse_params(q).unwrap()).unwrap_err().code;
        assert_eq!(code(b""), ErrorCode::InvalidRequest);
        assert_eq!(
            code(b"grant_type=authorization_code"),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(b"grant_type=password"),
            ErrorCode::UnsupportedGrantType
        );
        assert_eq!(
            code(b"grant_type=refresh_token&refresh_token=r&scope=x"),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            parse_grant(&parse_params(b"grant_type=client_credentials&scope=").unwrap()),
            Ok(Grant::ClientCredentials { scope: None })
        );
        assert_eq!(
            code(b"grant_type=client_credentials&scope=openid"),
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn client_credentials_scopes_narrow_to_the_clients() {
        let read = Scopes::parse("scim:read").unwrap();
        let write = Scopes::parse("scim:write").unwrap();
        assert_eq!(client_credentials_scope(None, read), Ok(read));
        assert_eq!(
            client_credentials_scope(Some(Scopes::all()), read),
            Ok(read)
        );
        assert_eq!(
            client_credentials_scope(Some(read), Scopes::all()),
            Ok(read)
        );
        let e = client_credentials_scope(Some(write), read).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let body = token_response("rc_at_x", Duration::from_secs(60), None, read);
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["scope"], "scim:read");
    }

    fn binding(challenge: Option<&str>) -> CodeBinding<'_> {
        CodeBinding {
            authorizer_is_admin: true,
            client_id: "a",
            redirect_uri: "https://a.example/cb",
            code_challenge: challenge,
            expires_at: now() + time::Duration::minutes(10),
        }
    }

    #[test]
    fn codes_are_bound_to_client_redirect_and_pkce() {
        let cb = Some("https://a.example/cb");
        assert!(check_code(&binding(None), "a", cb, None, now()).is_ok());
        assert!(check_code(&binding(Some(CHALLENGE)), "a", cb, Some(VERIFIER), now()).is_ok());
        let refused = [
            check_code(&binding(None), "b", cb, None, now()),
            check_code(&binding(None), "a", None, None, now()),
            check_code(
                &binding(None),
                "a",
                Some("https://a.example/cb/"),
                None,
                now(),
            ),
            check_code(
                &binding(None),
                "a",
                cb,
                None,
                now() + time::Duration::minutes(10),
            ),
            check_code(&binding(None), "a", cb, Some(VERIFIER), now()),
            check_code(&binding(Some(CHALLENGE)), "a", cb, None, now()),
            check_code(
                &binding(Some(CHALLENGE)),
                "a",
                cb,
                Some(&"x".repeat(43)),
                now(),
            ),
            check_code(&binding(Some(CHALLENGE)), "a", cb, Some(CHALLENGE), now()),
            check_code(
                &CodeBinding {
                    authorizer_is_admin: false,
                    ..binding(None)
                },
                "a",
                cb,
                None,
                now(),
            ),
        ];
        for (i, r) in refused.into_iter().enumerate() {
            assert_eq!(r.unwrap_err().code, ErrorCode::InvalidGrant, "case {i}");
        }
    }

    #[test]
    fn refresh_rules() {
        let read = Scopes::parse("scim:read").unwrap();
        assert_eq!(refresh_scope(None, Scopes::all()).unwrap(), Scopes::all());
        assert_eq!(refresh_scope(Some(read), Scopes::all()).unwrap(), read);
        assert_eq!(
            refresh_scope(Some(Scopes::all()), read).unwrap_err().code,
            ErrorCode::InvalidScope
        );
        let grace = Duration::from_secs(60);
        assert_eq!(refresh_use(None, now(), grace), RefreshUse::Rotate);
        let at = now() - time::Duration::seconds(60);
        assert_eq!(refresh_use(Some(at), now(), grace), RefreshUse::WithinGrace);
        let at = now() - time::Duration::seconds(61);
        assert_eq!(refresh_use(Some(at), now(), grace), RefreshUse::Reuse);
    }

    #[test]
    fn refresh_decisions() {
        let grace = Duration::from_secs(60);
        let facts = |rotated_secs_ago: Option<i64>| RefreshFacts {
            client_id: "a",
            grant_scope: "scim:read scim:write",
            revoked: false,
            expires_at: now() + time::Duration::days(180),
            rotated_at: rotated_secs_ago.map(|s| now() - time::Duration::seconds(s)),
        };
        let read = Scopes::parse("scim:read").unwrap();
        assert_eq!(
            decide_refresh(&facts(None), "a", None, now(), grace),
            RefreshDecision::Issue(Scopes::all())
        );
        assert_eq!(
            decide_refresh(&facts(Some(10)), "a", Some(read), now(), grace),
            RefreshDecision::Issue(read)
        );
        assert!(matches!(
            decide_refresh(&facts(Some(61)), "a", None, now(), grace),
            RefreshDecision::EndGrant(e) if e.code == ErrorCode::InvalidGrant
        ));
        // Another client's token is refused without ending the owner's grant.
        assert!(matches!(
            decide_refresh(&facts(Some(61)), "b", None, now(), grace),
            RefreshDecision::Refuse(e) if e.code == ErrorCode::InvalidGrant
        ));
        let mut revoked = facts(None);
        revoked.revoked = true;
        assert!(matches!(
            decide_refresh(&revoked, "a", None, now(), grace),
            RefreshDecision::Refuse(_)
        ));
        let mut expired = facts(None);
        expired.expires_at = now();
        assert!(matches!(
            decide_refresh(&expired, "a", None, now(), grace),
            RefreshDecision::Refuse(_)
        ));
        let mut narrow = facts(None);
        narrow.grant_scope = "scim:read";
        assert!(matches!(
            decide_refresh(&narrow, "a", Some(Scopes::all()), now(), grace),
            RefreshDecision::Refuse(e) if e.code == ErrorCode::InvalidScope
        ));
    }

    #[test]
    fn introspection_says_little_about_dead_tokens() {
        let grace = Duration::from_secs(60);
        let mut t = TokenFacts {
            kind: TokenKind::Access,
            scope: "scim:read".into(),
            client_id: "c1".into(),
            member_id: Some("m1".into()),
            workspace: "acme".into(),
            issued_at: now(),
            expires_at: now() + time::Duration::hours(1),
            rotated_at: None,
            revoked: false,
        };
        let v = introspection(Some(&t), "https://id.example", now(), grace);
        assert_eq!(v["active"], true);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["workspace"], "acme");
        assert_eq!(v["exp"], 1_800_003_600);
        assert_eq!(v["iss"], "https://id.example");
        assert_eq!(
            introspection(None, "x", now(), grace),
            json!({"active": false})
        );
        let later = now() + time::Duration::hours(1);
        assert_eq!(
            introspection(Some(&t), "x", later, grace),
            json!({"active": false})
        );
        t.kind = TokenKind::Refresh;
        t.rotated_at = Some(now() - time::Duration::seconds(61));
        assert_eq!(
            introspection(Some(&t), "x", now(), grace),
            json!({"active": false})
        );
        t.rotated_at = Some(now());
        assert_eq!(
            introspection(Some(&t), "x", now(), grace)["token_type"],
            "refresh_token"
        );
        t.revoked = true;
        assert_eq!(
            introspection(Some(&t), "x", now(), grace),
            json!({"active": false})
        );
    }
}
