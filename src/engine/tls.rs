//! TLS to receivers with Herald's own rustls client configuration, as the last link of the
//! agents' connector chain (TCP, or a CONNECT tunnel through a proxy, then this).
//!
//! Why not ureq's own `RustlsConnector`: its root choice is either Mozilla's roots or a
//! given list, and `extra_ca_file` must add to the web's roots rather than replace them;
//! and it panics on a client key rustls cannot load, where an endpoint's stored pair must
//! fail its attempt instead. The transport below is ureq's (`RustlsTransport`), unchanged.
//!
//! Roots: an endpoint's `ca_bundle` alone when it has one (a private CA must not also let
//! any public CA vouch for that host), otherwise the web's roots (`webpki-roots`) and the
//! deployment's `extra_ca_file`.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// The certificates a client configuration trusts and presents.
pub struct TlsSetup<'a> {
    /// The deployment's extra roots (`extra_ca_file`), added to the web's.
    pub extra_roots: &'a [CertificateDer<'static>],
    /// An endpoint's own roots: then only these.
    pub only_roots: Option<Vec<CertificateDer<'static>>>,
    pub client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Builds a client configuration; an error (a client key rustls refuses) is a sentence for
/// the attempt's history.
pub fn client_config(setup: TlsSetup<'_>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match setup.only_roots {
        Some(own) => {
            roots.add_parsable_certificates(own);
        }
        None => {
            roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
            roots.add_parsable_certificates(setup.extra_roots.iter().cloned());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match setup.client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate cannot be used: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Wraps an https connection in TLS with one client configuration.
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        // Plain http, or a transport that is TLS already (to an https proxy): as it is.
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("the URL's host is not a valid TLS server name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // A handshake failure comes back as an io::Error carrying the rustls error, which
        // `http::describe` names (unknown issuer, expired, name mismatch, refused cert).
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection (ureq's `RustlsTransport`).
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// A TLS error the peer already sent (an alert), if one is waiting to be read.
    fn pending_alert(&mut self) -> Option<rustls::Error> {
        let StreamOwned { conn, sock } = &mut self.stream;
        for _ in 0..4 {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        return Some(e);
                    }
                }
            }
        }
        None
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        if let Err(e) = self.stream.write_all(output) {
            // A receiver that refuses our certificate (in TLS 1.3, after the handshake)
            // sends its alert and closes; our write then fails with a broken pipe while
            // the alert waits unread. Read it, so the attempt says why.
            return Err(match self.pending_alert() {
                Some(alert) => ureq::Error::Rustls(alert),
                None => e.into(),
            });
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
