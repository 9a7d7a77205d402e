//! Outbound HTTP: ureq agents (one shared by all workers and its keep-alive pool, and the
//! endpoints' own ones in `agents.rs`), with the SSRF guard in their resolver so the check
//! applies to the address actually connected to. The guard applies `domain::address`'s
//! rules, the same ones an endpoint URL passed at create.
//!
//! Redirects are not followed (a 3xx is a failed attempt: following it would let a
//! receiver bounce us to an internal address), proxies from the environment are not used
//! (only the configured `proxy`, see below), any status is a response rather than an
//! error, and the response body is read through a cap.
//!
//! Through a proxy (README: Egress proxy) the resolver only ever sees the proxy's name (the
//! proxy resolves the target), so the proxy's own address is exempt from the guard (it is
//! the operator's, often on loopback) and `post` checks the target itself first: an IP
//! literal or a name resolving only to forbidden addresses is refused with `HOST_REFUSED`.

use std::io::Read;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::config::Config as UreqConfig;
use ureq::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use ureq::http::{HeaderValue, Uri};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, NextTimeout};
use ureq::Agent;

use super::tls::{TlsConnector, TlsSetup};
use super::transport::{self, Guard, GuardedTcp};

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

/// The agent's resolver. ureq asks it for the URL's host on every request, before it
/// looks in its pool; a direct agent (no proxy) answers with no addresses, and
/// `transport::GuardedTcp` resolves through the guard when it opens a connection (a
/// reused one goes to the address vetted when it was opened). Through a proxy ureq asks
/// only for the proxy's host, once per connection, and that is resolved here at once.
/// Either way a name that resolves only to forbidden addresses, or not at all, fails the
/// attempt with the same error (`HOST_REFUSED`).
#[derive(Debug)]
struct GuardedResolver {
    inner: DefaultResolver,
    guard: Arc<Guard>,
    /// No proxy: leave resolution to the connector.
    defer: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if self.defer {
            return Ok(self.empty());
        }
        self.guard
            .resolve(uri, || self.inner.resolve(uri, config, timeout))
    }
}

/// Builds the agent the workers share: the web's roots and `extra_ca_file`, no client
/// certificate, no proxy. Its idle pool is sized from the worker count and the per-endpoint
/// concurrency, so keep-alive connections are reused under load instead of being closed and
/// reopened (a TLS handshake per delivery).
pub fn agent(config: &Config) -> Agent {
    let setup = TlsSetup {
        extra_roots: &config.extra_roots,
        only_roots: None,
        client_cert: None,
    };
    // Without a client key nothing here can fail.
    let tls = super::tls::client_config(setup).expect("a TLS client configuration");
    build(config, tls, None, true, false)
}

/// An agent with this TLS configuration, through `proxy` if any; `shared` sizes its idle
/// pool for every endpoint, otherwise for one. `proxy_exempt`: the proxy's address passes
/// the guard whatever it is (the deployment's, chosen by the operator; an endpoint's own is
/// vetted like any address).
pub fn build(
    config: &Config,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<&crate::domain::ProxyUrl>,
    shared: bool,
    proxy_exempt: bool,
) -> Agent {
    let per_host = config.max_endpoint_concurrency.max(1) * 2;
    let ureq_proxy = proxy.and_then(|p| match p.to_ureq() {
        Ok(p) => Some(p),
        Err(e) => {
            // Validated when set; a proxy that no longer parses sends nothing unproxied.
            tracing::warn!(error = %e, "a proxy URL does not parse");
            None
        }
    });
    // Without a proxy ureq resolves only the target, which the connector does instead.
    let direct = ureq_proxy.is_none();
    let ureq_config: UreqConfig = Agent::config_builder()
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.request_timeout))
        .max_redirects(0)
        // Only the configured proxy, never one from HTTP(S)_PROXY / ALL_PROXY: the guard
        // would then vet the proxy's address while the proxy reaches the endpoint.
        .proxy(ureq_proxy)
        .http_status_as_error(false)
        .user_agent(concat!(
            "Herald/",
            env!("CARGO_PKG_VERSION"),
            " (+webhooks)"
        ))
        .max_idle_connections(if shared {
            config.workers.max(16) * 2
        } else {
            per_host
        })
        .max_idle_connections_per_host(per_host)
        // The TLS layer's buffers (`tls.rs`), sized like the socket's (`transport.rs`).
        .input_buffer_size(transport::INPUT)
        .output_buffer_size(transport::OUTPUT)
        .build();
    let guard = Arc::new(Guard {
        allow_private: config.allow_private_targets,
        proxy_host: proxy.filter(|_| proxy_exempt).map(|p| p.host()),
    });
    // ureq's default chain without SOCKS, with Herald's TCP (`transport.rs`) and TLS
    // (`tls.rs`): a CONNECT tunnel when proxied, else TCP; then TLS for https.
    let connector = ()
        .chain(ConnectProxyConnector::default())
        .chain(GuardedTcp {
            guard: guard.clone(),
        })
        .chain(TlsConnector::new(tls));
    Agent::with_parts(
        ureq_config,
        connector,
        GuardedResolver {
            inner: DefaultResolver::default(),
            guard,
            defer: direct,
        },
    )
}

