//! Page sessions: a signed cookie, and the CSRF token derived from it.
//!
//! The cookie holds everything a request needs (who, until when, a random nonce) and an
//! HMAC-SHA256 over it, keyed with a key derived from the deployment's secret key — which
//! lives outside the database (`crate::secrets::secret_key`), so a copied database or backup mints
//! no session. Sessions survive restarts and nothing is stored per session. The expiry is inside the signed
//! value: a client cannot extend it by keeping the cookie longer.
//!
//! Logging out must end a session on the server too, not only in the browser: a copy of the
//! cookie would otherwise stay valid until it expires. Each cookie carries the *epoch* of
//! who it belongs to — a counter in the `settings` table, one for the admin and one per API
//! key of the portal — and a request is refused when the counter has moved on. Logging out
//! advances it, so it ends every session of that principal: the admin's logout signs the
//! admin out everywhere, a portal logout ends the sessions made with that key. Revoking a
//! key ends its sessions through the key check in `guard`.
//!
//! Every form carries `csrf_token` = HMAC(key, "csrf" | nonce). A cross-site page cannot
//! read it (it is in our HTML, not in the cookie), so a forged POST arrives without it.
//! The login forms have one too: the login page first issues an *anonymous* session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secrets::secret_key::SecretKey;
use crate::store::{Store, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// A logged-in session lasts a working day.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
/// An anonymous session only has to last while someone types a token into the login form.
pub const ANONYMOUS_MS: i64 = 3600 * 1000;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Has seen the login page; may only post the login form.
    Anonymous,
    Admin,
    /// Logged into the portal with one key of one tenant. The key id lets every request
    /// check that the key is still valid: revoking a key ends its sessions.
    Tenant {
        tenant: String,
        key_id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub who: Who,
    pub expires_ms: i64,
    pub nonce: String,
    /// The principal's epoch when the session began (0 for anonymous sessions).
    pub epoch: i64,
}

impl Who {
    /// The `settings` key of this principal's session epoch; anonymous sessions have none.
    pub fn epoch_key(&self) -> Option<String> {
        match self {
            Who::Anonymous => None,
            Who::Admin => Some("session_epoch:admin".into()),
            Who::Tenant { key_id, .. } => Some(format!("session_epoch:key:{key_id}")),
        }
    }

    /// Whose one-time messages a session's are, for their bound over all its sessions
    /// (`flash::PER_PRINCIPAL`): a tenant's, whichever of its keys the session logged in
    /// with, so minting keys does not raise a tenant's share.
    pub fn flash_principal(&self) -> String {
        match self {
            Who::Anonymous => "anonymous".into(),
            Who::Admin => "admin".into(),
            Who::Tenant { tenant, .. } => format!("tenant:{tenant}"),
        }
    }

    /// The epoch sessions of this principal must carry now.
    pub async fn current_epoch(&self, store: &Store) -> Result<i64, StoreError> {
        let Some(key) = self.epoch_key() else {
            return Ok(0);
        };
        Ok(store
            .setting_get(&key)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Ends every session of this principal made before now.
    pub async fn end_sessions(&self, store: &Store) -> Result<(), StoreError> {
        if let Some(key) = self.epoch_key() {
            store.setting_increment(&key).await?;
        }
        Ok(())
    }
}

impl Session {
    /// An anonymous session (login forms).
    pub fn new(who: Who, now_ms: i64) -> Session {
        Session::with_epoch(who, 0, now_ms)
    }

    pub fn with_epoch(who: Who, epoch: i64, now_ms: i64) -> Session {
        let life = if who == Who::Anonymous {
            ANONYMOUS_MS
        } else {
            SESSION_MS
        };
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        Session {
            who,
            expires_ms: now_ms + life,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            epoch,
        }
    }

    fn payload(&self) -> String {
        let (exp, nonce, epoch) = (self.expires_ms, &self.nonce, self.epoch);
        match &self.who {
            Who::Anonymous => format!("anon|{exp}|{nonce}|{epoch}"),
            Who::Admin => format!("admin|{exp}|{nonce}|{epoch}"),
            Who::Tenant { tenant, key_id } => {
                format!("tenant|{exp}|{nonce}|{epoch}|{key_id}|{tenant}")
            }
        }
    }

    fn from_payload(payload: &str) -> Option<Session> {
        let mut parts = payload.splitn(6, '|');
        let kind = parts.next()?;
        let expires_ms = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_owned();
        let epoch = parts.next()?.parse().ok()?;
        let who = match kind {
            "anon" => Who::Anonymous,
            "admin" => Who::Admin,
            "tenant" => Who::Tenant {
                key_id: parts.next()?.parse().ok()?,
                tenant: parts.next()?.to_owned(),
            },
            _ => return None,
        };
        Some(Session {
            who,
            expires_ms,
            nonce,
            epoch,
        })
    }
}

/// The HMAC key of sessions and CSRF tokens.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> SessionKey {
        SessionKey(bytes)
    }

    /// The deployment's session key, derived from its secret key. It is bound to the admin
    /// token's hash: changing the admin token ends every page session made with the old one.
    pub fn derive(secret: &SecretKey, admin_token_hash: &str) -> SessionKey {
        let bound = SessionKey(secret.derive("session"))
            .mac(&[b"admin-token|", admin_token_hash.as_bytes()])
            .finalize()
            .into_bytes();
        SessionKey(bound.into())
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// The cookie value: `base64(payload).base64(hmac)`.
    pub fn seal(&self, session: &Session) -> String {
        let payload = session.payload();
        let tag = self
            .mac(&[b"session|", payload.as_bytes()])
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The session in a cookie value, if the signature holds and it has not expired.
    pub fn open(&self, cookie: &str, now_ms: i64) -> Option<Session> {
        let (payload, tag) = cookie.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(&[b"session|", &payload]).verify_slice(&tag).ok()?;
        let session = Session::from_payload(std::str::from_utf8(&payload).ok()?)?;
        (session.expires_ms > now_ms).then_some(session)
    }

    /// The CSRF token of a session, for the hidden field of every form.
    pub fn csrf_token(&self, session: &Session) -> String {
        let tag = self
            .mac(&[b"csrf|", session.nonce.as_bytes()])
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(tag)
    }

    /// Checks a posted token against the session's, in constant time.
    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(tag) => self
                .mac(&[b"csrf|", session.nonce.as_bytes()])
                .verify_slice(&tag)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SessionKey {
        SessionKey::from_bytes([b; 32])
    }

    #[test]
    fn round_trip_and_expiry() {
        let k = key(1);
        let s = Session::new(
            Who::Tenant {
                tenant: "acme".into(),
                key_id: 7,
            },
            1_000,
        );
        let sealed = k.seal(&s);
        assert_eq!(k.open(&sealed, 2_000), Some(s.clone()));
        assert_eq!(k.open(&sealed, s.expires_ms), None, "expired");
        assert_eq!(
            key(2).open(&sealed, 2_000),
            None,
            "another deployment's key"
        );
    }

    #[test]
    fn tampering_is_refused() {
        let k = key(1);
        let admin = Session::new(Who::Admin, 0);
        let sealed = k.seal(&admin);
        let (_, tag) = sealed.split_once('.').unwrap();
        // A longer expiry with the old signature.
        let forged = format!("admin|{}|{}|0", i64::MAX, admin.nonce);
        assert_eq!(
            k.open(&format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged)), 1),
            None
        );
        assert_eq!(k.open("garbage", 1), None);
        assert_eq!(k.open("a.b.c", 1), None);
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let k = key(1);
        let a = Session::new(Who::Admin, 0);
        let b = Session::new(Who::Admin, 0);
        let token = k.csrf_token(&a);
        assert!(k.csrf_ok(&a, &token));
        assert!(!k.csrf_ok(&b, &token));
        assert!(!k.csrf_ok(&a, ""));
        assert!(!k.csrf_ok(&a, "not base64!"));
    }
}
