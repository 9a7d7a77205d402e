//! The subcommands beside `serve`: they open the database file directly (SQLite lets them
//! run while the server is up) and go through the same store functions as the API.

use std::io::Read;
use std::path::Path;

use crate::clock::now_ms;
use crate::config::Config;
use crate::domain::TenantId;
use crate::secrets::keys;
use crate::service::IssuedKey;
use crate::store::{self, Store, StoreError};
use crate::wire::payload;
use crate::wire::signing::{self, Scheme};

/// Opens the existing database. Only `serve` creates one: a command that made a fresh empty
/// file would silently miss the real database (a wrong directory, a missing `--config`).
fn open(config: &Config) -> Result<Store, String> {
    if let Some(path) = config.db.sqlite_path().filter(|p| !p.exists()) {
        return Err(format!(
            "no database at {}; run `herald serve` first, or point --db, --config or HERALD_CONFIG at the right one",
            path.display()
        ));
    }
    store::open(&config.db, config.durability).map_err(|e| e.to_string())
}

/// Runs one store operation to completion on a small runtime of its own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(f))
}

pub fn create_tenant(config: &Config, id: &str, name: Option<&str>) -> Result<(), String> {
    let id = TenantId::parse(id)?;
    let name = name.unwrap_or(id.as_str()).to_owned();
    let store = open(config)?;
    let tenant =
        block_on(store.create_tenant(id.as_str(), &name, now_ms()))?.map_err(|e| e.to_string())?;
    println!("created tenant {} ({})", tenant.id, tenant.name);
    Ok(())
}

pub fn create_key(config: &Config, tenant: &str, name: Option<&str>) -> Result<(), String> {
    let token = keys::generate_api_key();
    let new = store::NewKey {
        tenant_id: tenant.to_owned(),
        name: name.unwrap_or("").to_owned(),
        prefix: keys::display_prefix(&token),
        key_hash: keys::hash_token(&token),
    };
    let store = open(config)?;
    let key = block_on(store.create_key(new, now_ms()))?.map_err(|e| e.to_string())?;
    let IssuedKey { key, token } = IssuedKey { key, token };
    eprintln!(
        "API key {} for tenant {} (shown only this once):",
        key.id, key.tenant_id
    );
    println!("{token}");
    Ok(())
}

/// Publishes one event from a JSON argument or, with `-`, from standard input.
pub fn publish(
    config: &Config,
    tenant: &str,
    json: &str,
    idempotency_key: Option<&str>,
) -> Result<(), String> {
    let body = read_arg(json)?;
    if body.len() > config.max_payload {
        return Err(format!(
            "the payload is larger than max_payload ({} bytes)",
            config.max_payload
        ));
    }
    let mut event = payload::from_bytes(body.as_bytes(), now_ms()).map_err(|e| e.message)?;
    event.idempotency_key = idempotency_key
        .map(payload::idempotency_key)
        .transpose()
        .map_err(|e| e.message)?;
    let store = open(config)?;
    let published = block_on(async {
        if !store.tenant_exists(tenant).await? {
            return Err(StoreError::NotFound("tenant"));
        }
        store.publish(tenant, vec![event], now_ms()).await
    })?
    .map_err(|e| e.to_string())?;
    for p in published {
        println!(
            "{}",
            serde_json::json!({ "id": p.id, "event": p.event, "deliveries": p.deliveries })
        );
    }
    Ok(())
}

/// Copies the live database into `dest` (a consistent snapshot; the server may keep running).
pub fn backup(config: &Config, dest: &Path) -> Result<(), String> {
    if dest.exists() {
        return Err(format!("{} already exists", dest.display()));
    }
    open(config)?.backup(dest).map_err(|e| e.to_string())?;
    println!("backed up {} to {}", config.db, dest.display());
    println!(
        "keep the secret key ({}, or HERALD_SECRET_KEY) with it: the database alone is not all",
        crate::secrets::secret_key::key_file(config).display()
    );
    Ok(())
}

/// Copies the SQLite deployment into an empty PostgreSQL database (`store::transfer`).
pub fn migrate(config: &Config, to: &str) -> Result<(), String> {
    let source = config.db.sqlite_path().ok_or(
        "`herald migrate` copies a SQLite database: point --db (or `db`) at the SQLite file",
    )?;
    let target = crate::config::Database::parse(to);
    if !matches!(target, crate::config::Database::Postgres(_)) {
        return Err("--to takes a postgres:// URL".into());
    }
    // The copy keeps endpoint secrets sealed; check now that the key the user will keep
    // opens them (never create a key here: a fresh one would open nothing).
    let key_file = crate::secrets::secret_key::key_file(config);
    if config.secret_key.is_some() || key_file.exists() {
        let key = crate::secrets::secret_key::SecretKey::load(config)?;
        store::transfer::check_key(source, &key).map_err(|e| e.to_string())?;
    }
    let started = std::time::Instant::now();
    let copied = store::transfer::sqlite_to_postgres(source, to).map_err(|e| e.to_string())?;
    println!(
        "copied {} to {target} in {:.1}s:",
        source.display(),
        started.elapsed().as_secs_f64()
    );
    for (table, rows) in copied {
        println!("  {table:<12} {rows}");
    }
    println!(
        "next: keep the same secret key ({}, or HERALD_SECRET_KEY) for the new database — \
         the endpoints' secrets are sealed with it — and set `db` (or HERALD_DB, --db) to \
         the PostgreSQL URL before starting Herald again",
        key_file.display()
    );
    Ok(())
}

/// Checks a signature the way a receiver would; exits non-zero when it does not match.
pub fn verify(
    scheme: &str,
    secret: &str,
    signature: &str,
    timestamp: Option<i64>,
    msg_id: Option<&str>,
    body: &str,
) -> Result<(), String> {
    let body = read_arg(body)?;
    let body = body.as_bytes();
    let need_ts = || timestamp.ok_or("--timestamp is needed for this scheme");
    let valid = match Scheme::parse(scheme).ok_or(format!("unknown scheme `{scheme}`"))? {
        Scheme::Standard => signing::verify_standard(
            secret,
            msg_id.ok_or("--id is needed for the standard scheme")?,
            need_ts()?,
            body,
            signature,
        ),
        Scheme::Timestamped => signing::verify_timestamped(secret, need_ts()?, body, signature),
        Scheme::Body => signing::verify_body(secret, body, signature),
    };
    if valid {
        println!("valid");
        Ok(())
    } else {
        Err("signature does not match".into())
    }
}

fn read_arg(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(s)
}
