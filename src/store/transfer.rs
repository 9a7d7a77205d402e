//! `herald migrate --to postgres://…`: a SQLite deployment moves to PostgreSQL whole.
//!
//! The only code that knows both backends' SQL. It reads the SQLite file read-only inside
//! one read transaction (WAL gives it a consistent snapshot, so the server may keep running
//! while it reads, though publishes after the snapshot stay behind), and writes the rows
//! into a PostgreSQL database that holds nothing yet, in batched INSERTs inside one
//! transaction: a failure leaves the target as empty as it was, and running the command
//! again is the way to resume.
//!
//! Rows keep their ids, so links, cursors and receivers' records (`webhook-id`) still name
//! the same things; endpoint secrets are copied sealed, as stored, so the target needs the
//! same secret key. Afterwards each identity sequence continues past the highest id the
//! SQLite file ever handed out (AUTOINCREMENT never reuses one; neither does this).

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;
use rusqlite::{OpenFlags, OptionalExtension};

use super::endpoint_settings::{self, ColumnType};
use super::postgres::{migrate, Target};
use super::{Result, StoreError};
use crate::secrets::secret_key::SecretKey;

/// The SQLite schema version this copy understands: this binary's, whose tables and
/// columns are the PostgreSQL schema's of the same binary. (An endpoint's settings travel
/// as one list, `endpoint_settings::COLUMNS`, so a migration that adds a setting needs
/// nothing here; one that adds any other column adds it to `TABLES`.)
fn sqlite_version() -> i64 {
    super::sqlite::migrate::latest() as i64
}
/// Rows per INSERT statement (a statement takes at most 65,535 parameters).
const BATCH_ROWS: usize = 1_000;

/// How a column travels: SQLite stores every integer as 64 bits; PostgreSQL's `integer`
/// columns take 32.
#[derive(Clone, Copy)]
enum Kind {
    Bigint,
    Int,
    Real,
    Text,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// An endpoint's settings: their columns are listed once, in `endpoint_settings`.
    settings: &'static [(&'static str, ColumnType)],
    /// The primary key the copy walks in order.
    order: &'static str,
    /// The identity column whose sequence continues after the copy.
    identity: Option<&'static str>,
    /// What a row in the target conflicts with (rows the target's migration created).
    on_conflict: Option<&'static str>,
}

use Kind::*;

impl Table {
    /// Every column copied, with how it travels.
    fn all_columns(&self) -> Vec<(&'static str, Kind)> {
        let settings = self.settings.iter().map(|(name, ty)| {
            let kind = match ty {
                ColumnType::Text => Text,
                ColumnType::Bigint => Bigint,
                ColumnType::Real => Real,
            };
            (*name, kind)
        });
        self.columns.iter().copied().chain(settings).collect()
    }
}

