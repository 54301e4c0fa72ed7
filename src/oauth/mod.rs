//! The OAuth2 authorization server's rules (RFC 6749, 7636, 7009, 7662, 8414, 9207,
//! 9700): scopes, PKCE, client authentication, the authorization request, the token
//! grants, introspection and metadata. No axum and no SQL: `http::oauth` parses and
//! renders, `store::oauth` keeps the state, and everything here is unit-tested.

pub mod authorize;
pub mod client;
pub mod error;
pub mod metadata;
pub mod pkce;
pub mod scope;
pub mod token;

pub use error::{ErrorCode, OAuthError};
pub use scope::{Scope, Scopes};

/// Authorization codes live ten minutes (RFC 6749 §4.1.2 recommends at most ten).
pub const CODE_TTL: time::Duration = time::Duration::minutes(10);

/// Parse `application/x-www-form-urlencoded` parameters (a query string or a form
/// body). A parameter sent twice is an error (RFC 6749 §3.1, §3.2): it names it.
pub fn parse_params(raw: &[u8]) -> Result<Params, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|_| "the parameters could not be parsed")?;
    let mut params = Params::default();
    for (k, v) in pairs {
        if params.0.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("the parameter '{k}' was sent more than once"));
        }
        params.0.push((k, v));
    }
    Ok(params)
}

/// Request parameters, each name at most once. Empty values count as absent
/// (RFC 6749 §3.1: "parameters sent without a value MUST be treated as if they were
/// omitted").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The parameters as a query string again (for carrying a request from one
    /// host or page to the next).
    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_duplicates_and_treat_empty_as_absent() {
        let p = parse_params(b"a=1&b=&c=x+y%21").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y!"));
        assert_eq!(p.get("d"), None);
        assert_eq!(
            parse_params(b"state=1&state=2").unwrap_err(),
            "the parameter 'state' was sent more than once"
        );
        let again = parse_params(p.to_query().as_bytes()).unwrap();
        assert_eq!(again, p);
    }
}
