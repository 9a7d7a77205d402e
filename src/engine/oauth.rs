//! OAuth2 access tokens for endpoints with `oauth2_client_credentials` auth: fetched with
//! the client credentials grant (RFC 6749, section 4.4), cached, shared by the workers.
//!
//! One slot per endpoint and credential (a fingerprint of the token URL, client id, secret,
//! scope and audience, so an edited setting never reuses a token of the old one). A worker
//! takes the slot's lock before it looks, and holds it while it fetches: workers needing a
//! token for the same endpoint at once wait for the one fetch instead of each making their
//! own. A token is used until shortly before its `expires_in`; a 401 from the endpoint
//! replaces it once (`refresh`), and a worker whose stale token another already replaced
//! takes the new one instead of fetching again.
//!
//! The token request goes through the workers' agent, so the SSRF guard's resolver vets the
//! token URL's address at connect time like any target's, and redirects are not followed.
//! A failed fetch is not cached: the attempt fails with the reason (the circuit breaker
//! counts it like any failure), and the next attempt asks again. Tokens and secrets are
//! never logged.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::domain::auth::OAuth2;

/// How much of a token endpoint's answer is read: a token response is small.
const TOKEN_BODY_CAP: u64 = 16 * 1024;
/// When a token comes without `expires_in` (RFC 6749 lets the server leave it out): used
/// this long, or until the endpoint answers 401.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is replaced this long before it expires (a tenth of its life when that is
/// shorter), so one in flight does not lapse on the way.
const EARLY: Duration = Duration::from_secs(30);

type Key = (i64, [u8; 16]);
type Slot = Arc<Mutex<Option<Cached>>>;

struct Cached {
    token: String,
    /// When to fetch a new one.
    refresh_at: Instant,
}

/// The workers' shared token cache.
#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<Key, Slot>>,
    /// Token requests made (for the tests).
    fetches: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked mid-fetch leaves at worst an old token, which a 401 replaces.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fingerprint(o: &OAuth2) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [
        o.token_url.as_str(),
        &o.client_id,
        &o.client_secret,
        o.scope.as_deref().unwrap_or("\u{0}none"),
        o.audience.as_deref().unwrap_or("\u{0}none"),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

impl Tokens {
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn slot(&self, endpoint: i64, o: &OAuth2) -> Slot {
        let key = (endpoint, fingerprint(o));
        let mut slots = lock(&self.slots);
        if !slots.contains_key(&key) {
            // The endpoint's setting changed (or it is new here): its old tokens go.
            slots.retain(|(id, _), _| *id != endpoint);
        }
        slots.entry(key).or_default().clone()
    }

    /// A token for the endpoint: the cached one while it is fresh, else a new one.
    pub fn token(
        &self,
        agent: &ureq::Agent,
        endpoint: i64,
        o: &OAuth2,
        timeout: Option<Duration>,
    ) -> Result<String, String> {
        let slot = self.slot(endpoint, o);
        let mut cached = lock(&slot);
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        self.fill(&mut cached, agent, o, timeout)
    }

    /// After the endpoint refused `stale` (401): a new token, unless another worker has
    /// already replaced that one, whose token is then the answer.
    pub fn refresh(
        &self,
        agent: &ureq::Agent,
        endpoint: i64,
        o: &OAuth2,
        stale: &str,
        timeout: Option<Duration>,
    ) -> Result<String, String> {
        let slot = self.slot(endpoint, o);
        let mut cached = lock(&slot);
        if let Some(c) = cached
            .as_ref()
            .filter(|c| c.token != stale && Instant::now() < c.refresh_at)
        {
            return Ok(c.token.clone());
        }
        self.fill(&mut cached, agent, o, timeout)
    }

    fn fill(
        &self,
        cached: &mut Option<Cached>,
        agent: &ureq::Agent,
        o: &OAuth2,
        timeout: Option<Duration>,
    ) -> Result<String, String> {
        *cached = None;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = fetch(agent, o, timeout)?;
        let token = fetched.token.clone();
        *cached = Some(fetched);
        Ok(token)
    }
}

/// RFC 6749 section 2.3.1: the client id and secret go in HTTP Basic, each
/// form-urlencoded first.
fn client_basic(o: &OAuth2) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    let pair = format!("{}:{}", enc(&o.client_id), enc(&o.client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// One token request. Every failure is a sentence for the attempt's error, never with the
/// secret or a token in it.
fn fetch(agent: &ureq::Agent, o: &OAuth2, timeout: Option<Duration>) -> Result<Cached, String> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &o.scope {
        form.push(("scope", scope));
    }
    if let Some(audience) = &o.audience {
        form.push(("audience", audience));
    }
    let mut request = agent
        .post(o.token_url.as_str())
        .header("authorization", client_basic(o))
        .header("accept", "application/json");
    if let Some(timeout) = timeout {
        request = request.config().timeout_global(Some(timeout)).build();
    }
    let started = Instant::now();
    let mut response = request
        .send_form(form)
        .map_err(|e| format!("token endpoint: {}", super::http::describe(&e)))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(TOKEN_BODY_CAP)
        .read_to_end(&mut body);
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if !(200..300).contains(&status) {
        return Err(refusal(status, json.as_ref()));
    }
    let json = json
        .ok_or_else(|| format!("token endpoint answered {status} with a body that is not JSON"))?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .ok_or_else(|| format!("token endpoint answered {status} without an access_token"))?;
    if let Some(kind) = json.get("token_type").and_then(|t| t.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "token endpoint gave a token of type `{}`; Herald sends bearer tokens only",
                printable(kind)
            ));
        }
    }
    // A number, or (some servers) a string of digits.
    let expires_in = json.get("expires_in").and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    });
    let life = expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
    let early = EARLY.min(life / 10);
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        expires_in,
        "fetched an OAuth2 token"
    );
    Ok(Cached {
        token: token.to_owned(),
        refresh_at: started + life.saturating_sub(early),
    })
}

