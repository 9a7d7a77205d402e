//! Outbound HTTP: one ureq agent shared by all workers (keep-alive pool), with the SSRF
//! guard in its resolver so the check applies to the address actually connected to. The
//! guard applies `domain::address`'s rules, the same ones an endpoint URL passed at create.
//!
//! Redirects are not followed (a 3xx is a failed attempt: following it would let a
//! receiver bounce us to an internal address), proxies from the environment are not used
//! (the guard must see the address of the endpoint itself), any status is a response rather
//! than an error, and the response body is read through a cap.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::config::Config as UreqConfig;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::Agent;

use crate::config::Config;
use crate::domain::address;

/// How much of a response body is kept in the attempt history.
/// Enough to show a receiver's error message on the attempt page; a cap so a receiver
/// streaming megabytes cannot fill the database or stall a worker reading it.
pub const RESPONSE_BODY_CAP: usize = 4096;

/// What a tenant reads (in `last_error` and the attempt) both for a name that does not
/// resolve and for one the SSRF guard refuses: two different messages would tell a tenant
/// which internal names exist. The admin log (`tracing`) keeps which it was.
pub const HOST_REFUSED: &str =
    "host not found, or it resolves only to addresses Herald does not deliver to";

/// Resolves names, then drops every address the SSRF guard forbids. A name that only
/// resolves to forbidden addresses fails the attempt instead of reaching inside; so does
/// a name that does not resolve, with the same error (`HOST_REFUSED`).
#[derive(Debug)]
struct GuardedResolver {
    inner: DefaultResolver,
    allow_private: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("?");
        let resolved = match self.inner.resolve(uri, config, timeout) {
            Ok(resolved) => resolved,
            Err(ureq::Error::Timeout(t)) => return Err(ureq::Error::Timeout(t)),
            Err(e) => {
                tracing::info!(%host, error = %e, "an endpoint's host does not resolve");
                return Err(ureq::Error::HostNotFound);
            }
        };
        if self.allow_private {
            return Ok(resolved);
        }
        // Filter rather than refuse on the first bad address: a dual-stack name with one
        // private and one public address still delivers, to the public one only.
        let mut allowed = self.empty();
        for addr in resolved.iter() {
            if !address::is_forbidden(addr.ip()) {
                allowed.push(*addr);
            }
        }
        if allowed.is_empty() {
            tracing::warn!(
                %host,
                "an endpoint's host resolves only to loopback, private or reserved addresses: \
                 blocked by the SSRF guard (allow_private_targets / \
                 HERALD_ALLOW_PRIVATE_TARGETS=true allows them)"
            );
            return Err(ureq::Error::HostNotFound);
        }
        Ok(allowed)
    }
}

/// Builds the one agent the workers share. Its idle pool is sized from the worker count
/// and the per-endpoint concurrency, so keep-alive connections are reused under load
/// instead of being closed and reopened (a TLS handshake per delivery).
pub fn agent(config: &Config) -> Agent {
    let ureq_config: UreqConfig = Agent::config_builder()
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.request_timeout))
        .max_redirects(0)
        // ureq would otherwise take a proxy from HTTP(S)_PROXY / ALL_PROXY: the guard would
        // then vet the proxy's address while the proxy reaches the endpoint, and a loopback
        // proxy would make every delivery fail as an SSRF refusal.
        .proxy(None)
        .http_status_as_error(false)
        .user_agent(concat!(
            "Herald/",
            env!("CARGO_PKG_VERSION"),
            " (+webhooks)"
        ))
        .max_idle_connections(config.workers.max(16) * 2)
        .max_idle_connections_per_host(config.max_endpoint_concurrency.max(1) * 2)
        .build();
    Agent::with_parts(
        ureq_config,
        DefaultConnector::default(),
        GuardedResolver {
            inner: DefaultResolver::default(),
            allow_private: config.allow_private_targets,
        },
    )
}

/// What came back from one request.
#[derive(Debug)]
pub struct Response {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: Option<String>,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Response {
    /// An attempt that failed before a request was made (its OAuth2 token could not be had).
    pub fn failed(error: String, duration: Duration) -> Response {
        Response {
            status: None,
            error: Some(error),
            headers: serde_json::Map::new(),
            body: None,
            retry_after: None,
            duration,
        }
    }
}

/// Sends one POST and never panics or errors: every failure becomes `Response::error`.
/// `timeout` replaces the agent's total timeout for this request (an endpoint's own).
pub fn post(
    agent: &Agent,
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Option<Duration>,
) -> Response {
    send(agent, "POST", url, headers, body, timeout)
}

/// `post` with the method a transformation chose (`PUT` and `PATCH`; anything else POSTs).
pub fn send(
    agent: &Agent,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Option<Duration>,
) -> Response {
    let started = Instant::now();
    let request = match method {
        "PUT" => agent.put(url),
        "PATCH" => agent.patch(url),
        _ => agent.post(url),
    };
    let mut request = request.header("content-type", "application/json");
    if let Some(timeout) = timeout {
        request = request.config().timeout_global(Some(timeout)).build();
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    // Errors are folded into the Response so the worker has one type to record: an
    // attempt that never got a status is still an attempt, with its reason kept.
    match request.send(body) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            // Header values that are not visible ASCII are dropped, not lossily converted:
            // the history shows what the receiver sent or nothing.
            let mut kept = serde_json::Map::new();
            for (name, value) in response.headers() {
                if let Ok(v) = value.to_str() {
                    kept.insert(name.as_str().to_owned(), v.into());
                }
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(super::retry::parse_retry_after);
            // A read error after the status still counts as a response (the status is what
            // decides success); the error is kept beside it for the attempt page.
            let mut buf = Vec::new();
            let read = response
                .body_mut()
                .as_reader()
                .take(RESPONSE_BODY_CAP as u64)
                .read_to_end(&mut buf);
            Response {
                status: Some(status),
                error: read
                    .err()
                    .map(|e| format!("reading the response failed: {e}")),
                headers: kept,
                body: Some(String::from_utf8_lossy(&buf).into_owned()),
                retry_after,
                duration: started.elapsed(),
            }
        }
        Err(e) => Response {
            status: None,
            error: Some(describe(&e)),
            headers: serde_json::Map::new(),
            body: None,
            retry_after: None,
            duration: started.elapsed(),
        },
    }
}

/// Plain wording for the transport failures an endpoint's owner meets most, as the
/// attempt history shows them; anything else keeps ureq's own message.
pub(super) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => HOST_REFUSED.into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant cannot tell a refused name from one that does not exist.
    #[test]
    fn refused_and_unknown_hosts_read_alike() {
        let config = Config {
            allow_private_targets: false,
            ..Config::default()
        };
        let agent = agent(&config);
        let refused = post(&agent, "http://127.0.0.1:9/x", &[], "{}", None);
        assert_eq!(refused.error.as_deref(), Some(HOST_REFUSED));
        assert_eq!(describe(&ureq::Error::HostNotFound), HOST_REFUSED);
    }
}
