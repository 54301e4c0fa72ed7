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

use openidconnect::{HttpRequest, HttpResponse};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The largest IdP document we read: metadata, discovery, key sets and token
/// answers are a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed. For the server log only: pages say one generic sentence,
/// so a fetch cannot be used to probe the network or read what answered.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("'{0}' is not an http(s) URL with a host")]
    BadUrl(String),
    #[error("{0} is an internal address and not in sso_fetch_allow")]
    Internal(String),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// Whether `ip` is loopback, private, link-local, unique-local, multicast,
/// unspecified or otherwise not a public unicast address. IPv6 forms that carry an
/// IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network", 0.0.0.0
        || a == 10                           // private
        || a == 127                          // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)            // link-local
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // documentation
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113)  // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // Forms that carry an IPv4 address are as internal as that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4); // ::ffff:a.b.c.d
    }
    if s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return internal_v4(embedded(s[6], s[7])); // IPv4-translated ::ffff:0:a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return internal_v4(embedded(s[6], s[7])); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return internal_v4(embedded(s[1], s[2])); // 6to4
    }
    // Only global unicast (2000::/3) is public; everything else (::, ::1,
    // IPv4-compatible, local-use NAT64 64:ff9b:1::/48, unique-local, link-local,
    // site-local, multicast, discard-only) is not.
    if (s[0] & 0xe000) != 0x2000 {
        return true;
    }
    // IETF protocol assignments 2001::/23, Teredo (2001::/32, hides an IPv4
    // address) among them; documentation 2001:db8::/32 and 3fff::/20.
    (s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8)) || (s[0] == 0x3fff && s[1] < 0x1000)
}

/// Resolves names to their public addresses only; a name with none is refused
/// before any connection is made.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(FetchError::Internal(host)) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for every request to an identity provider.
pub struct Fetcher {
    /// Connects to public addresses only.
    guarded: reqwest::Client,
    /// For allow-listed hosts.
    open: reqwest::Client,
    allow: Vec<AllowEntry>,
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would make the connection for us, to
        // addresses we never see.
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
}

impl Fetcher {
    /// `allow`: entries already checked by `Config` (unparseable ones are skipped).
    /// Fails only when the TLS backend cannot start: then nothing is fetched
    /// rather than falling back to a client without these rules.
    pub fn new(allow: &[String]) -> Result<Fetcher, reqwest::Error> {
        Ok(Fetcher {
            guarded: client_builder()
                .dns_resolver(Arc::new(PublicOnly))
                .build()?,
            open: client_builder().build()?,
            allow: allow
                .iter()
                .filter_map(|e| AllowEntry::parse(e).ok())
                .collect(),
        })
    }

    fn allowed(&self, url: &url::Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.allow
            .iter()
            .any(|e| e.host == host && e.port.is_none_or(|p| p == port))
    }

    /// The client to use for `url`, or why none may be.
    fn client_for(&self, url: &url::Url) -> Result<&reqwest::Client, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::BadUrl(url.to_string()));
        }
        if self.allowed(url) {
            return Ok(&self.open);
        }
        // An address in the URL is connected to as it is, without the resolver.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(FetchError::BadUrl(url.to_string())),
        };
        match literal {
            Some(ip) if is_internal(ip) => Err(FetchError::Internal(ip.to_string())),
            _ => Ok(&self.guarded),
        }
    }

    /// Send `request` (what openidconnect builds) and read the answer, capped.
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, FetchError> {
        let url = url::Url::parse(&request.uri().to_string())
            .map_err(|_| FetchError::BadUrl(request.uri().to_string()))?;
        let client = self.client_for(&url)?;
        let (parts, body) = request.into_parts();
        let resp = client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let mut out = HttpResponse::new(Vec::new());
        *out.status_mut() = resp.status();
        *out.headers_mut() = resp.headers().clone();
        *out.body_mut() = read_capped(resp).await?;
        Ok(out)
    }

    /// GET `url` and return the body of a 2xx answer as text.
    pub async fn get_text(&self, url: &str) -> Result<String, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::BadUrl(url.to_owned()))?;
        let resp = self
            .client_for(&parsed)?
            .get(parsed)
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let body = read_capped(resp).await?;
        String::from_utf8(body).map_err(|_| FetchError::Transport("not UTF-8 text".into()))
    }
}

/// openidconnect sends its discovery, key-set and token requests through this.
impl<'c> openidconnect::AsyncHttpClient<'c> for Fetcher {
    type Error = FetchError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's error with its causes (the resolver's refusal is one of them).
fn transport(e: reqwest::Error) -> FetchError {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Transport(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused_and_public_ones_not() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "3fff::1",
        ] {
            assert!(is_internal(ip(s)), "{s} should be internal");
        }
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "169.255.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(!is_internal(ip(s)), "{s} should be public");
        }
    }

    #[test]
    fn url_forms_of_loopback_are_loopback() {
        let f = Fetcher::new(&[]).unwrap();
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://0.0.0.0/",
            "http://0/",
        ] {
            let url = url::Url::parse(u).unwrap();
            assert!(
                matches!(f.client_for(&url), Err(FetchError::Internal(_))),
                "{u}"
            );
        }
        let not_http = url::Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(
            f.client_for(&not_http),
            Err(FetchError::BadUrl(_))
        ));
    }

    #[test]
    fn allow_entries_match_host_and_port() {
        let f = Fetcher::new(&["idp.corp.internal".into(), "127.0.0.1:9000".into()]).unwrap();
        let ok = |u: &str| f.allowed(&url::Url::parse(u).unwrap());
        assert!(ok("https://idp.corp.internal/metadata"));
        assert!(ok("http://IDP.corp.internal:8080/"));
        assert!(ok("http://127.0.0.1:9000/x"));
        assert!(ok("http://127.1:9000/x"), "the URL's address is normalised");
        assert!(!ok("http://127.0.0.1:9001/x"));
        assert!(!ok("http://localhost:9000/x"));
        assert!(!ok("https://other.corp.internal/"));
        assert_eq!(
            AllowEntry::parse("[::1]:4000").unwrap(),
            AllowEntry {
                host: "[::1]".into(),
                port: Some(4000)
            }
        );
        assert!(AllowEntry::parse("http://x/").is_err());
        assert!(AllowEntry::parse("").is_err());
        assert!(AllowEntry::parse("a b").is_err());
    }
}
