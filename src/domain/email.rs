use super::Invalid;
use std::fmt;

/// An email address as people type it: kept as given (trimmed), compared
/// ignoring case. Deliberately permissive (one `@`, non-empty local part, a dotted
/// or single-label domain, no spaces or control characters): IdPs are the authority
/// on which addresses exist, and a strict RFC 5322 parser refuses real ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.len() > 320 {
            return Err(Invalid(
                "an email address has at most 320 characters".into(),
            ));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(Invalid(format!("'{s}' is not an email address (no @)")));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(Invalid(format!("'{s}' is not an email address")));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || domain.contains('@') {
            return Err(Invalid(format!("'{s}' is not an email address")));
        }
        if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(Invalid(format!("'{s}' has an invalid domain")));
        }
        Ok(Email(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for lookups and uniqueness.
    pub fn folded(&self) -> String {
        fold_case(&self.0)
    }
}

/// Case folding used for every case-insensitive key Rollcall stores (userName,
/// email values): done here, not in SQL, so SQLite and PostgreSQL agree on
/// non-ASCII letters.
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_folds() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(e.folded(), "ada.lovelace@example.com");
        assert!(Email::parse("root@localhost").is_ok());
        assert!(Email::parse("\"odd\"@x.org").is_ok());
    }

    #[test]
    fn refuses_non_addresses() {
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a b@x.com",
            "a@x..com",
            "a@.x",
            "a@x.",
            "a\u{0}@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
