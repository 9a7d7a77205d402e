//! The signature schemes and secrets: what proves to a receiver that a
//! request came from Herald. Pure functions: the engine passes in the stored
//! body bytes, the event id, the clock and the endpoint's secrets, and gets
//! back the headers to add.
//!
//! Three schemes, because Herald stands in for products whose receivers are
//! already written (see DESIGN.md, "What a delivery looks like"):
//! - `standard`: the Standard Webhooks spec, so receivers can use its
//!   libraries. `webhook-id` stays the same on every retry, which is what lets
//!   receivers de-duplicate our at-least-once delivery.
//! - `timestamped`: seed 000, `<prefix>-Signature: v1=<hex>` over
//!   `"{timestamp}.{body}"`.
//! - `body`: seed 001, a bare hex HMAC of the body.
//!
//! Key rules, each chosen so an unmodified receiver agrees with us:
//! - `standard` keys are the base64 *decoding* of a `whsec_` secret, as the
//!   spec's libraries do; a secret without the prefix (or one whose remainder
//!   is not base64) is used as its raw bytes instead of being rejected.
//! - `timestamped` and `body` key with the secret string exactly as the user
//!   holds it, `whsec_` included, because the seeds' snippets pass the string
//!   straight to `crypto.createHmac`.
//!
//! During a rotation grace period the previous secret signs too: as a second
//! space-separated signature for `standard` (the spec allows several), and in
//! a separate `-Previous` header for the others, whose receivers compare one
//! signature for equality.

use std::borrow::Cow;
use std::fmt;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use hmac::{Hmac, KeyInit, Mac};

type HmacSha256 = Hmac<sha2::Sha256>;

/// Header names fixed by the Standard Webhooks spec.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Marks a Standard Webhooks secret whose remainder is the base64 key.
pub const SECRET_PREFIX: &str = "whsec_";

const MAX_SECRET_LEN: usize = 256;

/// A signature scheme, named in config and per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Standard,
    Timestamped,
    Body,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [Scheme::Standard, Scheme::Timestamped, Scheme::Body];

    /// Accepts the lowercase name in any ASCII case, as people type config.
    pub fn parse(s: &str) -> Option<Scheme> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Standard => "standard",
            Scheme::Timestamped => "timestamped",
            Scheme::Body => "body",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a comma-separated list like "standard, body"; an empty list, an
/// unknown name or a repeated one is an error message fit for the user.
pub fn parse_schemes(s: &str) -> Result<Vec<Scheme>, String> {
    if s.trim().is_empty() {
        return Err("no signature scheme given; expected a comma-separated list of standard, timestamped, body".to_owned());
    }
    let mut schemes = Vec::new();
    for name in s.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!(
                "empty signature scheme name in {s:?}; remove the extra comma"
            ));
        }
        let scheme = Scheme::parse(name).ok_or_else(|| {
            format!("unknown signature scheme {name:?}; expected standard, timestamped or body")
        })?;
        if schemes.contains(&scheme) {
            return Err(format!(
                "signature scheme {name:?} is listed twice in {s:?}"
            ));
        }
        schemes.push(scheme);
    }
    Ok(schemes)
}

/// Header names a deployment uses for the non-standard schemes.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    /// e.g. "X-Herald" -> X-Herald-Timestamp / X-Herald-Signature
    pub prefix: String,
    /// e.g. "X-Webhook-Signature"
    pub body_header: String,
}

impl HeaderNames {
    pub fn timestamp_header(&self) -> String {
        format!("{}-Timestamp", self.prefix)
    }

    pub fn signature_header(&self) -> String {
        format!("{}-Signature", self.prefix)
    }
}

impl Default for HeaderNames {
    /// The configuration defaults of DESIGN.md.
    fn default() -> Self {
        HeaderNames {
            prefix: "X-Herald".to_owned(),
            body_header: "X-Webhook-Signature".to_owned(),
        }
    }
}

/// The header that carries the previous secret's signature during rotation.
pub fn previous_header(header: &str) -> String {
    format!("{header}-Previous")
}

