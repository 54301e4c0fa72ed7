//! PKCE (RFC 7636), S256 only. Formats are checked here before anything hashes, so
//! no input reaches a library that panics on bad lengths.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// 43 to 128 characters of `[A-Za-z0-9-._~]`: the form of a verifier (§4.1) and, as
/// this server checks it, of a challenge.
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier)) == challenge`, in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    crate::secrets::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(well_formed(verifier) && well_formed(challenge));
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(challenge, challenge));
        // The plain method would compare them directly; S256 never does.
        assert!(!verify_s256(verifier, verifier));
    }

    #[test]
    fn formats() {
        assert!(!well_formed(&"a".repeat(42)));
        assert!(well_formed(&"a".repeat(43)));
        assert!(well_formed(&"a".repeat(128)));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}+", "a".repeat(43))));
        assert!(!well_formed(&format!("{}=", "a".repeat(43))));
        assert!(!well_formed(&"é".repeat(43)));
        assert!(!verify_s256(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
