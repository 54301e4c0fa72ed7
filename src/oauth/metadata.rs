//! Authorization server metadata (RFC 8414), served at
//! `/.well-known/oauth-authorization-server` on the app host.

use super::Scope;
use serde_json::{Value, json};

pub fn document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        // RFC 7662 §2.1: these need an authenticated (confidential) client.
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoints_hang_off_the_issuer() {
        let d = super::document("https://id.example.com");
        assert_eq!(d["issuer"], "https://id.example.com");
        assert_eq!(d["token_endpoint"], "https://id.example.com/oauth2/token");
        assert_eq!(d["code_challenge_methods_supported"][0], "S256");
        assert_eq!(d["scopes_supported"][1], "scim:write");
        assert_eq!(d["grant_types_supported"][2], "client_credentials");
        let none = serde_json::json!("none");
        for endpoint in ["revocation", "introspection"] {
            let methods = d[format!("{endpoint}_endpoint_auth_methods_supported")]
                .as_array()
                .unwrap();
            assert!(!methods.contains(&none), "{endpoint}");
        }
    }
}