/// A fresh secret: "whsec_" + padded standard base64 of 32 random bytes.
///
/// 32 bytes is SHA-256's own strength; the `whsec_` form is what Standard
/// Webhooks libraries expect, and is still just a string for the seeds'
/// snippets. `rand::random` draws from the thread-local CSPRNG.
pub fn generate_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// Checks a user-supplied `secret_key`: 1 to 256 printable ASCII characters,
/// no spaces.
///
/// The restriction keeps secrets safe to paste into env files and headers;
/// messages never echo the secret, since they may be logged.
pub fn validate_secret(s: &str) -> Result<(), String> {
    if s.is_empty() || s == SECRET_PREFIX {
        return Err("must not be empty".to_owned());
    }
    if let Some(position) = s.chars().position(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "may contain only printable ASCII characters without spaces; character {} is not one",
            position + 1
        ));
    }
    if s.len() > MAX_SECRET_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_SECRET_LEN} are allowed",
            s.len()
        ));
    }
    Ok(())
}

/// Standard Webhooks asks for keys of 24 to 64 bytes.
pub const MIN_KEY_BYTES: usize = 24;

/// Why `secret` makes a weak key, if it does: its `standard` key (the decoded `whsec_`
/// remainder, else the string's bytes) is shorter than `MIN_KEY_BYTES`.
pub fn short_key_warning(secret: &str) -> Option<String> {
    let bytes = standard_key(secret).len();
    (bytes < MIN_KEY_BYTES).then(|| {
        format!(
            "gives a {bytes}-byte signing key; Standard Webhooks asks for {MIN_KEY_BYTES} to 64 \
             bytes (use whsec_ + the base64 of 24 or more random bytes, or leave secret_key \
             out to have one generated)"
        )
    })
}

/// Everything needed to sign one request.
pub struct SignInput<'a> {
    pub event_id: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    pub body: &'a [u8],
    pub secret: &'a str,
    pub previous_secret: Option<&'a str>,
}

impl SignInput<'_> {
    fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret).chain(self.previous_secret)
    }
}

/// The (header name, value) pairs to add to the request, scheme by scheme.
///
/// A scheme listed twice is signed once, so `webhook-*` never repeats.
pub fn sign(schemes: &[Scheme], names: &HeaderNames, input: &SignInput) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (i, scheme) in schemes.iter().enumerate() {
        if schemes[..i].contains(scheme) {
            continue;
        }
        match scheme {
            Scheme::Standard => headers.extend(standard_headers(input)),
            Scheme::Timestamped => headers.extend(timestamped_headers(names, input)),
            Scheme::Body => headers.extend(body_headers(names, input)),
        }
    }
    headers
}

fn standard_headers(input: &SignInput) -> [(String, String); 3] {
    let signatures: Vec<String> = input
        .secrets()
        .map(|secret| standard_signature(secret, input.event_id, input.timestamp, input.body))
        .collect();
    [
        (WEBHOOK_ID.to_owned(), input.event_id.to_owned()),
        (WEBHOOK_TIMESTAMP.to_owned(), input.timestamp.to_string()),
        (WEBHOOK_SIGNATURE.to_owned(), signatures.join(" ")),
    ]
}

fn timestamped_headers(names: &HeaderNames, input: &SignInput) -> Vec<(String, String)> {
    let signature_header = names.signature_header();
    let mut headers = vec![
        (names.timestamp_header(), input.timestamp.to_string()),
        (
            signature_header.clone(),
            timestamped_signature(input.secret, input.timestamp, input.body),
        ),
    ];
    if let Some(previous) = input.previous_secret {
        headers.push((
            previous_header(&signature_header),
            timestamped_signature(previous, input.timestamp, input.body),
        ));
    }
    headers
}

fn body_headers(names: &HeaderNames, input: &SignInput) -> Vec<(String, String)> {
    let mut headers = vec![(
        names.body_header.clone(),
        body_signature(input.secret, input.body),
    )];
    if let Some(previous) = input.previous_secret {
        headers.push((
            previous_header(&names.body_header),
            body_signature(previous, input.body),
        ));
    }
    headers
}

/// One `v1,<base64>` entry of a `webhook-signature` header.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = standard_mac(secret, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// The `v1=<hex>` value of the timestamped scheme's signature header.
pub fn timestamped_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = timestamped_mac(secret, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// The bare lowercase hex value of the body scheme's header.
pub fn body_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(body_mac(secret, body).finalize().into_bytes())
}

/// True if any space-separated `v1,<sig>` matches. The timestamp is not
/// checked against a clock here; tolerance is the caller's policy.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
) -> bool {
    signature_header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|tag| {
            let mac = standard_mac(secret, msg_id, timestamp, body);
            mac.verify_slice(&tag).is_ok()
        })
}