/// Parents before children, so foreign keys hold at every insert.
const TABLES: &[Table] = &[
    // A target Herald was started on once already holds settings rows (they do not make
    // it "not empty"): the file's values win, since they describe this deployment.
    Table {
        name: "settings",
        columns: &[("key", Text), ("value", Text)],
        settings: &[],
        order: "key",
        identity: None,
        on_conflict: Some("(key) DO UPDATE SET value = excluded.value"),
    },
    Table {
        name: "tenants",
        // `rowid` is SQLite's implicit one: the order lists page by.
        columns: &[
            ("id", Text),
            ("name", Text),
            ("created_at", Bigint),
            ("rowid", Bigint),
        ],
        settings: &[],
        order: "rowid",
        identity: Some("rowid"),
        // The migration creates the `default` tenant; the file's one replaces it whole so
        // its rowid (and with it the list order) is the file's.
        on_conflict: Some(
            "(id) DO UPDATE SET name = excluded.name, created_at = excluded.created_at, \
             rowid = excluded.rowid",
        ),
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Bigint),
            ("tenant_id", Text),
            ("name", Text),
            ("prefix", Text),
            ("key_hash", Text),
            ("created_at", Bigint),
            ("revoked_at", Bigint),
        ],
        settings: &[],
        order: "id",
        identity: Some("id"),
        on_conflict: None,
    },
    Table {
        name: "event_types",
        columns: &[
            ("name", Text),
            ("description", Text),
            ("example", Text),
            ("schema", Text),
            ("created_at", Bigint),
            ("rowid", Bigint),
        ],
        settings: &[],
        order: "rowid",
        identity: Some("rowid"),
        on_conflict: None,
    },
    Table {
        name: "endpoints",
        columns: &[
            ("id", Bigint),
            ("tenant_id", Text),
            ("disabled_reason", Text),
            ("secret", Text),
            ("previous_secret", Text),
            ("previous_secret_until", Bigint),
            ("failing_since", Bigint),
            ("created_at", Bigint),
            ("updated_at", Bigint),
            ("last_attempt_at", Bigint),
            ("consecutive_failures", Int),
            ("circuit_opened_at", Bigint),
            ("circuit_next_probe", Bigint),
            ("circuit_backoff_ms", Bigint),
            ("window_start", Bigint),
            ("window_succeeded", Int),
            ("window_failed", Int),
            ("window_prev_succeeded", Int),
            ("window_prev_failed", Int),
            ("kind", Text),
            ("client_cert_warned", Text),
        ],
        settings: &endpoint_settings::COLUMNS,
        order: "id",
        identity: Some("id"),
        on_conflict: None,
    },
    Table {
        name: "events",
        columns: &[
            ("seq", Bigint),
            ("id", Text),
            ("tenant_id", Text),
            ("event_type", Text),
            ("body", Text),
            ("idempotency_key", Text),
            ("created_at", Bigint),
            ("traceparent", Text),
        ],
        settings: &[],
        order: "seq",
        identity: Some("seq"),
        on_conflict: None,
    },
    // Leases are not copied: SQLite's claims live in one process's memory, and a delivery
    // in flight when the file was read is simply due again on PostgreSQL (at-least-once).
    Table {
        name: "deliveries",
        columns: &[
            ("id", Bigint),
            ("event_seq", Bigint),
            ("endpoint_id", Bigint),
            ("tenant_id", Text),
            ("status", Text),
            ("attempts", Int),
            ("round_start", Int),
            ("next_attempt_at", Bigint),
            ("last_status_code", Int),
            ("last_error", Text),
            ("created_at", Bigint),
            ("updated_at", Bigint),
            ("sent_at", Bigint),
            ("sent_duration_ms", Bigint),
            ("sent_status_code", Int),
            ("sent_response_headers", Text),
            ("sent_response_body", Text),
        ],
        settings: &[],
        order: "id",
        identity: Some("id"),
        on_conflict: None,
    },
    Table {
        name: "attempts",
        columns: &[
            ("id", Bigint),
            ("delivery_id", Bigint),
            ("started_at", Bigint),
            ("duration_ms", Bigint),
            ("status_code", Int),
            ("error", Text),
            ("response_headers", Text),
            ("response_body", Text),
        ],
        settings: &[],
        order: "id",
        identity: Some("id"),
        on_conflict: None,
    },
    // The overview's rollups: on PostgreSQL each row also names the replica that wrote it,
    // '' (the column's default) for what came from the file.
    Table {
        name: "activity_hours",
        columns: &[("hour", Bigint), ("succeeded", Bigint), ("failed", Bigint)],
        settings: &[],
        order: "hour",
        identity: None,
        on_conflict: None,
    },
    Table {
        name: "latency_hours",
        columns: &[("hour", Bigint), ("bucket", Int), ("count", Bigint)],
        settings: &[],
        order: "hour, bucket",
        identity: None,
        on_conflict: None,
    },
];

