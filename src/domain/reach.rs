//! How Herald reaches an endpoint's receiver beyond its URL (README: Reaching receivers): a
//! client certificate for mutual TLS, the CA bundle its server certificate must chain to,
//! and the forward proxy requests go through.
//!
//! Each is validated once, when a person sets it: a certificate that does not parse, has
//! expired, or does not match its key is refused then (a 400), not at the first delivery.
//! The engine builds its TLS and proxy settings from these types (`engine::agents`); the
//! private key and the proxy's password are secrets, sealed at rest by the store and never
//! serialised (the API and the pages show a certificate's subject, issuer, fingerprint and
//! expiry, and a proxy's URL with its password masked).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;

/// The most PEM text one certificate field takes (a chain, or a CA bundle of a few dozen).
pub const MAX_PEM: usize = 256 * 1024;

/// What the API and the pages show of a certificate: never its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514, as `openssl x509 -subject -nameopt RFC2253` prints it.
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the DER, upper-case hex pairs joined by `:` (`openssl x509 -fingerprint
    /// -sha256` prints the same).
    pub fingerprint_sha256: String,
    /// Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    fn of(der: &[u8]) -> Result<CertInfo, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let tbs = &cert.tbs_certificate;
        let ms = |t: x509_cert::time::Time| t.to_unix_duration().as_millis() as i64;
        Ok(CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            fingerprint_sha256: fingerprint(der),
            not_before: ms(tbs.validity.not_before),
            not_after: ms(tbs.validity.not_after),
        })
    }

    /// Whether it expires within `days` of `now` (ms), or already has.
    pub fn expires_within(&self, now: i64, days: i64) -> bool {
        self.not_after <= now + days * 86_400_000
    }
}

