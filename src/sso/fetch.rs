//! Outgoing requests to identity providers (SAML metadata, OIDC discovery, JWKS,
//! token exchange). A workspace admin chooses these URLs, so they are untrusted:
//! the request may only connect to public addresses, judged on the addresses the
//! connection is actually made to, unless the operator allow-listed the host.

/// One `sso_fetch_allow` entry: a host name or IP address, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub host: String,
    pub port: Option<u16>,
}

impl AllowEntry {
    pub fn parse(raw: &str) -> Result<AllowEntry, String> {
        let raw = raw.trim();
        let url = url::Url::parse(&format!("http://{raw}/"))
            .map_err(|_| "expected a host name or address, optionally with :port".to_owned())?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "expected a host name or address".to_owned())?;
        if url.path() != "/" || url.username() != "" || url.query().is_some() {
            return Err("expected a host name or address, optionally with :port".into());
        }
        Ok(AllowEntry {
            host: host.to_ascii_lowercase(),
            port: url.port(),
        })
    }
}