/// The SSRF guard for a target reached through a proxy, which resolves it itself: refused
/// (`HOST_REFUSED`) when its host is a forbidden address or resolves only to such.
pub fn check_proxied_target(url: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        tracing::warn!(%url, why, "a proxied endpoint's host is refused by the SSRF guard");
        Err(HOST_REFUSED.to_owned())
    };
    let Ok(uri) = url.parse::<Uri>() else {
        return refuse("not a URL");
    };
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match address::is_forbidden(ip) {
            true => refuse("a forbidden address"),
            false => Ok(()),
        };
    }
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            match addrs.iter().any(|a| !address::is_forbidden(a.ip())) {
                true => Ok(()),
                false => refuse("resolves only to forbidden addresses"),
            }
        }
        Err(_) => refuse("does not resolve"),
    }
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
///
/// What a request costs beyond ureq's own work is kept small: the content type is a static
/// header value, the body is handed to ureq as the borrowed `&str` (ureq writes it straight
/// into the connection's buffer: `transport.rs`), the answer's headers are copied only when
/// the attempt failed (a success's are not kept), and its body is read into one buffer
/// sized from its `Content-Length` and used as the `String` when it is UTF-8.
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
    let mut request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
            // the history shows what the receiver sent or nothing. Only a failure keeps
            // them (`worker::send`), so a success copies none.
            let mut kept = serde_json::Map::new();
            if !(200..300).contains(&status) {
                for (name, value) in response.headers() {
                    if let Ok(v) = value.to_str() {
                        kept.insert(name.as_str().to_owned(), v.into());
                    }
                }
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(super::retry::parse_retry_after);
            let length = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let (body, read) = read_capped(response.body_mut().as_reader(), length);
            Response {
                status: Some(status),
                error: read
                    .err()
                    .map(|e| format!("reading the response failed: {e}")),
                headers: kept,
                body: Some(body),
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

/// How much of an answer beyond `RESPONSE_BODY_CAP` is read and dropped so its connection
/// can be used again (ureq pools a connection only once its body has been read to the
/// end); past this the connection is closed instead.
const DRAIN_CAP: u64 = 64 * 1024;

/// The first `RESPONSE_BODY_CAP` bytes of a body, as text, and how reading went. A read
/// error after the status still counts as a response (the status is what decides success);
/// the error is kept beside it for the attempt page.
fn read_capped(mut reader: impl Read, length: Option<usize>) -> (String, std::io::Result<()>) {
    let mut buf = Vec::with_capacity(length.unwrap_or(512).min(RESPONSE_BODY_CAP));
    let read = (&mut reader)
        .take(RESPONSE_BODY_CAP as u64)
        .read_to_end(&mut buf)
        .map(drop);
    if read.is_ok() && buf.len() == RESPONSE_BODY_CAP {
        // More than is kept: read (up to a bound) to the end, so the connection is reused.
        // What is dropped cannot fail the attempt: an error here only closes the connection.
        let _ = std::io::copy(&mut reader.take(DRAIN_CAP), &mut std::io::sink());
    }
    let text = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, read)
}

/// Plain wording for the transport failures an endpoint's owner meets most, as the
/// attempt history shows them; anything else keeps ureq's own message.
pub(super) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => HOST_REFUSED.into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Rustls(tls) => describe_tls(tls),
        ureq::Error::Io(io) => match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => describe_tls(tls),
            None => e.to_string(),
        },
        ureq::Error::ConnectProxyFailed(why) => format!("the proxy refused the tunnel: {why}"),
        other => other.to_string(),
    }
}

