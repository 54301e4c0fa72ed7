use super::Invalid;
use std::fmt;

/// A member's role in the product. SCIM carries it as the primary `roles` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    Admin,
    Maker,
    #[default]
    Contributor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Maker, Role::Contributor, Role::Viewer];

    /// Any case in; the canonical form is lowercase.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "maker" => Ok(Role::Maker),
            "contributor" => Ok(Role::Contributor),
            "viewer" => Ok(Role::Viewer),
            other => Err(Invalid(format!(
                "unknown role '{other}'; roles are admin, maker, contributor, viewer"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maker => "maker",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
        }
    }
}

/// For rows: the database keeps the canonical lowercase name (a CHECK constraint
/// holds it to the four).
impl TryFrom<String> for Role {
    type Error = Invalid;

    fn try_from(raw: String) -> Result<Self, Invalid> {
        Role::parse(&raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_round_trips() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
            assert_eq!(Role::parse(&role.as_str().to_uppercase()).unwrap(), role);
        }
        assert_eq!(Role::default(), Role::Contributor);
    }

    #[test]
    fn refuses_unknown_roles() {
        let err = Role::parse("owner").unwrap_err();
        assert!(err.0.contains("owner") && err.0.contains("viewer"));
    }
}
