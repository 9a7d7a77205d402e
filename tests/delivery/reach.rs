//! Reaching receivers (issue 20, items 1, 2, 4; README: Reaching receivers), against real
//! parts: a throwaway PKI made with Debian's `openssl` (and `faketime` for an expired
//! certificate), a TLS receiver run by the test with rustls (requiring a client
//! certificate, or not), and a real forward proxy (Debian's `tinyproxy`) started on
//! loopback with its own configuration and log.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::delivery::delivery_of_event;
use crate::common::{Receiver, TestApp};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// A throwaway PKI
// ---------------------------------------------------------------------------------------

struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    run(dir, "openssl", args);
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} (apt-get install openssl faketime): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Two CAs (`ca`, `other-ca`); a server certificate for localhost and 127.0.0.1 from
    /// `ca` (`server`), one for another name (`elsewhere`); client certificates from `ca`
    /// (`client`, and `soon`, expiring in 7 days), from `other-ca` (`stranger`), and one of
    /// `client`'s key that expired in 2020 (`expired`).
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let d = pki.dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-subj",
                    &format!("/CN=Herald test {ca}"),
                    "-days",
                    "30",
                ],
            );
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            d.join("elsewhere.ext"),
            "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        pki.issue("server", "ca", "server.ext", "30", None);
        pki.issue("elsewhere", "ca", "elsewhere.ext", "30", None);
        pki.issue("client", "ca", "client.ext", "30", None);
        pki.issue("soon", "ca", "client.ext", "7", None);
        pki.issue("stranger", "other-ca", "client.ext", "30", None);
        pki.issue("expired", "ca", "client.ext", "30", Some("client"));
        pki
    }

    /// Issues `name` from `ca`; with `key_of`, for that certificate's key, and dated 2020.
    fn issue(&self, name: &str, ca: &str, ext: &str, days: &str, key_of: Option<&str>) {
        let d = self.dir.path();
        let key = format!("{}.key", key_of.unwrap_or(name));
        if key_of.is_none() {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &key,
                ],
            );
        }
        let csr = format!("{name}.csr");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        let sign = [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            days,
            "-extfile",
            ext,
            "-out",
            &format!("{name}.crt"),
        ];
        match key_of {
            None => openssl(d, &sign),
            Some(_) => {
                let mut args = vec!["2020-01-01 00:00:00", "openssl"];
                args.extend(sign);
                run(d, "faketime", &args);
            }
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn pem(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }

    fn key_of(&self, name: &str) -> String {
        match name {
            "expired" => self.pem("client.key"),
            _ => self.pem(&format!("{name}.key")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A TLS receiver
// ---------------------------------------------------------------------------------------

/// An HTTPS server on 127.0.0.1 answering 200 to every request; with `client_ca`, it
/// requires a client certificate from that CA (rustls' WebPKI verifier).
struct TlsReceiver {
    port: u16,
    answered: Arc<AtomicUsize>,
}

impl TlsReceiver {
    fn start(pki: &Pki, server: &str, client_ca: Option<&str>) -> TlsReceiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.path(&format!("{server}.crt")))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{server}.key"))).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(pki.path(&format!("{ca}.crt"))).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, count) = (config.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    if read_request(&mut tls).is_none() {
                        // A refused handshake: rustls has sent its alert. Close the way
                        // servers do (no reset while the client's request is unread), so
                        // the client reads the alert.
                        let _ = tls.sock.shutdown(std::net::Shutdown::Write);
                        let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut sink = [0u8; 4096];
                        while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
                        return;
                    }
                    {
                        let reply =
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                        if tls.write_all(reply.as_bytes()).is_ok() {
                            let _ = tls.flush();
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                });
            }
        });
        TlsReceiver { port, answered }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/hook", self.port)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// Reads one request's head and body (by content-length); `None` on any error (a refused
/// handshake among them).
fn read_request(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Creates an endpoint with `extra` settings and no retries; returns its id.
fn endpoint(app: &TestApp, url: &str, extra: Value) -> i64 {
    let mut body = json!({ "url": url, "events": ["reach.test"], "retry_schedule": [] });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, created) = app.admin("POST", "/api/v1/webhooks", Some(body));
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_i64().unwrap()
}

/// Publishes one event to the (only) endpoint and waits for its delivery to finish; returns
/// the final status and the first attempt's error.
fn deliver(app: &TestApp) -> (String, Option<String>) {
    let event = app.publish(json!({ "event": "reach.test", "n": 1 }));
    let event_id = event["id"].as_str().unwrap().to_owned();
    let id = delivery_of_event(app, &event_id)["id"].as_i64().unwrap();
    let done = app.wait_for(WAIT, "the delivery to finish", || {
        let d = crate::common::delivery::delivery(app, id);
        (d["status"] != "pending").then_some(d)
    });
    let error = done["attempt_log"][0]["error"].as_str().map(str::to_owned);
    (done["status"].as_str().unwrap().to_owned(), error)
}