/// What was copied: rows per table, in copy order.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies the SQLite file at `source` into the (empty) PostgreSQL database at `url`.
pub fn sqlite_to_postgres(source: &Path, url: &str) -> Result<Copied> {
    let sqlite = open_source(source)?;
    let target = Target::parse(url)?;
    let mut pg = target.connect()?;
    // Migrated outside the copy's transaction: the schema stays even when the copy fails,
    // and a rerun finds it in place.
    migrate::migrate(&mut pg)?;
    let mut tx = pg.transaction()?;
    refuse_unless_empty(&mut tx)?;
    // One read transaction: every table is read from the same snapshot.
    sqlite.execute_batch("BEGIN")?;
    let mut copied = Vec::new();
    for table in TABLES {
        let rows = copy_table(&sqlite, &mut tx, table)?;
        if let Some(column) = table.identity {
            continue_sequence(&sqlite, &mut tx, table.name, column)?;
        }
        copied.push((table.name, rows));
    }
    // The read ends before the target commits: a commit that fails still leaves the
    // target empty, and the source was never written.
    sqlite.execute_batch("COMMIT")?;
    tx.commit()?;
    Ok(copied)
}

fn open_source(path: &Path) -> Result<rusqlite::Connection> {
    if !path.exists() {
        return Err(StoreError::Open(format!(
            "no SQLite database at {}",
            path.display()
        )));
    }
    // Read-only: the copy must never be able to change the deployment it copies, even
    // when it is pointed at a running server's file.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
    // A running server may hold a lock for a moment (WAL recovery, a checkpoint's
    // truncation): wait rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != sqlite_version() {
        return Err(StoreError::Open(format!(
            "{} is at schema version {version}; this Herald copies version {}. \
             Start this Herald on it once (`herald serve` migrates it), stop it, and run \
             `herald migrate` again",
            path.display(),
            sqlite_version()
        )));
    }
    Ok(conn)
}

