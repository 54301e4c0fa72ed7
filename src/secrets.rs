//! Secret material: random tokens, their digests, password hashes.
//!
//! Tokens, codes and client secrets are 256-bit random values shown once and stored
//! only as SHA-256 digests (a fast hash is right for high-entropy secrets); each kind
//! has a readable prefix so people and secret scanners can tell them apart.
//! Passwords are hashed with argon2id off the async runtime.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Kinds of secret, by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ApiToken,
    AccessToken,
    RefreshToken,
    AuthCode,
    ClientSecret,
    Csrf,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::ApiToken => "rc_pat_",
            Kind::AccessToken => "rc_at_",
            Kind::RefreshToken => "rc_rt_",
            Kind::AuthCode => "rc_ac_",
            Kind::ClientSecret => "rc_cs_",
            Kind::Csrf => "",
        }
    }
}

/// A new secret of `kind`: prefix + 256 random bits, base64url.
pub fn generate(kind: Kind) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The part of a token that may be shown in lists: its prefix and a few characters.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(12).collect()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn hash_password_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Hashing only fails on parameter misconfiguration, which is static here.
        .unwrap_or_default()
}

pub fn verify_password_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hash a password on the blocking pool: argon2id takes tens of milliseconds.
pub async fn hash_password(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .unwrap_or_default()
}

/// Verify against `hash`, or against a dummy hash when there is none (unknown
/// account, or no password set) so that timing does not tell which emails exist.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (dummy_hash().to_owned(), false),
        };
        verify_password_blocking(&password, &hash) && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password_blocking("rollcall-dummy-password-for-timing"))
}

/// A password for a new admin: 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_digestible() {
        let a = generate(Kind::ApiToken);
        let b = generate(Kind::ApiToken);
        assert!(a.starts_with("rc_pat_") && a.len() == 7 + 43);
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 32);
        assert!(constant_time_eq(&digest(&a), &digest(&a)));
        assert!(!constant_time_eq(&digest(&a), &digest(&b)));
        assert_eq!(display_prefix(&a), a[..12]);
    }

    #[test]
    fn password_hash_round_trip() {
        let h = hash_password_blocking("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse", &h));
        assert!(!verify_password_blocking("wrong", &h));
        assert!(!verify_password_blocking("x", "not a hash"));
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        assert!(!verify_password("rollcall-dummy-password-for-timing".into(), None).await);
    }
}
