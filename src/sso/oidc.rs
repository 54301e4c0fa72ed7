//! OpenID Connect sign-in (authorization code flow with PKCE, state and nonce),
//! through the `openidconnect` crate. Discovery documents and their key sets are
//! cached per issuer and fetched again when an ID token names a key we do not know
//! (the IdP rotated its keys). The HTTP client never follows redirects, so an IdP
//! cannot bounce our requests elsewhere.

use super::CLOCK_SKEW_SECS;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A workspace's OIDC settings, with the client secret opened.
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

/// What the browser's session carries between the hand-off and the callback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
    /// The issuer the request went to: settings changed in between mean start again.
    pub issuer: String,
}

/// Who the IdP says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("The identity provider's issuer URL is not usable: {0}")]
    BadIssuer(String),
    /// The detail is for the server log: pages show only this sentence, so the
    /// settings form cannot be used to probe the network.
    #[error("Could not fetch a valid OpenID Connect configuration from the identity provider.")]
    Unreachable(String),
    #[error("This sign-in was not started here, or was already used. Start again.")]
    NoPendingSignIn,
    #[error("The identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The detail is for the server log only (it may quote the IdP's answer).
    #[error("The identity provider's answer to the sign-in could not be used.")]
    Token(String),
    #[error("The identity provider's ID token was not valid: {0}")]
    InvalidIdToken(String),
    #[error("The identity provider did not give a verified email address for this account.")]
    NoVerifiedEmail,
}

/// Issuers must be https, except on this machine (development and tests).
pub fn check_issuer(raw: &str) -> Result<IssuerUrl, OidcError> {
    let url = url::Url::parse(raw).map_err(|e| OidcError::BadIssuer(format!("'{raw}': {e}")))?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && local)) {
        return Err(OidcError::BadIssuer(format!(
            "'{raw}' must be https (http only for localhost)"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(OidcError::BadIssuer(format!(
            "'{raw}' must not have a query or fragment"
        )));
    }
    // The issuer is compared as a string with the one in the discovery document and
    // in tokens, so keep it exactly as the admin wrote it.
    IssuerUrl::new(raw.to_owned()).map_err(|e| OidcError::BadIssuer(e.to_string()))
}

/// The callback's `state` must be the one this browser's pending sign-in sent.
pub fn check_state(pending: Option<Pending>, state: &str) -> Result<Pending, OidcError> {
    match pending {
        Some(p) if crate::secrets::constant_time_eq(p.state.as_bytes(), state.as_bytes()) => Ok(p),
        _ => Err(OidcError::NoPendingSignIn),
    }
}

/// The checks the library leaves to us: `azp` (required with several audiences,
/// and ours when present), and a verified email.
pub fn identity_from_claims(
    claims: &CoreIdTokenClaims,
    client_id: &str,
    extra: &ExtraClaims,
) -> Result<Identity, OidcError> {
    let several = claims.audiences().len() > 1;
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => {
            return Err(OidcError::InvalidIdToken(format!(
                "it was issued to another client ({})",
                azp.as_str()
            )));
        }
        None if several => {
            return Err(OidcError::InvalidIdToken(
                "it has several audiences and no authorized party".into(),
            ));
        }
        _ => {}
    }
    let email = claims
        .email()
        .map(|e| e.as_str().trim().to_owned())
        .filter(|e| !e.is_empty())
        .ok_or(OidcError::NoVerifiedEmail)?;
    // Entra ID sends no email_verified; its xms_edov ("email domain owner verified")
    // optional claim says the same thing.
    let verified = claims.email_verified() == Some(true) || extra.xms_edov == Some(true);
    if !verified {
        return Err(OidcError::NoVerifiedEmail);
    }
    Ok(Identity {
        subject: claims.subject().as_str().to_owned(),
        email,
    })
}

/// Claims outside the OIDC core that we read from the ID token payload.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ExtraClaims {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub xms_edov: Option<bool>,
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::String(s) => Some(s.eq_ignore_ascii_case("true") || s == "1"),
        serde_json::Value::Number(n) => Some(n.as_i64() == Some(1)),
        _ => None,
    })
}

