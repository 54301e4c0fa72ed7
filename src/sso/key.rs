//! The server key: seals secrets stored in the database (IdP client secrets) with
//! XChaCha20-Poly1305. It comes from the `secret_key` setting (base64 of 32 bytes)
//! or, when none is set, from `<data_dir>/secret.key`, generated once. Losing the key
//! means re-entering the IdP client secrets; anyone holding it and the database can
//! read them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::io::Write;
use std::path::Path;

/// File name of the generated key inside the data directory.
pub const KEY_FILE: &str = "secret.key";
/// Sealed values start with this version byte, so the format can change later.
const VERSION: u8 = 1;

#[derive(Clone)]
pub struct ServerKey(XChaCha20Poly1305);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the server key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("the sealed value could not be opened with this server key")]
    CannotOpen,
}

impl ServerKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> ServerKey {
        ServerKey(XChaCha20Poly1305::new(bytes.into()))
    }

    /// Parse the base64 form (as in the setting and the key file).
    pub fn from_base64(text: &str) -> Result<ServerKey, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadKey)?;
        Ok(ServerKey::from_bytes(&bytes))
    }

    /// The configured key, else the one in `data_dir`, else a new one written there
    /// (readable by the owner only). Two processes starting at once agree: the file
    /// is created exclusively and the loser reads the winner's key.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<ServerKey> {
        if let Some(text) = configured {
            return ServerKey::from_base64(text)
                .map_err(|e| anyhow::anyhow!("invalid setting secret_key: {e}"));
        }
        let path = data_dir.join(KEY_FILE);
        let read = |path: &Path| -> anyhow::Result<ServerKey> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            ServerKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        };
        if path.exists() {
            return read(&path);
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{}\n", STANDARD.encode(bytes)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a new server key; back it up with the database (see README, SSO)"
                );
                Ok(ServerKey::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process won the race; give it a moment to finish writing.
                for _ in 0..50 {
                    if let Ok(key) = read(&path) {
                        return Ok(key);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                read(&path)
            }
            Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
        }
    }

    /// Seal `plain`, bound to `context` (e.g. "oidc_client_secret:<workspace id>") so
    /// a sealed value cannot be moved to another row or field.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for inputs over 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != VERSION {
            return Err(KeyError::CannotOpen);
        }
        self.0
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| KeyError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context() {
        let key = ServerKey::from_bytes(&[7; 32]);
        let sealed = key.seal("ctx:1", b"s3cret");
        assert_ne!(&sealed[25..], b"s3cret");
        assert_eq!(key.open("ctx:1", &sealed).unwrap(), b"s3cret");
        assert_eq!(key.open("ctx:2", &sealed), Err(KeyError::CannotOpen));
        let other = ServerKey::from_bytes(&[8; 32]);
        assert_eq!(other.open("ctx:1", &sealed), Err(KeyError::CannotOpen));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open("ctx:1", &tampered), Err(KeyError::CannotOpen));
        assert_eq!(key.open("ctx:1", b"short"), Err(KeyError::CannotOpen));
    }

    #[test]
    fn key_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("rollcall-key-{}", uuid::Uuid::new_v4()));
        let a = ServerKey::load(None, &dir).unwrap();
        let b = ServerKey::load(None, &dir).unwrap();
        let sealed = a.seal("c", b"x");
        assert_eq!(b.open("c", &sealed).unwrap(), b"x");
        let text = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        let c = ServerKey::load(Some(&text), Path::new("/nonexistent")).unwrap();
        assert_eq!(c.open("c", &sealed).unwrap(), b"x");
        assert!(ServerKey::load(Some("c2hvcnQ="), &dir).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