fn delete_all(app: &TestApp) {
    let (_, list) = app.admin("GET", "/api/v1/webhooks?limit=100", None);
    for e in list["data"].as_array().unwrap() {
        let id = e["id"].as_i64().unwrap();
        app.admin("DELETE", &format!("/api/v1/webhooks/{id}"), None);
    }
}

// ---------------------------------------------------------------------------------------
// Client certificates
// ---------------------------------------------------------------------------------------

/// A receiver that requires a client certificate from its CA: the right one gets 200; none,
/// another CA's, and an expired one each fail the attempt saying why.
#[test]
fn client_certificates_are_presented_and_refusals_named() {
    let pki = Pki::new();
    let receiver = TlsReceiver::start(&pki, "server", Some("ca"));
    let app = TestApp::spawn_with(&[]);
    let ca = pki.pem("ca.crt");
    let url = receiver.url("localhost");

    // The right certificate.
    let id = endpoint(
        &app,
        &url,
        json!({ "client_certificate": pki.pem("client.crt"), "client_key": pki.pem("client.key"),
                "ca_bundle": ca }),
    );
    let (_, got) = app.admin("GET", &format!("/api/v1/webhooks/{id}"), None);
    let shown = &got["data"]["client_certificate"];
    assert_eq!(shown["subject"], "CN=client", "{got}");
    assert_eq!(shown["issuer"], "CN=Herald test ca", "{got}");
    assert_eq!(
        shown["fingerprint_sha256"].as_str().unwrap().len(),
        32 * 3 - 1,
        "{got}"
    );
    assert!(shown["not_after"].as_str().unwrap().ends_with('Z'), "{got}");
    assert!(
        !got.to_string().contains("PRIVATE KEY"),
        "the key is never answered: {got}"
    );
    assert!(got["data"].get("client_key").is_none(), "{got}");
    assert_eq!(deliver(&app).0, "succeeded");
    assert_eq!(receiver.answered(), 1);
    // A copied database holds no key in clear.
    let key_line = pki.pem("client.key").lines().nth(1).unwrap().to_owned();
    assert!(
        !app.stored_anywhere(&key_line),
        "the private key is sealed at rest"
    );
    delete_all(&app);

    // No certificate.
    endpoint(&app, &url, json!({ "ca_bundle": pki.pem("ca.crt") }));
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.contains("requires a client certificate"), "{error}");
    delete_all(&app);

    // Another CA's certificate.
    endpoint(
        &app,
        &url,
        json!({ "client_certificate": pki.pem("stranger.crt"),
                "client_key": pki.pem("stranger.key"), "ca_bundle": pki.pem("ca.crt") }),
    );
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("refused the client certificate: unknown issuer"),
        "{error}"
    );
    delete_all(&app);

    // An expired one: refused when set (below), so it is swapped in behind the API's back,
    // for the same key, as a certificate that expired while in use would be.
    let id = endpoint(
        &app,
        &url,
        json!({ "client_certificate": pki.pem("client.crt"), "client_key": pki.pem("client.key"),
                "ca_bundle": pki.pem("ca.crt") }),
    );
    let expired = pki.pem("expired.crt").replace('\'', "''");
    app.sql_exec(&[format!(
        "UPDATE endpoints SET client_cert = '{expired}' WHERE id = {id}"
    )]);
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("refused the client certificate: expired"),
        "{error}"
    );
    assert_eq!(
        receiver.answered(),
        1,
        "only the right certificate got through"
    );
}

