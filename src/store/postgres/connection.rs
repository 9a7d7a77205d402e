//! The one place that connects to PostgreSQL: the URL, TLS, and the pool.
//!
//! The URL is libpq's (`postgres://user:pass@host:port/dbname?sslmode=require`). With
//! `sslmode=require`, `verify-ca` or `verify-full` the connection is TLS (rustls), and the
//! server's certificate is always verified: against `sslrootcert=<PEM file>` when the URL
//! names one, else against the public web roots. That is stricter than libpq's `require`
//! (which encrypts without checking who answers): a password sent to an impostor is lost.
//! Without `sslmode`, or with `disable`/`prefer`, the connection is plain, as on a private
//! network or a Unix socket.

use std::time::Duration;

use postgres::config::SslMode;
use r2d2_postgres::PostgresConnectionManager;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{Result, StoreError};

pub type Manager = PostgresConnectionManager<MakeRustlsConnect>;
pub type Pool = r2d2::Pool<Manager>;

/// Connections per replica: the HTTP server's reads and writes, the engine's claims and
/// records, the pruner. The LISTEN connection is separate. Sixteen keeps a handful of
/// replicas well under PostgreSQL's default `max_connections` of 100.
const POOL_SIZE: u32 = 16;

/// The longest a checkout waits for a connection while the database answers.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed URL, ready to connect with.
#[derive(Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub tls: MakeRustlsConnect,
    /// Whether the URL named an `sslrootcert` (what a TLS refusal's hint depends on).
    pub has_root_cert: bool,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut tls_wanted = false;
        let mut root_cert: Option<String> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // sslmode and sslrootcert are taken out before the URL reaches the postgres
            // crate: the TLS setup, and its stricter `require`, are ours.
            match key {
                "sslmode" => match value {
                    "require" | "verify-ca" | "verify-full" => tls_wanted = true,
                    // prefer/allow mean "TLS if offered"; without a way to tell an
                    // impostor, they are treated as plain rather than as false comfort.
                    "disable" | "allow" | "prefer" => {}
                    other => {
                        return Err(StoreError::Open(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                },
                "sslrootcert" => root_cert = Some(value.to_owned()),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| StoreError::Open(format!("the PostgreSQL URL is not valid: {e}")))?;
        config.ssl_mode(if tls_wanted {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        // Without a timeout an unreachable host hangs start-up (and a pool checkout) on
        // the OS's TCP timeout, minutes; the URL can still set its own.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // So an operator can tell Herald's sessions apart in pg_stat_activity.
        if config.get_application_name().is_none() {
            config.application_name("herald");
        }
        Ok(Target {
            config,
            tls: MakeRustlsConnect::new(client_config(root_cert.as_deref())?),
            has_root_cert: root_cert.is_some(),
        })
    }

    /// A connection of its own (the LISTEN thread, migrations).
    pub fn connect(&self) -> Result<postgres::Client> {
        self.config
            .connect(self.tls.clone())
            .map_err(|e| self.refused(&e))
    }

    /// The pool; `errors` hears of every connection it fails to open (`liveness.rs` turns
    /// that into fast 503s).
    pub fn pool(&self, errors: Box<dyn r2d2::HandleError<postgres::Error>>) -> Result<Pool> {
        let manager = PostgresConnectionManager::new(self.config.clone(), self.tls.clone());
        r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            // A couple kept warm so the first request after idle does not pay a TLS
            // handshake; a 5 s checkout bound turns an exhausted pool into a 503 instead
            // of a hung request (a lost database answers sooner: `PgStore::checkout`).
            .min_idle(Some(2))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .error_handler(errors)
            .build(manager)
            .map_err(|e| self.refused(&e))
    }

    fn refused(&self, e: &dyn std::error::Error) -> StoreError {
        let cause = with_cause(e);
        let hint = tls_hint(&cause, self.has_root_cert);
        StoreError::Open(format!("cannot connect to PostgreSQL: {cause}{hint}"))
    }
}

/// What to change when the server's certificate was refused: the URL's `sslrootcert=`.
fn tls_hint(cause: &str, has_root_cert: bool) -> &'static str {
    let lower = cause.to_ascii_lowercase();
    if !lower.contains("certificate") && !lower.contains("tls") {
        return "";
    }
    if has_root_cert {
        " (the server's certificate is not signed by the CA in the URL's sslrootcert=, or \
         does not name this host)"
    } else {
        " (the server's certificate is checked against the public roots; for a private CA, \
         add sslrootcert=/path/to/ca.pem to the URL)"
    }
}

/// An error with its chain of causes ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer").
fn with_cause(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors already print their cause; skip it rather than say it twice.
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn client_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::Open(format!("cannot read sslrootcert {path}: {e}")))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert
                    .map_err(|e| StoreError::Open(format!("sslrootcert {path} is not PEM: {e}")))?;
                roots.add(cert).map_err(|e| {
                    StoreError::Open(format!("sslrootcert {path} holds a bad certificate: {e}"))
                })?;
            }
        }
        // Compiled-in roots rather than the OS store: one binary behaves the same on
        // every host, including minimal containers without ca-certificates.
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Open(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match e.code() {
            // Resource errors map to Full so the API answers 503 (try later), the same
            // answer SQLite gives for a full disk, instead of a generic failure.
            Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
                StoreError::Full
            }
            _ if e.is_closed() => StoreError::Backend(format!("the database went away: {e}")),
            // "error serializing parameter 1" says little without its cause.
            _ => StoreError::Backend(with_cause(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_points_at_sslrootcert() {
        let refused = "error performing TLS handshake: invalid peer certificate: UnknownIssuer";
        assert!(tls_hint(refused, false).contains("add sslrootcert="));
        assert!(tls_hint(refused, true).contains("sslrootcert="));
        assert_eq!(tls_hint("password authentication failed", false), "");
    }
}