/// The payload of a JWT, unverified: only for claims read after the library has
/// verified the same token.
fn extra_claims(jwt: &str) -> ExtraClaims {
    use base64::Engine;
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// How long discovery documents and key sets are kept before being fetched again.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id refetches at most this often per issuer, so forged tokens
/// cannot make us hammer the IdP.
const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// The OIDC relying party: the guarded HTTP client and the per-issuer discovery cache.
pub struct Oidc {
    fetch: Arc<super::fetch::Fetcher>,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    fetched: Instant,
    /// The last refetch forced by an unknown key id.
    forced: Option<Instant>,
    metadata: Arc<CoreProviderMetadata>,
}

impl Oidc {
    pub fn new(fetch: Arc<super::fetch::Fetcher>) -> Oidc {
        Oidc {
            fetch,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer's discovery document and keys: from the cache unless stale, or
    /// fetched again when `unknown_key` (at most once per REFETCH_MIN_INTERVAL).
    async fn metadata(
        &self,
        issuer: &str,
        unknown_key: bool,
    ) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        let mut forced = None;
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.get(issuer)
        {
            let fresh = c.fetched.elapsed() < CACHE_TTL;
            let may_force = c
                .forced
                .is_none_or(|at| at.elapsed() >= REFETCH_MIN_INTERVAL);
            if fresh && !(unknown_key && may_force) {
                return Ok(c.metadata.clone());
            }
            forced = c.forced;
        }
        let issuer_url = check_issuer(issuer)?;
        let md = CoreProviderMetadata::discover_async(issuer_url, &*self.fetch)
            .await
            .map_err(|e| OidcError::Unreachable(error_chain(&e)))?;
        let md = Arc::new(md);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                issuer.to_owned(),
                Cached {
                    fetched: Instant::now(),
                    forced: if unknown_key {
                        Some(Instant::now())
                    } else {
                        forced
                    },
                    metadata: md.clone(),
                },
            );
        }
        Ok(md)
    }

    /// Check the settings by fetching the discovery document (for the CLI).
    pub async fn probe(&self, issuer: &str) -> Result<(), OidcError> {
        let issuer_url = check_issuer(issuer)?;
        CoreProviderMetadata::discover_async(issuer_url, &*self.fetch)
            .await
            .map(|_| ())
            .map_err(|e| OidcError::Unreachable(error_chain(&e)))
    }

    /// The URL to send the browser to, and what to remember until it comes back.
    pub async fn start(
        &self,
        settings: &OidcSettings,
        next: String,
    ) -> Result<(url::Url, Pending), OidcError> {
        let md = self.metadata(&settings.issuer, false).await?;
        let client = client(&md, settings)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url,
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next,
                issuer: settings.issuer.clone(),
            },
        ))
    }

    /// Redeem the code and verify the ID token it brings.
    pub async fn finish(
        &self,
        settings: &OidcSettings,
        pending: &Pending,
        code: &str,
    ) -> Result<Identity, OidcError> {
        if pending.issuer != settings.issuer {
            return Err(OidcError::NoPendingSignIn);
        }
        let md = self.metadata(&settings.issuer, false).await?;
        let client = client(&md, settings)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Token(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&*self.fetch)
            .await
            .map_err(|e| OidcError::Token(error_chain(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Token("no ID token in the token response".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |client: &Client| -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
            let verifier = client
                .id_token_verifier()
                // Other audiences are allowed when `azp` names us (checked below).
                .set_other_audience_verifier_fn(|_| true)
                // exp may be up to the skew in the past.
                .set_time_fn(|| chrono::Utc::now() - chrono::Duration::seconds(CLOCK_SKEW_SECS))
                .set_issue_time_verifier_fn(|iat| {
                    let now = chrono::Utc::now();
                    if iat > now + chrono::Duration::seconds(CLOCK_SKEW_SECS) {
                        Err("issued in the future".into())
                    } else if iat < now - chrono::Duration::minutes(10) {
                        Err("issued too long ago".into())
                    } else {
                        Ok(())
                    }
                });
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Perhaps the IdP rotated its keys: fetch them again, once.
                let md = self.metadata(&settings.issuer, true).await?;
                verify(&self::client(&md, settings)?)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        identity_from_claims(
            &claims,
            &settings.client_id,
            &extra_claims(&id_token.to_string()),
        )
    }
}

type Client = openidconnect::core::CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client(md: &CoreProviderMetadata, settings: &OidcSettings) -> Result<Client, OidcError> {
    let redirect = RedirectUrl::new(settings.redirect_uri.clone())
        .map_err(|e| OidcError::BadIssuer(e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(
        md.clone(),
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// An error with its causes, for messages (never contains secrets: these are
/// transport and parse errors).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> CoreIdTokenClaims {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.test", "sub": "u1", "aud": "client",
            "exp": 2_000_000_000, "iat": 1_700_000_000,
            "email": "Ann@Example.test", "email_verified": true
        })
    }

    #[test]
    fn issuers_must_be_https_or_local() {
        assert!(check_issuer("https://acme.okta.com").is_ok());
        assert!(check_issuer("http://127.0.0.1:4000").is_ok());
        assert!(check_issuer("http://localhost:4000/oidc").is_ok());
        assert!(check_issuer("http://idp.example.com").is_err());
        assert!(check_issuer("https://idp.example.com/?x=1").is_err());
        assert!(check_issuer("not a url").is_err());
    }

    #[test]
    fn state_must_match_the_pending_sign_in() {
        let p = Pending {
            state: "abc".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/".into(),
            issuer: "https://idp.test".into(),
        };
        assert_eq!(check_state(Some(p.clone()), "abc").unwrap(), p);
        assert_eq!(
            check_state(Some(p), "abd").unwrap_err(),
            OidcError::NoPendingSignIn
        );
        assert_eq!(
            check_state(None, "abc").unwrap_err(),
            OidcError::NoPendingSignIn
        );
    }

    #[test]
    fn verified_email_and_azp_rules() {
        let none = ExtraClaims::default();
        let id = identity_from_claims(&claims(base()), "client", &none).unwrap();
        assert_eq!(id.email, "Ann@Example.test");

        let mut c = base();
        c["email_verified"] = false.into();
        assert_eq!(
            identity_from_claims(&claims(c.clone()), "client", &none).unwrap_err(),
            OidcError::NoVerifiedEmail
        );
        let edov = ExtraClaims {
            xms_edov: Some(true),
        };
        c.as_object_mut().unwrap().remove("email_verified");
        assert!(identity_from_claims(&claims(c), "client", &edov).is_ok());

        let mut c = base();
        c["aud"] = serde_json::json!(["client", "other"]);
        assert!(matches!(
            identity_from_claims(&claims(c.clone()), "client", &none),
            Err(OidcError::InvalidIdToken(_))
        ));
        c["azp"] = "client".into();
        assert!(identity_from_claims(&claims(c.clone()), "client", &none).is_ok());
        c["azp"] = "other".into();
        assert!(identity_from_claims(&claims(c), "client", &none).is_err());

        let mut c = base();
        c.as_object_mut().unwrap().remove("email");
        assert_eq!(
            identity_from_claims(&claims(c), "client", &none).unwrap_err(),
            OidcError::NoVerifiedEmail
        );
    }

    #[test]
    fn extra_claims_read_lenient_booleans() {
        use base64::Engine;
        let enc = |v: serde_json::Value| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            )
        };
        assert_eq!(
            extra_claims(&enc(serde_json::json!({"xms_edov": "True"}))).xms_edov,
            Some(true)
        );
        assert_eq!(
            extra_claims(&enc(serde_json::json!({"xms_edov": 1}))).xms_edov,
            Some(true)
        );
        assert_eq!(extra_claims(&enc(serde_json::json!({}))).xms_edov, None);
        assert_eq!(extra_claims("garbage").xms_edov, None);
    }
}
