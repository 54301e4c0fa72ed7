//! Scopes: `scim:read` and `scim:write`. A set is stored and sent space-separated in
//! a fixed order.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ScimRead,
    ScimWrite,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::ScimRead, Scope::ScimWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ScimRead => "scim:read",
            Scope::ScimWrite => "scim:write",
        }
    }

    /// What the scope lets a client do, for the consent page.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::ScimRead => "Read the workspace's members and their roles through the SCIM API",
            Scope::ScimWrite => {
                "Create, update, deactivate and reactivate members and change their roles through the SCIM API"
            }
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::ScimRead => 1,
            Scope::ScimWrite => 2,
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Scopes {
        Scopes(3)
    }

    /// Parse a space-separated scope string (RFC 6749 §3.3). Unknown scope: the error
    /// names it.
    pub fn parse(raw: &str) -> Result<Scopes, String> {
        let mut set = Scopes::default();
        for word in raw.split(' ').filter(|w| !w.is_empty()) {
            match Scope::ALL.iter().find(|s| s.as_str() == word) {
                Some(s) => set.0 |= s.bit(),
                None => return Err(format!("unknown scope '{word}'")),
            }
        }
        Ok(set)
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both sets.
    pub fn intersection(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_in_canonical_order() {
        let s = Scopes::parse("scim:write  scim:read").unwrap();
        assert_eq!(s, Scopes::all());
        assert_eq!(s.to_string(), "scim:read scim:write");
        assert!(Scopes::parse("").unwrap().is_empty());
        assert_eq!(
            Scopes::parse("scim:read openid").unwrap_err(),
            "unknown scope 'openid'"
        );
        // Scope tokens are case-sensitive (RFC 6749 §3.3).
        assert!(Scopes::parse("SCIM:READ").is_err());
    }

    #[test]
    fn subsets() {
        let read = Scopes::parse("scim:read").unwrap();
        assert!(read.is_subset_of(Scopes::all()));
        assert!(!Scopes::all().is_subset_of(read));
        assert!(Scopes::default().is_subset_of(read));
        assert!(read.contains(Scope::ScimRead) && !read.contains(Scope::ScimWrite));
    }
}
