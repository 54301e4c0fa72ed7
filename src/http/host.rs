//! Which site a request is for, from its `Host` header: the app host (the base URL's
//! host) or a workspace host (`acme.<base host>`).

use axum::http::{HeaderMap, Uri, header};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    App,
    Workspace(String),
    /// A host that is neither: refused, so a stray DNS name (or a rebinding
    /// attack) never reaches workspace pages.
    Other,
}

/// The host name of the request, lowercased, without port. `X-Forwarded-Host` only
/// when the operator says a proxy sets it.
pub fn request_host(headers: &HeaderMap, uri: &Uri, trust_forwarded: bool) -> Option<String> {
    let forwarded = trust_forwarded
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let raw = forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| uri.host())?;
    Some(strip_port(raw).to_ascii_lowercase())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: [::1]:8080
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

pub fn site_of(host: &str, base_host: &str) -> Site {
    if host == base_host {
        return Site::App;
    }
    match host
        .strip_suffix(base_host)
        .and_then(|s| s.strip_suffix('.'))
    {
        Some(label) if !label.is_empty() && !label.contains('.') => {
            Site::Workspace(label.to_owned())
        }
        _ if is_loopback_ip(host) => Site::App,
        _ => Site::Other,
    }
}

/// Health checks and local tools address the server by IP; treat that as the app host.
fn is_loopback_ip(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sites_from_hosts() {
        assert_eq!(site_of("localhost", "localhost"), Site::App);
        assert_eq!(
            site_of("acme.localhost", "localhost"),
            Site::Workspace("acme".into())
        );
        assert_eq!(site_of("a.b.localhost", "localhost"), Site::Other);
        assert_eq!(site_of("evil.com", "localhost"), Site::Other);
        assert_eq!(site_of("xlocalhost", "localhost"), Site::Other);
        assert_eq!(site_of("127.0.0.1", "localhost"), Site::App);
        assert_eq!(
            site_of("acme.id.example.com", "id.example.com"),
            Site::Workspace("acme".into())
        );
    }

    #[test]
    fn host_header_port_and_forwarding() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("Acme.LocalHost:8080"),
        );
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("other.localhost"),
        );
        let uri: Uri = "/".parse().unwrap();
        assert_eq!(
            request_host(&h, &uri, false).as_deref(),
            Some("acme.localhost")
        );
        assert_eq!(
            request_host(&h, &uri, true).as_deref(),
            Some("other.localhost")
        );
        h.insert(header::HOST, HeaderValue::from_static("[::1]:8080"));
        assert_eq!(request_host(&h, &uri, false).as_deref(), Some("[::1]"));
    }
}
