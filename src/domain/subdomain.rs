use super::Invalid;
use std::fmt;

/// A workspace subdomain: one DNS label (RFC 1035 letters, digits, hyphens; no
/// leading or trailing hyphen), lowercase, 2 to 63 characters, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subdomain(String);

/// Names the product itself needs, or that would confuse people and browsers.
const RESERVED: &[&str] = &[
    "www",
    "api",
    "app",
    "admin",
    "static",
    "assets",
    "auth",
    "login",
    "oauth",
    "oauth2",
    "scim",
    "sso",
    "mail",
    "smtp",
    "status",
    "help",
    "support",
    "docs",
    "blog",
    "cdn",
    "metrics",
    "health",
    "healthz",
    "internal",
    "localhost",
    "rollcall",
];

impl Subdomain {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim().to_ascii_lowercase();
        if s.len() < 2 || s.len() > 63 {
            return Err(Invalid("a subdomain has 2 to 63 characters".into()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Invalid(
                "a subdomain uses only letters, digits and hyphens".into(),
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(Invalid(
                "a subdomain cannot start or end with a hyphen".into(),
            ));
        }
        if s.starts_with("xn--") {
            return Err(Invalid("punycode subdomains are not supported".into()));
        }
        if RESERVED.contains(&s.as_str()) {
            return Err(Invalid(format!(
                "'{s}' is reserved; choose another subdomain"
            )));
        }
        Ok(Subdomain(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subdomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_and_lowercases() {
        assert_eq!(Subdomain::parse("acme").unwrap().as_str(), "acme");
        assert_eq!(Subdomain::parse(" Acme-2 ").unwrap().as_str(), "acme-2");
        assert_eq!(
            Subdomain::parse(&"a".repeat(63)).unwrap().as_str().len(),
            63
        );
    }

    #[test]
    fn refuses_bad_labels() {
        for bad in [
            "",
            "a",
            "-acme",
            "acme-",
            "ac_me",
            "ac.me",
            "acmé",
            "xn--bcher-kva",
        ] {
            assert!(Subdomain::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Subdomain::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn refuses_reserved_names() {
        for name in ["www", "API", "app", "admin", "static"] {
            let err = Subdomain::parse(name).unwrap_err();
            assert!(err.0.contains("reserved"), "{name}: {err}");
        }
    }
}