/// A TLS failure in words that say which side to fix: the receiver's certificate (unknown
/// issuer, expired, wrong name) or ours (the receiver refused or wanted a client
/// certificate).
fn describe_tls(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C};
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "the server's certificate has an unknown issuer (not signed \
                by a trusted CA; a private CA needs ca_bundle or extra_ca_file)"
                .to_owned(),
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_owned()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the server's certificate does not match the URL's host (name mismatch)".to_owned()
            }
            C::Revoked => "the server's certificate is revoked".to_owned(),
            C::BadSignature => "the server's certificate has a bad signature".to_owned(),
            other => format!("the server's certificate is invalid ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            A::CertificateRequired => {
                "the receiver requires a client certificate and none was sent".to_owned()
            }
            A::UnknownCA => {
                "the receiver refused the client certificate: unknown issuer".to_owned()
            }
            A::CertificateExpired => {
                "the receiver refused the client certificate: expired".to_owned()
            }
            A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown => {
                format!("the receiver refused the client certificate ({alert:?})")
            }
            A::HandshakeFailure => "the receiver refused the TLS handshake (handshake \
                failure; a missing or refused client certificate?)"
                .to_owned(),
            other => format!("the receiver ended the TLS handshake ({other:?})"),
        },
        other => other.to_string(),
    };
    format!("TLS: {what}")
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

    /// The proxy's own address passes the guard whatever it is; other names, and targets
    /// named in a proxied request, do not.
    #[test]
    fn the_proxy_is_exempt_and_proxied_targets_are_checked() {
        let resolver = GuardedResolver {
            inner: DefaultResolver::default(),
            guard: Arc::new(Guard {
                allow_private: false,
                proxy_host: Some("127.0.0.1".into()),
            }),
            defer: false,
        };
        let config = UreqConfig::default();
        let timeout = NextTimeout::default();
        let proxy: Uri = "http://127.0.0.1:3128".parse().unwrap();
        assert!(resolver.resolve(&proxy, &config, timeout).is_ok());
        let other: Uri = "http://[::1]:3128".parse().unwrap();
        assert!(resolver.resolve(&other, &config, timeout).is_err());
        assert_eq!(
            check_proxied_target("http://127.0.0.1:8080/x").unwrap_err(),
            HOST_REFUSED
        );
        assert_eq!(
            check_proxied_target("https://localhost/x").unwrap_err(),
            HOST_REFUSED
        );
        assert!(check_proxied_target("https://93.184.215.14/x").is_ok());
    }

    /// TLS failures say which certificate is wrong and how.
    #[test]
    fn tls_failures_are_named() {
        use rustls::{AlertDescription, CertificateError, Error};
        let cases = [
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown issuer",
            ),
            (
                Error::InvalidCertificate(CertificateError::Expired),
                "has expired",
            ),
            (
                Error::InvalidCertificate(CertificateError::NotValidForName),
                "name mismatch",
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                "requires a client certificate",
            ),
        ];
        for (error, says) in cases {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
            let text = describe(&ureq::Error::Io(io));
            assert!(text.starts_with("TLS: ") && text.contains(says), "{text}");
        }
    }
}
