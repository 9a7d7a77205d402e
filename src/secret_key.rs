//! The deployment's secret key, kept outside the database.
//!
//! Whoever can read the database (a copied file, a backup) must not be able to mint a
//! session. So the keys that sign sessions and CSRF tokens are derived from a key that the
//! database never holds: `HERALD_SECRET_KEY` (64 hex digits) when set, otherwise the key
//! file (`secret_key_file`, by default `herald.key` beside the database), created 0600 with
//! a random key on first start. Losing the file ends every page session, nothing more;
//! it must be backed up with the database all the same, for what it will seal later.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Config;

#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    fn parse(text: &str, from: &str) -> Result<SecretKey, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            format!("{from} must hold 64 hex digits (e.g. the output of `openssl rand -hex 32`)")
        })?;
        Ok(SecretKey(key))
    }

    /// The key for one purpose (`"session"`, …): HMAC-SHA256(secret, purpose), so keys for
    /// different uses never coincide and none reveals the secret.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"herald|");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The configured key: `HERALD_SECRET_KEY`, else the key file, created if missing.
    pub fn load(config: &Config) -> Result<SecretKey, String> {
        if let Some(key) = &config.secret_key {
            return SecretKey::parse(key, "HERALD_SECRET_KEY");
        }
        let path = key_file(config);
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        // Created only if absent (two processes starting at once: the first one wins).
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(format!("{}\n", hex::encode(fresh)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::info!(file = %path.display(), "created the secret key file; back it up with the database");
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => warn_if_readable(&path),
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        SecretKey::parse(&text, &path.display().to_string())
    }
}

/// `secret_key_file`, or `herald.key` in the database's directory.
pub fn key_file(config: &Config) -> PathBuf {
    config.secret_key_file.clone().unwrap_or_else(|| {
        let dir = config.db.parent().filter(|d| !d.as_os_str().is_empty());
        dir.unwrap_or(Path::new(".")).join("herald.key")
    })
}

fn warn_if_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "the secret key file is readable by other users: chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            db: dir.path().join("herald.db"),
            ..Config::default()
        };
        let first = SecretKey::load(&config).unwrap();
        let path = dir.path().join("herald.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SecretKey::load(&config).unwrap().0, first.0);
        assert_ne!(first.derive("session"), first.derive("other"));

        let from_env = Config {
            secret_key: Some("ab".repeat(32)),
            ..config
        };
        assert_eq!(SecretKey::load(&from_env).unwrap().0, [0xab; 32]);
        let bad = Config {
            secret_key: Some("short".into()),
            ..Config::default()
        };
        assert!(SecretKey::load(&bad).unwrap_err().contains("64 hex digits"));
    }
}
