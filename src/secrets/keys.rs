//! API keys and the admin token: random, shown once, stored only as SHA-256 hashes.
//!
//! The keys are 256-bit random values, so a fast hash is enough: there is nothing to
//! brute-force that a slow password hash would protect.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A tenant API key: `hk_` + 43 URL-safe characters.
pub fn generate_api_key() -> String {
    random_token("hk_")
}

/// The admin token generated on first start.
pub fn generate_admin_token() -> String {
    random_token("hadm_")
}

/// What is stored and looked up: lower-case hex SHA-256 of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two hex digests without stopping at the first difference, so the time an
/// answer takes says nothing about how much of a guessed token's hash was right.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The part of a key shown in lists so a person can tell keys apart.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_api_key();
        assert!(a.starts_with("hk_") && a.len() == 46, "{a}");
        assert_ne!(a, generate_api_key());
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
        assert!(same_hash(&hash_token(&a), &hash_token(&a)));
        assert!(!same_hash(&hash_token(&a), &hash_token("other")));
        assert!(!same_hash("ab", "abc"));
    }
}
