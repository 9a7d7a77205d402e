//! Herald: a webhook delivery server in one binary and one SQLite file.
//!
//! `run` wires the parts together: the store (SQLite, one writer thread with group commit;
//! or PostgreSQL), the delivery engine (dispatcher, workers, recorder, pruner), and the HTTP
//! server (its guards, the JSON API, the admin pages). See README.md's Architecture section
//! for the data path.
//!
//! The modules stand in layers, each importing only its own and the ones below, never in a
//! circle (`tests/layers.rs` checks it). Bottom first: values with no I/O (`units`,
//! `domain`, `clock`, `wire`, `config`, `secrets`, `lifecycle`) → `store` → `engine`,
//! `metrics` and `telemetry` → `service` → the HTTP edge (`error`, `server`) → `api` and `pages`, side by
//! side → this file, `cli`, `listen` and `main`.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod lifecycle;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod pages;
pub mod secrets;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpServer, ResponseError};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::lifecycle::Shutdown;
use crate::secrets::{keys, secret_key};
use crate::server::{body_budget, connection_cap, head, idle_deadline, request_deadline, throttle};
use crate::service::AppState;
use crate::store::Store;

/// How long shutdown waits for in-flight HTTP requests and deliveries.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last spans to reach the collector.
const TRACES_FLUSH_BOUND: Duration = Duration::from_secs(5);

