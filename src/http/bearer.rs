//! Who is calling the SCIM API: the bearer token names the workspace and the access.

use super::AppState;
use crate::store::StoreError;

pub use crate::app::provisioning::Principal;

/// The bearer token from an `Authorization` header value, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Resolve a bearer token (`app::provisioning::authenticate`). `None`: unknown,
/// revoked or expired.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Principal>, StoreError> {
    crate::app::provisioning::authenticate(&state.db, token).await
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
