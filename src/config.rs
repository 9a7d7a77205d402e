//! Configuration: defaults → TOML file → `HERALD_*` environment → command-line flags.
//!
//! Every key of DESIGN.md's table has a default that runs, so `herald serve` works with no
//! file at all. The file and the environment are read through the same per-key parser
//! (`Config::set`), so a value means the same thing wherever it is written; an unknown key
//! in the file is an error rather than a silently ignored typo. Durations, sizes and rates
//! are read by `units`, the same parsers the endpoint settings use; networks are
//! `domain::address::Cidr`s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::address::Cidr;
use crate::units::{parse_duration, parse_rate_limit, parse_schedule, parse_size};
use crate::wire::signing::{parse_schemes, Scheme};

/// How hard SQLite works to keep a commit on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged publish survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a process crash, may lose the last commits on power loss.
    Normal,
}

/// Where the store lives: a SQLite file (the default), or a PostgreSQL database shared by
/// any number of Herald replicas.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A libpq-style URL (`postgres://user:pass@host:port/dbname?sslmode=require`).
    Postgres(String),
}

impl Database {
    /// `postgres://…` or `postgresql://…` selects PostgreSQL; anything else is a SQLite
    /// path, with an optional `sqlite:` (or `sqlite://`) prefix.
    pub fn parse(value: &str) -> Database {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Database::Postgres(value.to_owned());
        }
        let path = value
            .strip_prefix("sqlite://")
            .or_else(|| value.strip_prefix("sqlite:"))
            .unwrap_or(value);
        Database::Sqlite(PathBuf::from(path))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

/// For logs and messages: a PostgreSQL URL with its password replaced by `***`.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub db: Database,
    pub admin_token: Option<String>,
    pub allow_private_targets: bool,
    pub retry_schedule: Vec<Duration>,
    pub signature_schemes: Vec<Scheme>,
    pub signature_prefix: String,
    pub body_signature_header: String,
    pub workers: usize,
    pub endpoint_concurrency: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub durability: Durability,
    pub max_payload: usize,
    pub retention: Duration,
    pub disable_after: Duration,
    pub rotation_grace: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none: the header is ignored).
    pub trusted_proxies: Vec<Cidr>,
    /// Open connections one client address may hold (0: no cap); trusted proxies are exempt.
    pub max_connections_per_client: usize,
    /// Bytes all request bodies being read may hold together; over it a request gets 503.
    pub max_body_memory: usize,
    /// SQLite: `/readyz` answers 503 while checkpoints fail and the WAL is larger than this.
    pub wal_alarm_size: u64,
    /// An IPv6 client is counted (connection cap, throttles, body budget) by this many
    /// leading bits of its address: the network one host is routed (64: a /64).
    pub ipv6_client_prefix: u8,
    /// Addresses whose failed authentications are not throttled (none by default).
    pub throttle_exempt: Vec<Cidr>,
    /// Where Herald sends its own operational events (every tenant's), if anywhere.
    pub operator_webhook: Option<String>,
    /// The secret key file; `None`: `herald.key` beside the database (`secret_key::key_file`).
    pub secret_key_file: Option<PathBuf>,
    /// The secret key itself, from `HERALD_SECRET_KEY` only (never from a file on disk
    /// that could be copied with the configuration).
    pub secret_key: Option<String>,
    /// Requests per second to an endpoint that sets no `rate_limit` of its own.
    pub rate_limit: Option<f64>,
    /// Consecutive failures that open an endpoint's circuit (0: never).
    pub circuit_threshold: u32,
    /// The first wait of an open circuit before its probe (doubling to 30 min).
    pub circuit_backoff: Duration,
    /// The share of failed attempts (0..=1) in an endpoint's recent window that opens its
    /// circuit (`engine::health`)…
    pub circuit_failure_rate: f64,
    /// …once the window holds at least this many attempts.
    pub circuit_min_attempts: u32,
    /// The length of each of the window's two buckets.
    pub circuit_window: Duration,
    /// The most requests in flight to one endpoint once its limit has adapted upward.
    pub max_endpoint_concurrency: usize,
    /// PostgreSQL: how long a replica's claim on a delivery lasts without renewal, so how
    /// long a dead replica's deliveries wait before another replica sends them.
    pub lease: Duration,
    /// Where traces go (an OTLP/HTTP collector's base URL); `None`: no tracing at all.
    pub otlp_endpoint: Option<String>,
    /// A PEM bundle of CA certificates trusted beside the web's roots (README: Private CAs),
    /// and its certificates, read when the key is set (a bad file stops the start).
    pub extra_ca_file: Option<PathBuf>,
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The forward proxy deliveries go through (README: Egress proxy), unless an endpoint
    /// has its own or `none`, or its host matches `no_proxy`.
    pub proxy: Option<crate::domain::ProxyUrl>,
    pub no_proxy: crate::domain::NoProxy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            db: Database::Sqlite(PathBuf::from("./herald.db")),
            admin_token: None,
            allow_private_targets: false,
            retry_schedule: vec![mins(1), mins(5), mins(30)],
            signature_schemes: vec![Scheme::Standard],
            signature_prefix: "X-Herald".into(),
            body_signature_header: "X-Webhook-Signature".into(),
            // Workers block on network I/O, not CPU: 64 keeps two cores busy on loopback and
            // still leaves room when a few endpoints are slow.
            workers: 64,
            endpoint_concurrency: 8,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            durability: Durability::Full,
            max_payload: 1024 * 1024,
            retention: days(30),
            disable_after: days(5),
            rotation_grace: Duration::from_secs(24 * 3600),
            trusted_proxies: Vec::new(),
            max_connections_per_client: 256,
            max_body_memory: 64 * 1024 * 1024,
            wal_alarm_size: 256 * 1024 * 1024,
            ipv6_client_prefix: 64,
            throttle_exempt: Vec::new(),
            operator_webhook: None,
            secret_key_file: None,
            secret_key: None,
            rate_limit: None,
            circuit_threshold: 5,
            circuit_backoff: Duration::from_secs(30),
            circuit_failure_rate: 0.9,
            circuit_min_attempts: 20,
            circuit_window: Duration::from_secs(60),
            max_endpoint_concurrency: 32,
            lease: Duration::from_secs(15),
            otlp_endpoint: None,
            extra_ca_file: None,
            extra_roots: Vec::new(),
            proxy: None,
            no_proxy: crate::domain::NoProxy::default(),
        }
    }
}