/// An expired certificate, or a key that is not the certificate's, is refused at create
/// and PATCH with a 400 that says so; a renewed certificate without a key keeps the key.
#[test]
fn bad_pairs_are_refused_when_set() {
    let pki = Pki::new();
    let app = TestApp::spawn_with(&[]);
    let cases = [
        ("expired.crt", "expired", "expired on 2020-01-31"),
        (
            "client.crt",
            "stranger",
            "does not match client_certificate",
        ),
    ];
    for (cert, key, says) in cases {
        let body = json!({ "url": "https://localhost:9/hook", "events": ["*"],
            "client_certificate": pki.pem(cert), "client_key": pki.key_of(key) });
        let (status, answer) = app.admin("POST", "/api/v1/webhooks", Some(body));
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "validation_error", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let body = json!({ "url": "https://localhost:9/hook", "events": ["*"],
        "client_certificate": pki.pem("client.crt") });
    let (status, answer) = app.admin("POST", "/api/v1/webhooks", Some(body));
    assert_eq!(status, 400, "a certificate needs its key: {answer}");

    let id = endpoint(
        &app,
        "https://localhost:9/hook",
        json!({ "client_certificate": pki.pem("client.crt"), "client_key": pki.pem("client.key") }),
    );
    let path = format!("/api/v1/webhooks/{id}");
    let (status, answer) = app.admin(
        "PATCH",
        &path,
        Some(json!({ "client_certificate": pki.pem("expired.crt") })),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app.admin(
        "PATCH",
        &path,
        Some(json!({ "client_certificate": pki.pem("stranger.crt") })),
    );
    assert_eq!(
        status, 400,
        "the stored key is not the new certificate's: {answer}"
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not match"));
    // The same key's certificate again (a renewal): the stored key is kept.
    let (status, answer) = app.admin(
        "PATCH",
        &path,
        Some(json!({ "client_certificate": pki.pem("client.crt"), "description": "renewed" })),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["client_certificate"]["subject"], "CN=client");
    let (status, answer) = app.admin("PATCH", &path, Some(json!({ "client_certificate": null })));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["data"]["client_certificate"].is_null(), "{answer}");
}

/// A certificate with 14 days or less left raises herald.endpoint.certificate_expiring,
/// once, to the tenant's herald.* subscribers; the endpoint page shows the warning.
#[test]
fn a_certificate_close_to_expiry_is_announced_once() {
    let pki = Pki::new();
    let app = TestApp::spawn_with(&[]);
    let ops = Receiver::ok();
    app.create_webhook(&ops.url("/ops"), &["herald.*"]);
    let id = endpoint(
        &app,
        "https://localhost:9/hook",
        json!({ "client_certificate": pki.pem("soon.crt"), "client_key": pki.pem("soon.key") }),
    );
    let got = ops.wait_for("/ops", 1, WAIT);
    let event: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        event["event"], "herald.endpoint.certificate_expiring",
        "{event}"
    );
    assert_eq!(event["data"]["endpoint_id"], id, "{event}");
    assert_eq!(event["data"]["subject"], "CN=soon", "{event}");
    // Sweeps run every 5 s: two more pass without a second announcement.
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(
        ops.on_path("/ops").len(),
        1,
        "announced once per certificate"
    );
}

// ---------------------------------------------------------------------------------------
// Private CAs
// ---------------------------------------------------------------------------------------

/// A receiver on a private CA's certificate: refused without the CA (unknown issuer),
/// accepted with the deployment's extra_ca_file and with the endpoint's ca_bundle; a
/// certificate for another name is a name mismatch.
#[test]
fn private_cas_by_deployment_and_by_endpoint() {
    let pki = Pki::new();
    let receiver = TlsReceiver::start(&pki, "server", None);
    let elsewhere = TlsReceiver::start(&pki, "elsewhere", None);

    let app = TestApp::spawn_with(&[]);
    endpoint(&app, &receiver.url("localhost"), json!({}));
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().unwrap().contains("unknown issuer"),
        "{error:?}"
    );
    delete_all(&app);
    endpoint(
        &app,
        &receiver.url("127.0.0.1"),
        json!({ "ca_bundle": pki.pem("ca.crt") }),
    );
    assert_eq!(deliver(&app).0, "succeeded", "the endpoint's bundle");
    delete_all(&app);
    // Only the bundle's roots: another CA's bundle does not vouch for this server.
    endpoint(
        &app,
        &receiver.url("localhost"),
        json!({ "ca_bundle": pki.pem("other-ca.crt") }),
    );
    let (_, error) = deliver(&app);
    assert!(
        error.as_deref().unwrap().contains("unknown issuer"),
        "{error:?}"
    );
    delete_all(&app);
    endpoint(
        &app,
        &elsewhere.url("localhost"),
        json!({ "ca_bundle": pki.pem("ca.crt") }),
    );
    let (_, error) = deliver(&app);
    assert!(
        error.as_deref().unwrap().contains("name mismatch"),
        "{error:?}"
    );
    drop(app);

    let ca_file = pki.path("ca.crt").display().to_string();
    let app = TestApp::spawn_with(&[("HERALD_EXTRA_CA_FILE", &ca_file)]);
    endpoint(&app, &receiver.url("localhost"), json!({}));
    assert_eq!(
        deliver(&app).0,
        "succeeded",
        "the deployment's extra_ca_file"
    );
    assert_eq!(receiver.answered(), 2);
}

// ---------------------------------------------------------------------------------------
// Egress proxy
// ---------------------------------------------------------------------------------------