/// Runs Herald until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    // The port first: a Herald that cannot listen must fail before it creates a database,
    // a key file or an admin token it would print and then lose.
    let listeners = listen(&config.listen)?;
    // Before anything that publishes or delivers, so every span has a tracer; a thread of
    // its own, started only when a collector is configured.
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => Some(telemetry::start(endpoint)?),
        None => None,
    };
    check_db_directory(&config)?;
    // Before the store opens: it seals endpoint secrets with this key.
    let secret_key = secret_key::SecretKey::load(&config)?;
    secret_key::install(secret_key.clone());
    let store = {
        // Off the runtime: opening PostgreSQL blocks on its own client runtime.
        let (db, durability) = (config.db.clone(), config.durability);
        tokio::task::spawn_blocking(move || store::open(&db, durability))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    check_secret_key(&store, &secret_key, &config).await?;
    let admin_token_hash = admin_token_hash(&store, &config).await?;
    service::ensure_operator_endpoint(&store, &config)
        .await
        .map_err(|e| format!("operator_webhook: {e}"))?;
    let config = Arc::new(config);
    let shutdown = Shutdown::default();
    let engine = {
        let (store, config, shutdown) = (store.clone(), config.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || Engine::start(store, config, shutdown))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let state = web::Data::new(AppState {
        store: store.clone(),
        config: config.clone(),
        admin_token_hash,
        secret_key,
        engine: engine.handle(),
        schemas: Default::default(),
    });
    throttle::exempt(config.throttle_exempt.clone());
    let body_budget = web::Data::from(body_budget::BodyBudget::new(
        config.max_body_memory,
        config.max_payload,
    ));
    let connections = connection_cap::ConnectionCap::new(
        config.max_connections_per_client,
        config.trusted_proxies.clone(),
        config.ipv6_client_prefix,
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(body_budget.clone())
            .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed))
            .wrap_fn(|mut req, srv| {
                request_deadline::wrap(&mut req);
                actix_web::dev::Service::call(srv, req)
            })
            .wrap_fn(head::head_as_get)
            .wrap_fn(|req, srv| {
                // The connection is not idle while its handler runs (`idle_deadline`).
                let busy = idle_deadline::busy(req.request());
                let answer = actix_web::dev::Service::call(srv, req);
                async move {
                    let answer = answer.await;
                    drop(busy);
                    answer
                }
            })
            .configure(api::configure)
            .configure(pages::configure)
            .default_service(web::to(api::not_found))
    })
    .on_connect(move |conn, data| {
        if connections.on_connect(conn, data) {
            idle_deadline::on_connect(conn, data);
        }
    })
    .disable_signals()
    .client_request_timeout(request_deadline::HEADERS_TIMEOUT)
    .keep_alive(idle_deadline::KEEP_ALIVE)
    .shutdown_timeout(SHUTDOWN_BOUND.as_secs());
    let server = listeners.into_iter().try_fold(server, |server, listener| {
        server.listen(listener).map_err(|e| {
            format!(
                "cannot listen on {} (`--listen`, `listen`): {e}",
                config.listen
            )
        })
    })?;
    for addr in server.addrs() {
        // Tests and scripts read this line to find the port when listening on :0.
        println!("Herald listening on http://{addr}");
    }
    tracing::info!(db = %config.db, ms = started.elapsed().as_millis() as u64, "ready");
    let server = server.run();
    // Start-up's code need not stay resident (`memory::trim_executable`): once the HTTP
    // workers have built their routes (milliseconds after `run`), half a second on.
    actix_web::rt::spawn(async {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        memory::trim_executable();
    });
    let handle = server.handle();
    let stop = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new requests, finishing deliveries");
        handle.stop(true).await;
    });
    server.await.map_err(|e| e.to_string())?;
    stop.abort();
    tokio::task::spawn_blocking(move || engine.shutdown(SHUTDOWN_BOUND))
        .await
        .map_err(|e| e.to_string())?;
    // After the engine: the last attempts' spans are queued by now. Bounded, so an
    // unreachable collector delays the exit by at most this.
    if let Some(traces) = traces {
        tokio::task::spawn_blocking(move || traces.shutdown(TRACES_FLUSH_BOUND))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Binds every address `listen` names (a host name may resolve to several), naming the
/// setting when one is taken or not ours to bind.
fn listen(listen: &str) -> Result<Vec<std::net::TcpListener>, String> {
    use std::net::ToSocketAddrs;
    let why = |e: std::io::Error| {
        format!(
            "cannot listen on {listen}: {e} (set another address with `--listen`, \
             `listen` in the config file or HERALD_LISTEN)"
        )
    };
    let addrs: Vec<_> = listen.to_socket_addrs().map_err(why)?.collect();
    addrs
        .into_iter()
        .map(|addr| std::net::TcpListener::bind(addr).map_err(why))
        .collect()
}

/// A SQLite path in a directory that does not exist would otherwise first fail as the key
/// file beside it (`cannot create …/herald.key`), which points at the wrong setting.
fn check_db_directory(config: &Config) -> Result<(), String> {
    let Some(path) = config.db.sqlite_path() else {
        return Ok(());
    };
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(format!(
            "cannot open the database {}: the directory {} does not exist (create it, or \
             choose another path with `--db`, `db` in the config file or HERALD_DB)",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Refuses to start with a secret key other than the one this database's secrets were
/// sealed with: every replica on one PostgreSQL database (and a restored SQLite file) needs
/// the same key, and a wrong one would otherwise surface only as deliveries that cannot be
/// signed. The database keeps a fingerprint (an HMAC of a fixed purpose), never the key.
async fn check_secret_key(
    store: &Store,
    key: &secret_key::SecretKey,
    config: &Config,
) -> Result<(), String> {
    let fingerprint = hex::encode(key.derive("fingerprint"));
    let stored = store
        .setting_get_or_insert("secret_key_fingerprint", &fingerprint)
        .await
        .map_err(|e| e.to_string())?;
    if stored != fingerprint {
        return Err(format!(
            "the secret key ({}) is not the one this database's secrets were sealed with; \
             give every Herald on this database the same key file or HERALD_SECRET_KEY",
            match &config.secret_key {
                Some(_) => "HERALD_SECRET_KEY".to_string(),
                None => secret_key::key_file(config).display().to_string(),
            }
        ));
    }
    Ok(())
}

/// The hash the admin token is checked against: the configured token's, or the one
/// generated on first start (printed once, then only its hash is kept).
async fn admin_token_hash(store: &Store, config: &Config) -> Result<String, String> {
    if let Some(token) = &config.admin_token {
        return Ok(keys::hash_token(token));
    }
    let token = keys::generate_admin_token();
    let hash = keys::hash_token(&token);
    let stored_hash = hash.clone();
    let stored = store
        .setting_get_or_insert("admin_token_sha256", &stored_hash)
        .await
        .map_err(|e| e.to_string())?;
    if stored == hash {
        println!(
            "Generated the admin token (shown only this once; keep it safe):\n\n    {token}\n"
        );
    }
    Ok(stored)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A wrong method on a documented route is answered in the API's envelope with `Allow`
/// (RFC 9110), the route's methods read from the OpenAPI document; the pages answer their
/// own (`pages::resource`).
fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let Some(allow) = api::allowed_methods(res.request()) else {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    };
    let (req, _) = res.into_parts();
    let mut response =
        ApiError::MethodNotAllowed(format!("this route accepts only {allow}")).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
        req,
        response.map_into_right_body(),
    )))
}
