//! Who is calling the SCIM API: the bearer token names the workspace and the access.

use super::AppState;
use crate::oauth::{Scope, Scopes};
use crate::secrets;
use crate::store::{StoreError, oauth, tokens};

pub use crate::provisioning::Principal;

/// The bearer token from an `Authorization` header value, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Resolve a bearer token. `None`: unknown, revoked or expired.
///
/// OAuth access tokens (`rc_at_…`) act for the workspace of their grant with the
/// grant's scopes: reading needs `scim:read`, writing needs `scim:write` (a token with
/// only `scim:write` cannot read; ask for both, as a client that asks for nothing
/// gets).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Principal>, StoreError> {
    if token.starts_with(secrets::Kind::ApiToken.prefix()) {
        let Some((t, workspace)) = tokens::authenticate(&state.db, &secrets::digest(token)).await?
        else {
            return Ok(None);
        };
        // Workspace API tokens carry full SCIM access.
        return Ok(Some(Principal {
            workspace,
            can_read: true,
            can_write: true,
            actor: format!("token:{}", t.prefix),
        }));
    }
    if token.starts_with(secrets::Kind::AccessToken.prefix()) {
        let Some(t) = oauth::token(&state.db, &secrets::digest(token)).await? else {
            return Ok(None);
        };
        if t.kind != "access" || !t.live() || crate::store::now() >= t.expires_at {
            return Ok(None);
        }
        let workspace = t.workspace();
        oauth::touch_grant(&state.db, &t).await?;
        let scopes = Scopes::parse(&t.scope).unwrap_or_default();
        return Ok(Some(Principal {
            workspace,
            can_read: scopes.contains(Scope::ScimRead),
            can_write: scopes.contains(Scope::ScimWrite),
            actor: format!("oauth:{}", t.client_name),
        }));
    }
    Ok(None)
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