/// tinyproxy on a loopback port, with its own configuration and log; `auth`: the user and
/// password it requires.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
             MaxClients 50\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (apt-get install tinyproxy)");
        crate::common::wait_for(Duration::from_secs(10), "tinyproxy to listen", &mut || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether its log shows a request to `target` (`host:port`).
    fn saw(&self, target: &str) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("Request") && l.contains(target))
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliveries go through the deployment's proxy (its log shows them), with credentials;
/// `no_proxy` and an endpoint's `none` bypass it; an endpoint's own proxy is used, its
/// password sealed at rest and answered masked.
#[test]
fn deliveries_go_through_the_proxy_unless_bypassed() {
    let proxy = Tinyproxy::start(Some(("herald", "pr0xy-pass")));
    let receiver = Receiver::ok();
    let port = receiver.addr.rsplit(':').next().unwrap().to_owned();
    let with_auth = proxy.url().replace("http://", "http://herald:pr0xy-pass@");
    let app = TestApp::spawn_with(&[
        ("HERALD_PROXY", &with_auth),
        ("HERALD_NO_PROXY", "localhost"),
    ]);

    endpoint(&app, &format!("http://127.0.0.1:{port}/via"), json!({}));
    assert_eq!(deliver(&app).0, "succeeded");
    assert!(
        proxy.saw(&format!("127.0.0.1:{port}")),
        "the proxy's log shows it"
    );
    assert_eq!(receiver.on_path("/via").len(), 1);
    delete_all(&app);

    // no_proxy names localhost: straight there.
    endpoint(&app, &format!("http://localhost:{port}/direct"), json!({}));
    assert_eq!(deliver(&app).0, "succeeded");
    assert!(
        !proxy.saw(&format!("localhost:{port}")),
        "no_proxy bypasses the proxy"
    );
    delete_all(&app);

    // The endpoint's "none": straight there too.
    endpoint(
        &app,
        &format!("http://127.0.0.1:{port}/none"),
        json!({ "proxy": "none" }),
    );
    let before = std::fs::read_to_string(&proxy.log)
        .unwrap_or_default()
        .len();
    assert_eq!(deliver(&app).0, "succeeded");
    let after = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(
        !after[before..].contains("Request"),
        "an endpoint's none bypasses the proxy: {}",
        &after[before..]
    );
    delete_all(&app);

    // The endpoint's own proxy, with credentials: sealed, masked, kept by a masked PATCH.
    let id = endpoint(
        &app,
        &format!("http://127.0.0.1:{port}/own"),
        json!({ "proxy": with_auth }),
    );
    let (_, got) = app.admin("GET", &format!("/api/v1/webhooks/{id}"), None);
    let shown = got["data"]["proxy"].as_str().unwrap().to_owned();
    assert_eq!(
        shown,
        format!("http://herald:********@127.0.0.1:{}", proxy.port)
    );
    assert!(!got.to_string().contains("pr0xy-pass"), "{got}");
    let (status, answer) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({ "proxy": shown })),
    );
    assert_eq!(
        status, 200,
        "a masked password keeps the stored one: {answer}"
    );
    assert_eq!(deliver(&app).0, "succeeded");
    assert!(proxy.saw("/own") || proxy.saw(&format!("127.0.0.1:{port}")));
    assert_eq!(receiver.on_path("/own").len(), 1);
    assert!(
        !app.stored_anywhere("pr0xy-pass"),
        "the proxy's password is sealed"
    );

    // A wrong password: the proxy refuses the tunnel, and the attempt says so.
    let wrong = proxy.url().replace("http://", "http://herald:wrong@");
    app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({ "proxy": wrong })),
    );
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    assert!(error.as_deref().unwrap().contains("proxy"), "{error:?}");
}

/// With private targets refused, a loopback proxy is still usable, but a target the guard
/// refuses is refused through it too (same message as without a proxy), and the proxy
/// never hears of it.
#[test]
fn the_ssrf_guard_applies_through_the_proxy() {
    let proxy = Tinyproxy::start(None);
    let receiver = Receiver::ok();
    let port = receiver.addr.rsplit(':').next().unwrap().to_owned();
    let app = TestApp::spawn_with(&[
        ("HERALD_ALLOW_PRIVATE_TARGETS", "false"),
        ("HERALD_PROXY", &proxy.url()),
    ]);
    // Created on a public name, then pointed at loopback behind the API's back (as DNS
    // could change under a name).
    let id = endpoint(&app, "https://example.com/hook", json!({}));
    app.sql_exec(&[format!(
        "UPDATE endpoints SET url = 'http://127.0.0.1:{port}/inside' WHERE id = {id}"
    )]);
    let (status, error) = deliver(&app);
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some("host not found, or it resolves only to addresses Herald does not deliver to")
    );
    assert!(receiver.on_path("/inside").is_empty());
    assert!(
        !proxy.saw(&format!("127.0.0.1:{port}")),
        "the proxy never heard of it"
    );

    // An endpoint's own proxy is a tenant's choice: held to the guard, unlike the
    // deployment's.
    let body = json!({ "url": "https://example.com/hook", "events": ["*"],
                       "proxy": proxy.url() });
    let (status, answer) = app.admin("POST", "/api/v1/webhooks", Some(body));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SSRF guard"),
        "{answer}"
    );
}
