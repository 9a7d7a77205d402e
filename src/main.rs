//! The `herald` command: parse arguments, load configuration, call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::config::Config;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Self-hosted webhook delivery: one binary, one SQLite file"
)]
struct Cli {
    /// TOML configuration file (keys as in config.example.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Database: a SQLite file, or a `postgres://` URL (overrides `db` and HERALD_DB).
    #[arg(long, global = true)]
    db: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (overrides `listen` and HERALD_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage tenant API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Publish an event: `herald publish '{"event":"job.completed",...}'` (or `-` for stdin).
    Publish {
        json: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Copy the database to a new file while Herald runs.
    Backup { dest: PathBuf },
    /// Copy this SQLite deployment (`--db`) into an empty PostgreSQL database.
    Migrate {
        /// The target: `postgres://user:pass@host:port/dbname` (`?sslmode=require` for TLS).
        #[arg(long)]
        to: String,
    },
    /// Forward a poll endpoint's deliveries to a local URL (development): each is POSTed
    /// with its signature headers and exact body, and acknowledged only after a 2xx.
    Listen {
        /// The poll endpoint's id.
        #[arg(long)]
        endpoint: i64,
        /// Where each delivery is POSTed, e.g. http://127.0.0.1:3000/webhook.
        #[arg(long)]
        forward: String,
        /// The tenant's API key (or the admin token).
        #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
        key: String,
        /// Herald's base URL.
        #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Pause after a poll that found nothing, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Verify a webhook signature as a receiver would.
    Verify {
        /// standard, timestamped or body
        #[arg(long, default_value = "standard")]
        scheme: String,
        #[arg(long)]
        secret: String,
        /// The signature header's value.
        #[arg(long)]
        signature: String,
        /// webhook-timestamp / <prefix>-Timestamp value.
        #[arg(long)]
        timestamp: Option<i64>,
        /// webhook-id value (standard scheme).
        #[arg(long)]
        id: Option<String>,
        /// The raw body, or `-` for stdin.
        body: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key for a tenant; the key is printed once.
    Create {
        tenant: String,
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: coloured only on a terminal (a file or journald gets no escape
/// codes), one JSON object per line with `HERALD_LOG_FORMAT=json` for log shippers.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("HERALD_LOG_FORMAT").as_deref() == Ok("json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Ok(other) = std::env::var("HERALD_LOG_FORMAT") {
        if other != "json" && other != "text" {
            tracing::warn!(value = %other, "HERALD_LOG_FORMAT is `json` or `text`; writing text");
        }
    }
}

/// The configuration file: `--config`, else `HERALD_CONFIG`, else the one `install.sh`
/// writes (`/etc/herald/herald.toml`) when it exists — so the CLI on an installed machine
/// finds the real database without being told.
fn config_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("HERALD_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let installed = PathBuf::from("/etc/herald/herald.toml");
            installed.exists().then_some(installed)
        })
}

fn execute(cli: Cli) -> Result<(), String> {
    match cli.command {
        // `listen` talks to a running Herald over HTTP: no configuration, no database.
        Command::Listen {
            endpoint,
            forward,
            key,
            server,
            interval_ms,
        } => herald::listen::run(&herald::listen::ListenOptions {
            server,
            endpoint,
            forward,
            key,
            interval: std::time::Duration::from_millis(interval_ms),
        }),
        command => execute_local(cli.config, cli.db, command),
    }
}

/// The commands that read the configuration (and most, the database).
fn execute_local(
    config_flag: Option<PathBuf>,
    db: Option<String>,
    command: Command,
) -> Result<(), String> {
    let mut config = Config::load(config_file(config_flag).as_deref())?;
    if let Some(db) = db {
        config.db = herald::config::Database::parse(&db);
    }
    match command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            herald::memory::limit_malloc_arenas();
            actix_web::rt::System::new().block_on(herald::run(config))
        }
        Command::Tenant(TenantCommand::Create { id, name }) => {
            herald::cli::create_tenant(&config, &id, name.as_deref())
        }
        Command::Key(KeyCommand::Create { tenant, name }) => {
            herald::cli::create_key(&config, &tenant, name.as_deref())
        }
        Command::Publish {
            json,
            tenant,
            idempotency_key,
        } => herald::cli::publish(&config, &tenant, &json, idempotency_key.as_deref()),
        Command::Backup { dest } => herald::cli::backup(&config, &dest),
        Command::Migrate { to } => herald::cli::migrate(&config, &to),
        Command::Listen { .. } => Err("`herald listen` needs no configuration".into()),
        Command::Verify {
            scheme,
            secret,
            signature,
            timestamp,
            id,
            body,
        } => herald::cli::verify(
            &scheme,
            &secret,
            &signature,
            timestamp,
            id.as_deref(),
            &body,
        ),
    }
}
