//! The deployment's secret key, kept outside the database.
//!
//! Whoever can read the database (a copied file, a backup) must not be able to mint a
//! session. So the keys that sign sessions and CSRF tokens are derived from a key that the
//! database never holds: `HERALD_SECRET_KEY` (64 hex digits) when set, otherwise the key
//! file (`secret_key_file`, by default `herald.key` beside the database), created 0600 with
//! a random key on first start.
//!
//! The same key seals endpoint signing secrets in the database (ChaCha20-Poly1305 from
//! `ring`, a random nonce each): a stored secret reads `sealed2:<base64>`. The seal names
//! its owner (the AEAD's associated data: `endpoint_owner`, tenant and endpoint id), so a
//! sealed secret copied onto another endpoint's row does not open there: write access to
//! the database does not let one endpoint sign with another's secret. The server installs
//! its key for the store (`install`) before opening it; the store seals what it writes and
//! opens what it reads, and on opening re-seals (`reseal_stored`) any secret still in clear
//! or in the older `sealed1:` form, whose associated data named no owner. Losing the key loses the endpoints' secrets (rotate them) and ends
//! page sessions, so back it up with the database — but never in the same place.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Config;

#[derive(Clone)]
pub struct SecretKey {
    secret: [u8; 32],
    /// `derive("endpoint-secrets")`, computed once: the dispatcher opens an endpoint's
    /// sealed settings for every delivery it claims, and the HMAC was most of that cost.
    sealing: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        let mut key = SecretKey {
            secret: bytes,
            sealing: [0; 32],
        };
        key.sealing = key.derive("endpoint-secrets");
        key
    }

    fn parse(text: &str, from: &str) -> Result<SecretKey, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            format!("{from} must hold 64 hex digits (e.g. the output of `openssl rand -hex 32`)")
        })?;
        Ok(SecretKey::from_bytes(key))
    }

    /// The key for one purpose (`"session"`, …): HMAC-SHA256(secret, purpose), so keys for
    /// different uses never coincide and none reveals the secret.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
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

/// What marks a sealed value in the database: `SEALED` names its owner, `LEGACY` (Herald
/// before issue 23) used one associated data for every value.
const SEALED: &str = "sealed2:";
const LEGACY: &str = "sealed1:";
const AAD: &str = "herald endpoint secret";

/// The owner an endpoint's secrets are sealed for: its tenant and id (the id first, so no
/// tenant name can make two owners read alike).
pub fn endpoint_owner(tenant: &str, id: i64) -> String {
    format!("endpoint:{id}:{tenant}")
}

impl SecretKey {
    fn aead(&self) -> LessSafeKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.sealing).expect("a 32-byte key");
        LessSafeKey::new(key)
    }

    /// `sealed2:` + base64(nonce | ciphertext | tag), bound to `owner`.
    pub fn seal(&self, plain: &str, owner: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = plain.as_bytes().to_vec();
        let aad = format!("{AAD}|{owner}");
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .expect("sealing cannot fail for small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{SEALED}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The value inside one sealed for `owner`; a value in clear is returned as it is. A
    /// value sealed for another owner, with another key, or in the legacy form is refused.
    pub fn open(&self, stored: &str, owner: &str) -> Result<String, String> {
        if let Some(sealed) = stored.strip_prefix(SEALED) {
            return self.open_with(sealed, format!("{AAD}|{owner}").as_bytes());
        }
        if stored.starts_with(LEGACY) {
            return Err("a secret sealed by an older Herald was not re-sealed".into());
        }
        Ok(stored.to_owned())
    }

    /// The value inside a legacy `sealed1:` one (re-sealing reads these, nothing else).
    pub fn open_legacy(&self, stored: &str) -> Result<String, String> {
        match stored.strip_prefix(LEGACY) {
            Some(sealed) => self.open_with(sealed, AAD.as_bytes()),
            None => Err("not a legacy sealed value".into()),
        }
    }

    fn open_with(&self, sealed: &str, aad: &[u8]) -> Result<String, String> {
        let bad = || {
            "a sealed secret does not open with this secret key for this owner (another key, \
             or a value copied from another row)"
                .to_owned()
        };
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }
}

/// Whether a stored value is sealed in the current form.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED)
}

static INSTALLED: OnceLock<SecretKey> = OnceLock::new();

/// Gives the store the key it seals endpoint secrets with (the server does, once, before
/// opening the store). Without it — the CLI, tests that open a store directly — secrets
/// are written as given and only values in clear can be read.
pub fn install(key: SecretKey) {
    let _ = INSTALLED.set(key);
}