/// Every key, in the order of DESIGN.md's table; the environment variable is `HERALD_` + upper case.
pub const KEYS: &[&str] = &[
    "listen",
    "db",
    "admin_token",
    "allow_private_targets",
    "retry_schedule",
    "signature_schemes",
    "signature_prefix",
    "body_signature_header",
    "workers",
    "endpoint_concurrency",
    "connect_timeout",
    "request_timeout",
    "durability",
    "max_payload",
    "retention",
    "disable_after",
    "rotation_grace",
    "trusted_proxies",
    "max_connections_per_client",
    "max_body_memory",
    "wal_alarm_size",
    "ipv6_client_prefix",
    "throttle_exempt",
    "operator_webhook",
    "secret_key_file",
    "rate_limit",
    "circuit_threshold",
    "circuit_backoff",
    "circuit_failure_rate",
    "circuit_min_attempts",
    "circuit_window",
    "max_endpoint_concurrency",
    "lease",
    "otlp_endpoint",
    "extra_ca_file",
    "proxy",
    "no_proxy",
];

impl Config {
    /// Builds the configuration: defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut config = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            config
                .apply_toml(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e| format!("invalid TOML: {e}"))?;
        for (key, value) in table {
            let raw = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(format!("key `{key}`: unsupported value {other}")),
            };
            // As the environment's errors name the variable: the key, so a long file
            // says which line to fix.
            self.set(&key, &raw)
                .map_err(|e| match KEYS.contains(&key.as_str()) {
                    true => format!("key `{key}`: {e}"),
                    false => e,
                })?;
        }
        Ok(())
    }

    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), String> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("HERALD_") else {
                continue;
            };
            if key == "SECRET_KEY" {
                self.secret_key = Some(value.trim().to_owned());
                continue;
            }
            let key = key.to_ascii_lowercase();
            if KEYS.contains(&key.as_str()) {
                self.set(&key, &value).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Sets one key from its textual form; the single place where values are parsed.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        match key {
            "listen" => self.listen = non_empty(v)?.to_owned(),
            "db" => self.db = Database::parse(non_empty(v)?),
            "admin_token" => {
                // It opens everything: it must not be guessable (a generated one is 64 hex digits).
                if v.chars().count() < MIN_ADMIN_TOKEN {
                    return Err(format!(
                        "admin_token must be at least {MIN_ADMIN_TOKEN} characters \
                         (e.g. the output of `openssl rand -hex 32`)"
                    ));
                }
                self.admin_token = Some(v.to_owned())
            }
            "allow_private_targets" => self.allow_private_targets = parse_bool(v)?,
            "retry_schedule" => self.retry_schedule = parse_schedule(v)?,
            "signature_schemes" => self.signature_schemes = parse_schemes(v)?,
            "signature_prefix" => self.signature_prefix = header_name(v)?,
            "body_signature_header" => self.body_signature_header = header_name(v)?,
            "workers" => self.workers = parse_count(v, 1, 1024)?,
            "endpoint_concurrency" => self.endpoint_concurrency = parse_count(v, 1, 1024)?,
            "connect_timeout" => self.connect_timeout = parse_duration(v)?,
            "request_timeout" => self.request_timeout = parse_duration(v)?,
            "durability" => {
                self.durability = match v {
                    "full" => Durability::Full,
                    "normal" => Durability::Normal,
                    _ => return Err(format!("durability must be `full` or `normal`, not `{v}`")),
                }
            }
            "max_payload" => self.max_payload = parse_size(v)?,
            "max_connections_per_client" => {
                self.max_connections_per_client = parse_count(v, 0, 1_000_000)?
            }
            "max_body_memory" => self.max_body_memory = parse_size(v)?,
            "wal_alarm_size" => self.wal_alarm_size = parse_size(v)? as u64,
            "ipv6_client_prefix" => self.ipv6_client_prefix = parse_count(v, 1, 128)? as u8,
            "retention" => self.retention = parse_duration(v)?,
            "disable_after" => self.disable_after = parse_duration(v)?,
            "rotation_grace" => self.rotation_grace = parse_duration(v)?,
            "throttle_exempt" => self.throttle_exempt = parse_networks(v)?,
            "max_endpoint_concurrency" => self.max_endpoint_concurrency = parse_count(v, 1, 1024)?,
            "secret_key_file" => self.secret_key_file = Some(PathBuf::from(non_empty(v)?)),
            "operator_webhook" => {
                self.operator_webhook = match v {
                    "" | "none" => None,
                    url => Some(url.to_owned()),
                }
            }
            "trusted_proxies" => {
                self.trusted_proxies = v
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<_, _>>()?
            }
            "circuit_backoff" => self.circuit_backoff = parse_duration(v)?,
            "lease" => {
                let lease = parse_duration(v)?;
                if lease < Duration::from_secs(1) {
                    return Err("lease must be at least 1s".into());
                }
                self.lease = lease;
            }
            "otlp_endpoint" => {
                self.otlp_endpoint = match v {
                    "" | "none" => None,
                    url if url.starts_with("http://") || url.starts_with("https://") => {
                        Some(url.to_owned())
                    }
                    other => {
                        return Err(format!(
                            "expected an http:// or https:// URL (an OTLP/HTTP collector, \
                             e.g. http://127.0.0.1:4318) or `none`, not `{other}`"
                        ))
                    }
                }
            }
            "extra_ca_file" => match v {
                "" | "none" => {
                    self.extra_ca_file = None;
                    self.extra_roots = Vec::new();
                }
                path => {
                    let pem = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the CA bundle {path}: {e}"))?;
                    let bundle = crate::domain::CaBundle::parse(path, &pem)?;
                    self.extra_roots = bundle.ders();
                    self.extra_ca_file = Some(PathBuf::from(path));
                }
            },
            "proxy" => {
                self.proxy = match v {
                    "" | "none" => None,
                    url => Some(crate::domain::ProxyUrl::parse(url)?),
                }
            }
            "no_proxy" => self.no_proxy = crate::domain::NoProxy::parse(v),
            "circuit_threshold" => self.circuit_threshold = parse_count(v, 0, 1000)? as u32,
            "circuit_failure_rate" => self.circuit_failure_rate = parse_share(v)?,
            "circuit_min_attempts" => {
                self.circuit_min_attempts = parse_count(v, 1, 100_000)? as u32
            }
            "circuit_window" => {
                let window = parse_duration(v)?;
                if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
                    return Err("circuit_window must be from 1s to 24h".into());
                }
                self.circuit_window = window;
            }
            "rate_limit" => {
                self.rate_limit = match v {
                    "" | "none" => None,
                    v => Some(
                        v.parse::<f64>()
                            .map_err(|_| format!("expected requests per second, not `{v}`"))
                            .and_then(parse_rate_limit)?,
                    ),
                }
            }
            _ => return Err(format!("unknown configuration key `{key}`")),
        }
        Ok(())
    }
}