pub fn verify_timestamped(
    secret: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
) -> bool {
    signature_header
        .trim()
        .strip_prefix("v1=")
        .and_then(|encoded| hex::decode(encoded).ok())
        .is_some_and(|tag| {
            timestamped_mac(secret, timestamp, body)
                .verify_slice(&tag)
                .is_ok()
        })
}

pub fn verify_body(secret: &str, body: &[u8], signature_header: &str) -> bool {
    hex::decode(signature_header.trim())
        .is_ok_and(|tag| body_mac(secret, body).verify_slice(&tag).is_ok())
}

// The MACs stay unfinalised so verification can use `verify_slice`, which
// compares in constant time.

fn standard_mac(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let timestamp = timestamp.to_string();
    let parts = [msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    hmac_over(&standard_key(secret), &parts)
}

fn timestamped_mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let timestamp = timestamp.to_string();
    hmac_over(secret.as_bytes(), &[timestamp.as_bytes(), b".", body])
}

fn body_mac(secret: &str, body: &[u8]) -> HmacSha256 {
    hmac_over(secret.as_bytes(), &[body])
}

/// The Standard Webhooks key; see the module comment for the fallbacks.
fn standard_key(secret: &str) -> Cow<'_, [u8]> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .map_or(Cow::Borrowed(secret.as_bytes()), Cow::Owned)
}