/// For the store: the installed key, if any.
pub fn installed() -> Option<&'static SecretKey> {
    INSTALLED.get()
}

/// For the store: seals for `owner` with the installed key (as given without one).
pub fn seal_stored(plain: &str, owner: &str) -> String {
    match installed() {
        Some(key) => key.seal(plain, owner),
        None => plain.to_owned(),
    }
}

/// For the store: opens a value stored for `owner`.
pub fn open_stored(stored: &str, owner: &str) -> Result<String, String> {
    match installed() {
        Some(key) => key.open(stored, owner),
        None if is_sealed(stored) || stored.starts_with(LEGACY) => Err(
            "an endpoint secret is sealed but no secret key is loaded (the CLI cannot read it)"
                .into(),
        ),
        None => Ok(stored.to_owned()),
    }
}

/// For the store: an endpoint's stored secret in clear, or `None` when it does not open
/// for this endpoint (sealed for another one, or with another key). That is logged for the
/// admin and not an error: the endpoint still reads, and its deliveries are refused with
/// the reason (`engine::worker`) until its secret is rotated.
pub fn open_endpoint_secret(stored: Option<String>, tenant: &str, id: i64) -> Option<String> {
    let stored = stored?;
    match open_stored(&stored, &endpoint_owner(tenant, id)) {
        Ok(plain) => Some(plain),
        Err(e) => {
            tracing::warn!(tenant, endpoint = id, error = %e, "an endpoint's secret cannot be opened; rotate it");
            None
        }
    }
}

/// For the store, on opening: the value to write instead of `stored` when it is in clear or
/// sealed in the legacy form (a migration from before owners were sealed in); `None` when
/// it is current, or no key is installed. A legacy value that does not open is left alone
/// (its endpoint's deliveries say so).
pub fn reseal_stored(stored: &str, owner: &str) -> Option<String> {
    let key = installed()?;
    if is_sealed(stored) {
        return None;
    }
    let plain = if stored.starts_with(LEGACY) {
        key.open_legacy(stored).ok()?
    } else {
        stored.to_owned()
    };
    Some(key.seal(&plain, owner))
}

/// `secret_key_file`, or `herald.key` in the database's directory.
pub fn key_file(config: &Config) -> PathBuf {
    config.secret_key_file.clone().unwrap_or_else(|| {
        let dir = config
            .db
            .sqlite_path()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty());
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
            db: crate::config::Database::Sqlite(dir.path().join("herald.db")),
            ..Config::default()
        };
        let first = SecretKey::load(&config).unwrap();
        let path = dir.path().join("herald.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SecretKey::load(&config).unwrap().secret, first.secret);
        assert_ne!(first.derive("session"), first.derive("other"));

        let from_env = Config {
            secret_key: Some("ab".repeat(32)),
            ..config
        };
        assert_eq!(SecretKey::load(&from_env).unwrap().secret, [0xab; 32]);
        let bad = Config {
            secret_key: Some("short".into()),
            ..Config::default()
        };
        assert!(SecretKey::load(&bad).unwrap_err().contains("64 hex digits"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_owner() {
        let key = SecretKey::from_bytes([1; 32]);
        let owner = endpoint_owner("acme", 7);
        let sealed = key.seal("whsec_abc", &owner);
        assert!(is_sealed(&sealed) && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            key.seal("whsec_abc", &owner),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed, &owner).unwrap(), "whsec_abc");
        assert_eq!(key.open("whsec_clear", &owner).unwrap(), "whsec_clear");
        assert!(SecretKey::from_bytes([2; 32])
            .open(&sealed, &owner)
            .is_err());
        assert!(
            key.open(&sealed, &endpoint_owner("acme", 8)).is_err(),
            "another endpoint"
        );
        assert!(
            key.open(&sealed, &endpoint_owner("globex", 7)).is_err(),
            "another tenant"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&tampered, &owner).is_err());
    }

    /// A value sealed the old way (one associated data for all) opens only to be re-sealed.
    #[test]
    fn legacy_values_are_refused_but_re_sealed() {
        let key = SecretKey::from_bytes([3; 32]);
        let mut buf = b"whsec_old".to_vec();
        let nonce = [9u8; NONCE_LEN];
        key.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD.as_bytes()),
                &mut buf,
            )
            .unwrap();
        let legacy = format!(
            "{LEGACY}{}",
            URL_SAFE_NO_PAD.encode([&nonce[..], &buf].concat())
        );
        let owner = endpoint_owner("acme", 1);
        assert!(key.open(&legacy, &owner).is_err());
        assert_eq!(key.open_legacy(&legacy).unwrap(), "whsec_old");
    }
}