/// A comma list of addresses and networks (`10.0.0.0/8, ::1`).
fn parse_networks(v: &str) -> Result<Vec<Cidr>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Cidr::parse)
        .collect()
}

/// The shortest admin token accepted from the configuration.
pub const MIN_ADMIN_TOKEN: usize = 32;

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(86_400 * n)
}

fn non_empty(v: &str) -> Result<&str, String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v)
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, not `{v}`")),
    }
}

fn parse_count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, not `{v}`"
        )),
    }
}

/// A share from 0 (exclusive) to 1: `0.9` or `90%`. A rate of 0 would open every circuit
/// at its first failure, so it is refused.
fn parse_share(v: &str) -> Result<f64, String> {
    let share = match v.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => v.parse::<f64>(),
    };
    match share {
        Ok(s) if s > 0.0 && s <= 1.0 => Ok(s),
        _ => Err(format!(
            "expected a share above 0 and at most 1 (`0.9` or `90%`), not `{v}`"
        )),
    }
}

fn header_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!("`{v}` is not a valid HTTP header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let pg =
            Database::parse("postgres://herald:hunter2@db.internal:5432/herald?sslmode=require");
        assert!(matches!(pg, Database::Postgres(_)));
        assert_eq!(
            pg.to_string(),
            "postgres://herald:***@db.internal:5432/herald?sslmode=require"
        );
        assert!(matches!(
            Database::parse("postgresql://localhost/herald"),
            Database::Postgres(_)
        ));
        assert_eq!(
            Database::parse("sqlite:/var/lib/herald/herald.db"),
            Database::Sqlite(PathBuf::from("/var/lib/herald/herald.db"))
        );
        assert_eq!(
            Database::parse("./herald.db"),
            Database::Sqlite(PathBuf::from("./herald.db"))
        );
    }

    #[test]
    fn toml_and_env_layers() {
        let mut c = Config::default();
        c.apply_toml("listen = \"0.0.0.0:9000\"\nworkers = 4\nretry_schedule = [\"1s\", \"2s\"]\nallow_private_targets = true")
            .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.workers, 4);
        assert_eq!(
            c.retry_schedule,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert!(c.allow_private_targets);
        let env = vec![
            ("HERALD_WORKERS".to_string(), "7".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        c.apply_env(env.into_iter()).unwrap();
        assert_eq!(c.workers, 7);
    }

    #[test]
    fn short_admin_tokens_and_bad_proxies_are_refused() {
        let mut c = Config::default();
        let err = c.set("admin_token", "sixteen-chars-xx").unwrap_err();
        assert!(err.contains("at least 32 characters"), "{err}");
        c.set("admin_token", &"x".repeat(32)).unwrap();
        c.set("trusted_proxies", "10.0.0.0/8, ::1").unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.set("trusted_proxies", "proxy.local").is_err());
        assert_eq!(c.ipv6_client_prefix, 64);
        c.set("ipv6_client_prefix", "56").unwrap();
        assert_eq!(c.ipv6_client_prefix, 56);
        assert!(c.set("ipv6_client_prefix", "129").is_err());
        assert!(c.set("ipv6_client_prefix", "0").is_err());
    }

    #[test]
    fn circuit_keys_are_checked() {
        let mut c = Config::default();
        c.set("circuit_failure_rate", "0.95").unwrap();
        assert_eq!(c.circuit_failure_rate, 0.95);
        c.set("circuit_failure_rate", "80%").unwrap();
        assert!((c.circuit_failure_rate - 0.8).abs() < 1e-12);
        for bad in ["0", "1.5", "-0.1", "ninety", "120%"] {
            assert!(c.set("circuit_failure_rate", bad).is_err(), "{bad}");
        }
        c.apply_toml("circuit_failure_rate = 0.75").unwrap();
        assert_eq!(c.circuit_failure_rate, 0.75);
        c.set("circuit_min_attempts", "50").unwrap();
        assert_eq!(c.circuit_min_attempts, 50);
        assert!(c.set("circuit_min_attempts", "0").is_err());
        c.set("circuit_window", "2m").unwrap();
        assert_eq!(c.circuit_window, Duration::from_secs(120));
        assert!(c.set("circuit_window", "500ms").is_err());
        assert!(c.set("circuit_window", "2d").is_err());
    }

    #[test]
    fn otlp_endpoint_is_a_url_or_none() {
        let mut c = Config::default();
        assert_eq!(c.otlp_endpoint, None, "tracing is off by default");
        c.set("otlp_endpoint", "http://127.0.0.1:4318").unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        let err = c.set("otlp_endpoint", "collector:4318").unwrap_err();
        assert!(err.contains("http:// or https://"), "{err}");
        c.set("otlp_endpoint", "none").unwrap();
        assert_eq!(c.otlp_endpoint, None);
    }

    #[test]
    fn file_errors_name_the_key() {
        for (text, says) in [
            ("workers = 0", "key `workers`: "),
            ("retry_schedule = \"soon\"", "key `retry_schedule`: "),
            (
                "durability = \"fast\"",
                "key `durability`: durability must be",
            ),
        ] {
            let err = Config::default().apply_toml(text).unwrap_err();
            assert!(err.starts_with(says), "{text}: {err}");
        }
        let err = Config::default().apply_toml("listne = \"x\"").unwrap_err();
        assert!(err.contains("unknown configuration key `listne`"), "{err}");
    }

    #[test]
    fn example_file_lists_every_key_with_its_default() {
        let text = include_str!("../config.example.toml");
        let mut c = Config::default();
        c.apply_toml(text).unwrap();
        for key in KEYS {
            assert!(
                text.contains(&format!("{key} =")),
                "config.example.toml misses {key}"
            );
        }
    }
}