/// Fails unless `key` opens the endpoint secrets sealed in the SQLite file at `source`
/// (the copy keeps them sealed: the new database needs this same key).
pub fn check_key(source: &Path, key: &SecretKey) -> Result<()> {
    let sqlite = open_source(source)?;
    let sealed: Option<(i64, String, String)> = sqlite
        .query_row(
            "SELECT id, tenant_id, secret FROM endpoints
             WHERE secret LIKE 'sealed1:%' OR secret LIKE 'sealed2:%' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let open = |(id, tenant, s): (i64, String, String)| {
        key.open(&s, &crate::secrets::secret_key::endpoint_owner(&tenant, id))
            .or_else(|_| key.open_legacy(&s))
    };
    match sealed.map(open) {
        Some(Err(_)) => Err(StoreError::Open(
            "the configured secret key does not open the endpoints' secrets; point \
             secret_key_file (or HERALD_SECRET_KEY) at the key this database was served with"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// A target with data of its own would mix two deployments' ids: refuse it.
fn refuse_unless_empty(tx: &mut postgres::Transaction<'_>) -> Result<()> {
    let row = tx.query_one(
        // The `default` tenant is the migration's own; settings are not counted either.
        "SELECT (SELECT count(*) FROM tenants WHERE id <> 'default'),
                (SELECT count(*) FROM api_keys),
                (SELECT count(*) FROM event_types),
                (SELECT count(*) FROM endpoints),
                (SELECT count(*) FROM events),
                (SELECT count(*) FROM deliveries)",
        &[],
    )?;
    let names = [
        "tenants",
        "API keys",
        "event types",
        "endpoints",
        "events",
        "deliveries",
    ];
    let found: Vec<String> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let n: i64 = row.get(i);
            (n > 0).then(|| format!("{n} {name}"))
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "the target database is not empty ({}); `herald migrate` copies into an empty database only",
        found.join(", ")
    )))
}

/// Streams one table in primary-key order, `BATCH_ROWS` rows per INSERT.
fn copy_table(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &Table,
) -> Result<u64> {
    let columns = table.all_columns();
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut stmt = sqlite.prepare(&format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        table.name,
        table.order
    ))?;
    // Streamed row by row: a large attempts table never sits in memory whole, only one
    // batch of it.
    let mut rows = stmt.query([])?;
    let mut batch: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut in_batch = 0;
    let mut copied = 0u64;
    while let Some(row) = rows.next()? {
        for (i, (name, kind)) in columns.iter().enumerate() {
            batch.push(value(row.get_ref(i)?, *kind, table.name, name)?);
        }
        in_batch += 1;
        if in_batch == BATCH_ROWS {
            insert(tx, table, &names, &batch, in_batch)?;
            copied += in_batch as u64;
            batch.clear();
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        insert(tx, table, &names, &batch, in_batch)?;
        copied += in_batch as u64;
    }
    Ok(copied)
}

fn insert(
    tx: &mut postgres::Transaction<'_>,
    table: &Table,
    names: &[&str],
    values: &[Box<dyn ToSql + Sync>],
    rows: usize,
) -> Result<()> {
    let width = names.len();
    // Table and column names come from the constant table list, never from input, so
    // formatting them into the statement is safe; every value is a bound parameter.
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        table.name,
        names.join(", "),
        tuples.join(", ")
    );
    if let Some(conflict) = table.on_conflict {
        sql.push_str(" ON CONFLICT ");
        sql.push_str(conflict);
    }
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
    tx.execute(&sql, &params)
        .map_err(|e| StoreError::Backend(format!("copying {}: {e}", table.name)))?;
    Ok(())
}

/// One SQLite value as the PostgreSQL column wants it. SQLite's tables are STRICT, so a
/// mismatch means a file damaged by hand: named, not guessed around.
fn value(v: ValueRef<'_>, kind: Kind, table: &str, column: &str) -> Result<Box<dyn ToSql + Sync>> {
    let wrong = || {
        StoreError::Backend(format!(
            "{table}.{column} holds a value of an unexpected type ({:?})",
            v.data_type()
        ))
    };
    Ok(match (kind, v) {
        (Bigint, ValueRef::Null) => Box::new(None::<i64>),
        (Bigint, ValueRef::Integer(n)) => Box::new(Some(n)),
        (Int, ValueRef::Null) => Box::new(None::<i32>),
        // Refused, not truncated: a wrapped attempt count would be a silent lie.
        (Int, ValueRef::Integer(n)) => Box::new(Some(i32::try_from(n).map_err(|_| wrong())?)),
        (Real, ValueRef::Null) => Box::new(None::<f64>),
        (Real, ValueRef::Real(x)) => Box::new(Some(x)),
        (Real, ValueRef::Integer(n)) => Box::new(Some(n as f64)),
        (Text, ValueRef::Null) => Box::new(None::<String>),
        (Text, ValueRef::Text(t)) => {
            Box::new(Some(String::from_utf8(t.to_vec()).map_err(|_| wrong())?))
        }
        _ => return Err(wrong()),
    })
}

/// Sets `table`'s identity sequence so the next id is past every id SQLite handed out:
/// the highest in the table, or higher when the newest rows were deleted (AUTOINCREMENT
/// remembers those in `sqlite_sequence`).
fn continue_sequence(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    column: &str,
) -> Result<()> {
    let max: Option<i64> =
        sqlite.query_row(&format!("SELECT max({column}) FROM {table}"), [], |r| {
            r.get(0)
        })?;
    let handed_out: Option<i64> = sqlite
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [table],
            |r| r.get(0),
        )
        .ok();
    // `.filter(> 0)`: an empty table keeps the sequence's start; setval(…, 0) is an error.
    let Some(last) = max.into_iter().chain(handed_out).max().filter(|n| *n > 0) else {
        return Ok(());
    };
    tx.execute(
        "SELECT setval(pg_get_serial_sequence($1, $2), $3)",
        &[&table, &column, &last],
    )?;
    Ok(())
}
