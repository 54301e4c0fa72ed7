//! Validated domain types. No I/O: each type can only hold a valid value.
mod email;
mod role;
mod subdomain;

pub use email::{Email, fold_case};
pub use role::Role;
pub use subdomain::Subdomain;

/// Why a value was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