/// A time in an error message: `2026-12-01 10:00:00 UTC`.
fn day(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificates of a PEM text, in order; an error names what is wrong.
fn certificates(field: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    if pem.len() > MAX_PEM {
        return Err(format!("{field}: at most {} KiB of PEM", MAX_PEM / 1024));
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field}: not valid PEM ({e})"))?;
    if certs.is_empty() {
        return Err(format!(
            "{field}: no certificate found; expected PEM (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A client certificate (with any intermediates after it) and its private key, in PEM.
/// `key_pem` is empty only in a patch that renews the certificate and keeps the stored key
/// (`with_key` fills it in).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    cert_pem: String,
    key_pem: String,
    info: CertInfo,
}

impl std::fmt::Debug for ClientCert {
    // The key stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ClientCert {
    /// Validates a pair: the certificate parses and is valid at `now` (ms), the key parses
    /// and is the certificate's. `key` `None`: the key is to be kept from what is stored.
    pub fn parse(cert: &str, key: Option<&str>, now: i64) -> Result<ClientCert, String> {
        let chain = certificates("client_certificate", cert)?;
        let info = CertInfo::of(&chain[0]).map_err(|e| format!("client_certificate: {e}"))?;
        if info.not_after <= now {
            return Err(format!(
                "client_certificate: expired on {}; a receiver would refuse it",
                day(info.not_after)
            ));
        }
        if info.not_before > now {
            return Err(format!(
                "client_certificate: not valid before {}",
                day(info.not_before)
            ));
        }
        let pair = ClientCert {
            cert_pem: cert.trim().to_owned() + "\n",
            key_pem: String::new(),
            info,
        };
        match key {
            None => Ok(pair),
            Some(key) => pair.with_key(key),
        }
    }

    /// The same certificate with `key`, checked against it.
    pub fn with_key(mut self, key: &str) -> Result<ClientCert, String> {
        check_pair(&self.cert_pem, key)?;
        self.key_pem = key.trim().to_owned() + "\n";
        Ok(self)
    }

    /// Rebuilds a stored pair (validated when written). `None` when the certificate no
    /// longer parses (a row edited by hand): the endpoint then has no client certificate.
    pub fn from_stored(cert: String, key: String) -> Option<ClientCert> {
        let chain = certificates("", &cert).ok()?;
        let info = CertInfo::of(&chain[0]).ok()?;
        Some(ClientCert {
            cert_pem: cert,
            key_pem: key,
            info,
        })
    }

    pub fn needs_key(&self) -> bool {
        self.key_pem.is_empty()
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key in PEM: only for the store (which seals it) and the TLS handshake.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The chain and key as rustls takes them; an error for a pair that no longer loads.
    pub fn rustls_parts(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let chain = certificates("client_certificate", &self.cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| "client_key: not a PEM private key".to_owned())?;
        Ok((chain, key))
    }
}

/// The key parses, the TLS provider can sign with it, and its public half is the
/// certificate's (rustls compares the SubjectPublicKeyInfo).
fn check_pair(cert_pem: &str, key_pem: &str) -> Result<(), String> {
    if key_pem.len() > MAX_PEM {
        return Err("client_key: too long".into());
    }
    let chain = certificates("client_certificate", cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        "client_key: not a PEM private key (expected -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY or EC PRIVATE KEY)"
            .to_owned()
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("client_key: cannot be used for TLS ({e})"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            "client_key: does not match client_certificate (it is another key's \
                 certificate)"
                .into(),
        ),
        // A key whose public half rustls cannot derive: accepted, as rustls itself does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => Err(format!("client_certificate: {e}")),
    }
}

/// The CA certificates an endpoint's server must chain to, instead of the web's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pem: String,
    certs: Arc<[CertInfo]>,
}

impl CaBundle {
    pub fn parse(field: &str, pem: &str) -> Result<CaBundle, String> {
        let certs = certificates(field, pem)?
            .iter()
            .map(|der| CertInfo::of(der).map_err(|e| format!("{field}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CaBundle {
            pem: pem.trim().to_owned() + "\n",
            certs: certs.into(),
        })
    }

    /// A stored bundle (validated when written); `None` when it no longer parses.
    pub fn from_stored(pem: String) -> Option<CaBundle> {
        CaBundle::parse("", &pem).ok()
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn certs(&self) -> &[CertInfo] {
        &self.certs
    }

    /// The DER certificates, for a root store.
    pub fn ders(&self) -> Vec<CertificateDer<'static>> {
        certificates("", &self.pem).unwrap_or_default()
    }
}

/// A forward proxy's URL: `http://` (or `https://`) host and port, optionally with
/// credentials, which are kept apart (`credentials`: `user:password`, percent-encoded as
/// in the URL) so the store can seal them and the API can mask them.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// Without credentials: `http://proxy:3128`.
    url: String,
    credentials: Option<String>,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({})", self.shown())
    }
}

/// The password shown in place of a proxy's (as extra header values are masked).
pub const MASKED: &str = "********";

impl ProxyUrl {
    pub fn parse(s: &str) -> Result<ProxyUrl, String> {
        let s = s.trim();
        let uri: http::Uri = s
            .parse()
            .map_err(|_| format!("`{s}` is not a URL such as http://proxy:3128"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(
                    "a proxy URL starts with http:// (or https://), e.g. http://proxy:3128".into(),
                )
            }
        }
        let authority = uri.authority().ok_or("a proxy URL needs a host")?;
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err("a proxy URL is a scheme, host and port, without a path".into());
        }
        let (credentials, host) = match authority.as_str().rsplit_once('@') {
            Some((creds, host)) => (Some(creds.to_owned()), host),
            None => (None, authority.as_str()),
        };
        if host.is_empty() || host.starts_with(':') {
            return Err("a proxy URL needs a host".into());
        }
        let url = format!("{}://{host}", uri.scheme_str().unwrap_or("http"));
        ureq::Proxy::new(&url).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(ProxyUrl {
            url,
            credentials: credentials.filter(|c| !c.is_empty()),
        })
    }

    pub fn from_stored(url: String, credentials: Option<String>) -> ProxyUrl {
        ProxyUrl { url, credentials }
    }

    /// Without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `user:password` (percent-encoded), a secret.
    pub fn credentials(&self) -> Option<&str> {
        self.credentials.as_deref()
    }

    /// As the API and the pages show it: the user, and the password masked.
    pub fn shown(&self) -> String {
        match &self.credentials {
            None => self.url.clone(),
            Some(c) => {
                let user = c.split_once(':').map_or(c.as_str(), |(u, _)| u);
                let (scheme, rest) = self.url.split_once("://").unwrap_or(("http", &self.url));
                format!("{scheme}://{user}:{MASKED}@{rest}")
            }
        }
    }

    /// A masked password sent back (a form resubmitted, a GET-modify-PATCH) keeps the
    /// stored one when the rest of the URL is unchanged.
    pub fn keep_masked(self, current: Option<&ProxyUrl>) -> Result<ProxyUrl, String> {
        let masked = self
            .credentials
            .as_deref()
            .is_some_and(|c| c.ends_with(&format!(":{MASKED}")));
        if !masked {
            return Ok(self);
        }
        match current {
            Some(stored) if stored.shown() == self.shown() => Ok(stored.clone()),
            _ => Err(format!(
                "proxy: `{MASKED}` can only keep the stored password of the same proxy and user"
            )),
        }
    }

    /// For ureq, with the credentials.
    pub fn to_ureq(&self) -> Result<ureq::Proxy, String> {
        let full = match &self.credentials {
            None => self.url.clone(),
            Some(c) => {
                let (scheme, rest) = self.url.split_once("://").unwrap_or(("http", &self.url));
                format!("{scheme}://{c}@{rest}")
            }
        };
        ureq::Proxy::new(&full).map_err(|e| format!("proxy: {e}"))
    }

    /// Its host, bare (no brackets around an IPv6 address).
    pub fn host(&self) -> String {
        let rest = self.url.split_once("://").map_or(&*self.url, |(_, r)| r);
        let uri: Option<http::Uri> = format!("http://{rest}").parse().ok();
        uri.and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
            .unwrap_or_default()
    }
}

/// An endpoint's own proxy choice; an endpoint without one (`None` in its settings) uses the
/// deployment's `proxy` and `no_proxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointProxy {
    /// `"none"`: straight to the receiver, whatever the deployment's `proxy`.
    Direct,
    Via(ProxyUrl),
}

impl EndpointProxy {
    /// An endpoint's proxy is set by whoever owns the endpoint (a tenant, in the portal), so
    /// unlike the deployment's it is held to the SSRF guard's rules: unless private targets
    /// are allowed, its host may not be a loopback, private or metadata address.
    pub fn parse(s: &str, allow_private_targets: bool) -> Result<EndpointProxy, String> {
        match s.trim() {
            "none" => Ok(EndpointProxy::Direct),
            url => {
                let proxy = ProxyUrl::parse(url)?;
                if !allow_private_targets {
                    super::address::check_host(&proxy.host()).map_err(|e| {
                        format!(
                            "an endpoint's proxy is held to the SSRF guard: {e} (the \
                             deployment's `proxy` is not; or set allow_private_targets)"
                        )
                    })?;
                }
                Ok(EndpointProxy::Via(proxy))
            }
        }
    }

    /// As stored in the `proxy` column (without credentials) and shown (masked).
    pub fn stored(&self) -> &str {
        match self {
            EndpointProxy::Direct => "none",
            EndpointProxy::Via(p) => p.url(),
        }
    }

    pub fn shown(&self) -> String {
        match self {
            EndpointProxy::Direct => "none".into(),
            EndpointProxy::Via(p) => p.shown(),
        }
    }

    pub fn from_stored(proxy: String, credentials: Option<String>) -> EndpointProxy {
        match proxy.as_str() {
            "none" => EndpointProxy::Direct,
            _ => EndpointProxy::Via(ProxyUrl::from_stored(proxy, credentials)),
        }
    }
}

/// `no_proxy` patterns, as curl reads them: `*` matches every host; `example.com` (or
/// `.example.com`, or `*.example.com`) matches that host and every name under it; an IP
/// address matches itself. Compared without case and without a trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy(Vec<String>);

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        NoProxy(
            list.split([',', ' '])
                .map(|p| p.trim().trim_start_matches("*.").trim_start_matches('.'))
                .map(|p| p.trim_end_matches('.').to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        )
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host
            .trim_matches(['[', ']'])
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.0.iter().any(|p| {
            p == "*"
                || host == *p
                || host
                    .strip_suffix(p.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_reads_like_curl() {
        let n = NoProxy::parse("internal.example, .corp, *.lan, 10.0.0.7");
        assert!(n.matches("internal.example"));
        assert!(n.matches("a.internal.example"));
        assert!(!n.matches("xinternal.example"));
        assert!(n.matches("corp") && n.matches("x.corp") && n.matches("y.lan"));
        assert!(n.matches("10.0.0.7") && !n.matches("10.0.0.70"));
        assert!(!n.matches("example.com"));
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::default().matches("anything"));
    }

    #[test]
    fn proxy_credentials_are_kept_apart_and_masked() {
        let p = ProxyUrl::parse("http://user:s3cret@proxy.example:3128").unwrap();
        assert_eq!(p.url(), "http://proxy.example:3128");
        assert_eq!(p.credentials(), Some("user:s3cret"));
        assert_eq!(p.shown(), "http://user:********@proxy.example:3128");
        assert_eq!(p.host(), "proxy.example");
        let back = ProxyUrl::parse(&p.shown()).unwrap();
        assert_eq!(back.keep_masked(Some(&p)).unwrap(), p);
        let other = ProxyUrl::parse("http://user:********@other:3128").unwrap();
        assert!(other.keep_masked(Some(&p)).is_err());
        assert!(ProxyUrl::parse("ftp://proxy:21").is_err());
        assert!(ProxyUrl::parse("http://proxy:3128/path").is_err());
        assert_eq!(
            EndpointProxy::parse("none", false).unwrap(),
            EndpointProxy::Direct
        );
        assert!(EndpointProxy::parse("http://10.0.0.5:3128", false).is_err());
        assert!(EndpointProxy::parse("http://10.0.0.5:3128", true).is_ok());
        assert!(EndpointProxy::parse("http://proxy.example:3128", false).is_ok());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let err = ClientCert::parse("hello", Some("world"), 0).unwrap_err();
        assert!(err.contains("no certificate found"), "{err}");
        assert!(CaBundle::parse("ca_bundle", "").is_err());
    }
}