/// `token endpoint answered 400: invalid_client` (RFC 6749 section 5.2's `error`, with its
/// description when there is one).
fn refusal(status: u16, json: Option<&serde_json::Value>) -> String {
    let field = |name: &str| {
        json.and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(printable)
    };
    match (field("error"), field("error_description")) {
        (Some(code), Some(desc)) => format!("token endpoint answered {status}: {code} ({desc})"),
        (Some(code), None) => format!("token endpoint answered {status}: {code}"),
        _ => format!("token endpoint answered {status}"),
    }
}

/// A server's words, cut short and kept to visible characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EndpointUrl;

    fn oauth(secret: &str) -> OAuth2 {
        OAuth2 {
            token_url: EndpointUrl::from_stored("http://127.0.0.1:9/token".into()),
            client_id: "a b".into(),
            client_secret: secret.into(),
            scope: None,
            audience: None,
        }
    }

    #[test]
    fn a_changed_credential_gets_its_own_slot() {
        assert_ne!(fingerprint(&oauth("one")), fingerprint(&oauth("two")));
        let tokens = Tokens::default();
        let first = tokens.slot(1, &oauth("one"));
        assert!(Arc::ptr_eq(&first, &tokens.slot(1, &oauth("one"))));
        tokens.slot(1, &oauth("two"));
        assert_eq!(lock(&tokens.slots).len(), 1, "the old one is dropped");
    }

    #[test]
    fn client_credentials_are_form_encoded_inside_basic() {
        let header = client_basic(&oauth("p:w"));
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"a+b:p%3Aw");
    }

    /// A token server on loopback that answers slowly with `tok-<n>` and counts requests.
    fn slow_token_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = std::io::Read::read_exact(&mut reader, &mut body);
                    std::thread::sleep(Duration::from_millis(200));
                    let json = format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#);
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                        json.len()
                    );
                });
            }
        });
        (url, count)
    }

    /// Workers that need a token at once wait for one fetch; a 401 seen by several of them
    /// replaces the token once.
    #[test]
    fn concurrent_workers_share_one_fetch_and_one_refresh() {
        let (url, count) = slow_token_server();
        let o = OAuth2 {
            token_url: EndpointUrl::from_stored(url),
            ..oauth("s")
        };
        let agent = super::super::http::agent(&crate::config::Config {
            allow_private_targets: true,
            ..Default::default()
        });
        let tokens = Arc::new(Tokens::default());
        let run = |f: fn(&Tokens, &ureq::Agent, &OAuth2) -> String| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (tokens, agent, o) = (tokens.clone(), agent.clone(), o.clone());
                    std::thread::spawn(move || f(&tokens, &agent, &o))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        };
        let got = run(|t, a, o| t.token(a, 7, o, None).unwrap());
        assert!(got.iter().all(|t| t == "tok-1"), "{got:?}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        let got = run(|t, a, o| t.refresh(a, 7, o, "tok-1", None).unwrap());
        assert!(got.iter().all(|t| t == "tok-2"), "{got:?}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(tokens.fetches(), 2);
    }

    #[test]
    fn refusals_name_the_error_code() {
        let body = serde_json::json!({"error": "invalid_client"});
        assert_eq!(
            refusal(400, Some(&body)),
            "token endpoint answered 400: invalid_client"
        );
        assert_eq!(refusal(502, None), "token endpoint answered 502");
    }
}