fn hmac_over(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were computed outside Rust, with
    // `printf '%s' "$msg" | openssl dgst -sha256 -hmac "$secret"` (and
    // `-macopt hexkey:` for the base64-decoded Standard Webhooks key).
    const EVENT_ID: &str = "evt_01J9Z6Q4N3XK8R2V5T7W0YB1CD";
    const TIMESTAMP: i64 = 1_735_689_600;
    const BODY: &[u8] =
        br#"{"event":"job.completed","task_id":"task_xxx","data":{"credits_charged":6}}"#;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const PREVIOUS: &str = "your-secret-key";

    const STANDARD_SIG: &str = "v1,FWqBgsr5O811Klyl6qe9bh2CzK1V6i9mVL9bTWCeFF4=";
    const STANDARD_SIG_PREVIOUS: &str = "v1,7N7zhrYrfCBaHsi5di9vuXWHC2Gz1aqQprN221j5I04=";
    const TIMESTAMPED_SIG: &str =
        "v1=8007f29400258568ae9a532582a794192ba809a5ca6ed76f3dd980df738ee3ed";
    const TIMESTAMPED_SIG_PREVIOUS: &str =
        "v1=d31b880cafaadccb5f99d7cfb937fdfd5dfd3bd12c837429223e2ec690593fee";
    const BODY_SIG: &str = "12a698e691b986be3561fd0ad6e25c5bbc7e4a800fd7f6be6b55ee787284bb47";
    const BODY_SIG_PREVIOUS: &str =
        "3abb1ccad93c8430b25ad269247b7650b9d2cb68f1bd70d3f505586af0107277";

    fn input(previous_secret: Option<&'static str>) -> SignInput<'static> {
        SignInput {
            event_id: EVENT_ID,
            timestamp: TIMESTAMP,
            body: BODY,
            secret: SECRET,
            previous_secret,
        }
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    #[test]
    fn standard_webhooks_spec_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(standard_signature(secret, id, ts, body), expected);
        assert!(verify_standard(secret, id, ts, body, expected));
    }

    #[test]
    fn standard_headers_for_a_fixed_input() {
        let headers = sign(&[Scheme::Standard], &HeaderNames::default(), &input(None));
        let expected = [
            ("webhook-id", EVENT_ID),
            ("webhook-timestamp", "1735689600"),
            ("webhook-signature", STANDARD_SIG),
        ];
        assert_eq!(headers, pairs(&expected));
    }

    #[test]
    fn standard_rotation_puts_both_signatures_in_one_header() {
        let headers = sign(
            &[Scheme::Standard],
            &HeaderNames::default(),
            &input(Some(PREVIOUS)),
        );
        let both = format!("{STANDARD_SIG} {STANDARD_SIG_PREVIOUS}");
        assert_eq!(headers[2], ("webhook-signature".to_owned(), both.clone()));
        assert!(verify_standard(SECRET, EVENT_ID, TIMESTAMP, BODY, &both));
        assert!(verify_standard(PREVIOUS, EVENT_ID, TIMESTAMP, BODY, &both));
    }

    #[test]
    fn timestamped_headers_use_the_prefix() {
        let names = HeaderNames {
            prefix: "X-Nano".to_owned(),
            ..HeaderNames::default()
        };
        let headers = sign(&[Scheme::Timestamped], &names, &input(None));
        let expected = [
            ("X-Nano-Timestamp", "1735689600"),
            ("X-Nano-Signature", TIMESTAMPED_SIG),
        ];
        assert_eq!(headers, pairs(&expected));
    }

    #[test]
    fn timestamped_rotation_adds_a_previous_header() {
        let headers = sign(
            &[Scheme::Timestamped],
            &HeaderNames::default(),
            &input(Some(PREVIOUS)),
        );
        let expected = [
            ("X-Herald-Timestamp", "1735689600"),
            ("X-Herald-Signature", TIMESTAMPED_SIG),
            ("X-Herald-Signature-Previous", TIMESTAMPED_SIG_PREVIOUS),
        ];
        assert_eq!(headers, pairs(&expected));
    }

    #[test]
    fn body_headers_and_rotation() {
        let names = HeaderNames::default();
        let headers = sign(&[Scheme::Body], &names, &input(None));
        assert_eq!(headers, pairs(&[("X-Webhook-Signature", BODY_SIG)]));
        let headers = sign(&[Scheme::Body], &names, &input(Some(PREVIOUS)));
        let expected = [
            ("X-Webhook-Signature", BODY_SIG),
            ("X-Webhook-Signature-Previous", BODY_SIG_PREVIOUS),
        ];
        assert_eq!(headers, pairs(&expected));
    }

    #[test]
    fn several_schemes_in_order_and_standard_once() {
        let schemes = [
            Scheme::Body,
            Scheme::Standard,
            Scheme::Timestamped,
            Scheme::Standard,
        ];
        let headers = sign(&schemes, &HeaderNames::default(), &input(None));
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        let expected = [
            "X-Webhook-Signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Herald-Timestamp",
            "X-Herald-Signature",
        ];
        assert_eq!(names, expected);
        assert!(sign(&[], &HeaderNames::default(), &input(None)).is_empty());
    }

    #[test]
    fn standard_key_rules() {
        // whsec_ + valid base64: the decoded bytes.
        assert_eq!(standard_key("whsec_AAEC").as_ref(), &[0, 1, 2]);
        // No prefix, or a remainder that is not base64: the raw string.
        assert_eq!(standard_key("your-secret-key").as_ref(), b"your-secret-key");
        assert_eq!(standard_key("whsec_!!!!").as_ref(), b"whsec_!!!!");
        let signature = standard_signature("whsec_!!!!", EVENT_ID, TIMESTAMP, BODY);
        assert_eq!(signature, "v1,vkC/ZFNlzOTnlr8QC9ZDMf8Iy/o6RMtBSejE6s7g1yA=");
    }

    #[test]
    fn verification_accepts_what_sign_produces() {
        let secret = generate_secret();
        let ts = 1_700_000_000;
        assert!(verify_standard(
            &secret,
            "evt_x",
            ts,
            b"{}",
            &standard_signature(&secret, "evt_x", ts, b"{}")
        ));
        assert!(verify_timestamped(
            &secret,
            ts,
            b"{}",
            &timestamped_signature(&secret, ts, b"{}")
        ));
        assert!(verify_body(&secret, b"{}", &body_signature(&secret, b"{}")));
    }

    #[test]
    fn standard_verification_rejects_tampering_and_junk() {
        let ok = |header: &str| verify_standard(SECRET, EVENT_ID, TIMESTAMP, BODY, header);
        assert!(ok(STANDARD_SIG));
        assert!(ok(&format!("v1,bm9wZQ== v2,xyz {STANDARD_SIG}")));
        assert!(!verify_standard(
            SECRET,
            "evt_other",
            TIMESTAMP,
            BODY,
            STANDARD_SIG
        ));
        assert!(!verify_standard(
            SECRET,
            EVENT_ID,
            TIMESTAMP + 1,
            BODY,
            STANDARD_SIG
        ));
        assert!(!verify_standard(
            SECRET,
            EVENT_ID,
            TIMESTAMP,
            b"{}",
            STANDARD_SIG
        ));
        assert!(!verify_standard(
            PREVIOUS,
            EVENT_ID,
            TIMESTAMP,
            BODY,
            STANDARD_SIG
        ));
        let truncated = &STANDARD_SIG[..STANDARD_SIG.len() - 4];
        for junk in [
            "",
            " ",
            "v1,",
            "v1,!!!",
            truncated,
            &STANDARD_SIG.replace("v1,", "v2,"),
        ] {
            assert!(!ok(junk), "{junk:?}");
        }
    }

    #[test]
    fn timestamped_and_body_verification_reject_tampering_and_junk() {
        assert!(verify_timestamped(SECRET, TIMESTAMP, BODY, TIMESTAMPED_SIG));
        assert!(verify_timestamped(
            SECRET,
            TIMESTAMP,
            BODY,
            &TIMESTAMPED_SIG.to_uppercase().replace("V1", "v1")
        ));
        assert!(!verify_timestamped(
            SECRET,
            TIMESTAMP + 1,
            BODY,
            TIMESTAMPED_SIG
        ));
        assert!(!verify_timestamped(
            PREVIOUS,
            TIMESTAMP,
            BODY,
            TIMESTAMPED_SIG
        ));
        assert!(!verify_timestamped(
            SECRET,
            TIMESTAMP,
            BODY,
            &TIMESTAMPED_SIG[3..]
        ));
        assert!(!verify_timestamped(SECRET, TIMESTAMP, BODY, "v1=zz"));
        assert!(verify_body(SECRET, BODY, BODY_SIG));
        assert!(!verify_body(SECRET, b"{}", BODY_SIG));
        assert!(!verify_body(PREVIOUS, BODY, BODY_SIG));
        assert!(!verify_body(SECRET, BODY, &BODY_SIG[..62]));
        assert!(!verify_body(SECRET, BODY, ""));
        assert!(!verify_body(SECRET, BODY, "not hex"));
    }

    #[test]
    fn parse_schemes_accepts_lists() {
        assert_eq!(parse_schemes("standard"), Ok(vec![Scheme::Standard]));
        assert_eq!(
            parse_schemes(" body , Standard,timestamped "),
            Ok(vec![Scheme::Body, Scheme::Standard, Scheme::Timestamped])
        );
    }

    #[test]
    fn parse_schemes_explains_errors() {
        let cases = [
            ("", "no signature scheme"),
            ("  ", "no signature scheme"),
            ("standard,", "extra comma"),
            (",body", "extra comma"),
            ("standard, hmac", "unknown signature scheme \"hmac\""),
            ("body,standard,Body", "listed twice"),
        ];
        for (input, fragment) in cases {
            let err = parse_schemes(input).expect_err(input);
            assert!(err.contains(fragment), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn scheme_names_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
            assert_eq!(scheme.to_string(), scheme.as_str());
            let json = serde_json::to_string(&scheme).expect("serialize");
            assert_eq!(json, format!("\"{}\"", scheme.as_str()));
            assert_eq!(
                serde_json::from_str::<Scheme>(&json).expect("deserialize"),
                scheme
            );
        }
        assert_eq!(Scheme::parse("TIMESTAMPED"), Some(Scheme::Timestamped));
        assert_eq!(Scheme::parse("svix"), None);
    }

    #[test]
    fn generated_secrets_are_whsec_base64_of_32_bytes() {
        let secret = generate_secret();
        let encoded = secret.strip_prefix("whsec_").expect("prefix");
        assert_eq!(encoded.len(), 44);
        assert_eq!(BASE64.decode(encoded).expect("base64").len(), 32);
        assert_eq!(validate_secret(&secret), Ok(()));
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn short_keys_are_named() {
        for (secret, warned) in [
            ("your-secret-key", true),
            ("abc", true),
            // whsec_ + base64: the decoded length counts (18 bytes here).
            ("whsec_AAAAAAAAAAAAAAAAAAAAAAAA", true),
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false),
            ("a-plain-secret-of-24-chr", false),
        ] {
            assert_eq!(short_key_warning(secret).is_some(), warned, "{secret}");
        }
        assert!(short_key_warning("abc").unwrap().contains("3-byte"));
        assert!(short_key_warning(&generate_secret()).is_none());
    }

    #[test]
    fn validate_secret_cases() {
        let longest = "a".repeat(256);
        for ok in [
            "your-secret-key",
            "x",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "!~{}",
            &longest,
        ] {
            assert_eq!(validate_secret(ok), Ok(()), "{ok:?}");
        }
        let too_long = "a".repeat(257);
        for bad in [
            "",
            "has space",
            "tab\t",
            "new\nline",
            "caf\u{e9}",
            "del\u{7f}",
            &too_long,
        ] {
            assert!(validate_secret(bad).is_err(), "{bad:?}");
        }
        let message = validate_secret("abc def").expect_err("space");
        assert!(
            message.contains("character 4") && !message.contains("abc"),
            "{message}"
        );
    }

    /// The seeds' verification snippets, verbatim (TypeScript annotations
    /// removed from seed 001), plus the Standard Webhooks algorithm written
    /// with node's crypto. Reads {body, secret, headers} cases on stdin and
    /// prints one array of booleans per case.
    const NODE_VERIFIERS: &str = r#"
const crypto = require('crypto');
function verifySignature(payload, signature, secret, timestamp) {
const message = `${timestamp}.${JSON.stringify(payload)}`;
const expectedSig = crypto
.createHmac('sha256', secret)
.update(message)
.digest('hex');
return `v1=${expectedSig}` === signature;
}
function verifyWebhook(payload, signature, secret) {
const expected = crypto
.createHmac('sha256', secret)
.update(payload)
.digest('hex');
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expected)
);
}
function verifyStandard(body, h, secret) {
const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
const sig = crypto.createHmac('sha256', key)
.update(`${h['webhook-id']}.${h['webhook-timestamp']}.${body}`).digest('base64');
return h['webhook-signature'].split(' ').includes(`v1,${sig}`);
}
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', d => input += d).on('end', () => {
const results = JSON.parse(input).map(({body, secret, previous, headers: h}) => {
const reqBody = JSON.parse(body);
return [
verifyStandard(body, h, secret) && verifyStandard(body, h, previous),
verifySignature(reqBody, h['X-Nano-Signature'], secret, h['X-Nano-Timestamp']),
verifySignature(reqBody, h['X-Nano-Signature-Previous'], previous, h['X-Nano-Timestamp']),
verifyWebhook(JSON.stringify(reqBody), h['X-Webhook-Signature'], secret),
verifyWebhook(JSON.stringify(reqBody), h['X-Webhook-Signature-Previous'], previous),
];
});
process.stdout.write(JSON.stringify(results));
});
"#;

    fn run_node(script: &str, stdin_json: &serde_json::Value) -> serde_json::Value {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("node")
            .args(["-e", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node` ({e}): these tests run the seeds' JavaScript verifiers, install Node.js")
            });
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(stdin_json.to_string().as_bytes())
            .expect("write to node");
        drop(stdin);
        let output = child.wait_with_output().expect("node output");
        assert!(output.status.success(), "node failed: {:?}", output.status);
        serde_json::from_slice(&output.stdout).expect("node printed JSON")
    }

    #[test]
    fn seeds_javascript_verifiers_accept_our_signatures() {
        let payloads = [
            r#"{"event":"job.completed","task_id":"task_xxx","data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}"#,
            r#"{"event":"book.completed","data":{"title":"Mi Libro \u00e9 😀 \u2028","2":1,"1":[1.0,1e21,-0,12345678901234567890]},"10":"x\n\u0001"}"#,
        ];
        let names = HeaderNames {
            prefix: "X-Nano".to_owned(),
            ..HeaderNames::default()
        };
        let secrets = [
            (generate_secret(), "your-secret-key".to_owned()),
            ("plain-secret".to_owned(), generate_secret()),
        ];
        let mut cases = Vec::new();
        for payload in payloads {
            let body =
                crate::wire::canonical_json::canonicalize(payload.as_bytes()).expect("payload");
            for (secret, previous) in &secrets {
                let input = SignInput {
                    event_id: "evt_01J9Z6Q4N3XK8R2V5T7W0YB1CD",
                    timestamp: 1_735_689_600,
                    body: body.as_bytes(),
                    secret,
                    previous_secret: Some(previous),
                };
                let headers: serde_json::Map<String, serde_json::Value> =
                    sign(&Scheme::ALL, &names, &input)
                        .into_iter()
                        .map(|(name, value)| (name, value.into()))
                        .collect();
                cases.push(serde_json::json!({"body": body, "secret": secret, "previous": previous, "headers": headers}));
            }
        }
        let results = run_node(NODE_VERIFIERS, &serde_json::Value::Array(cases.clone()));
        let all_true = serde_json::json!([true, true, true, true, true]);
        for (case, result) in cases.iter().zip(results.as_array().expect("array")) {
            assert_eq!(result, &all_true, "case: {case}");
        }
    }
}
