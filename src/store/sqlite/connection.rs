//! The one place that opens SQLite and sets its pragmas.
//!
//! Two kinds of connection leave here: the writer's one read-write connection, handed to
//! the writer thread (`writer.rs`), and a pool of read-only connections for every read.
//! Keeping the pragmas in one function means no code path can open the file without WAL,
//! foreign keys or the deployment's `synchronous`.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use super::Pool;
use crate::config::Durability;
use crate::store::{Result, StoreError};

/// Long enough to ride out a checkpoint or a CLI command writing beside the server.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's connection. WAL keeps readers off the writer's back; `synchronous` decides
/// whether a commit waits for fsync (FULL: an acknowledged write survives power loss).
/// Checkpoints are not run by commits (`wal_autocheckpoint = 0`) but by `checkpoint.rs`;
/// the WAL is trimmed to 64 MiB after one; the page cache is 32 MiB.
pub fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    create_private(path)?;
    warn_if_readable(path);
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // temp_store = MEMORY keeps sorts and temporary indexes off the disk the commits'
    // fsyncs wait on; the 32 MiB cache holds the hot indexes of a busy outbox.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -32768;"
    ))?;
    Ok(conn)
}

/// Creates `path` empty with mode 0600 unless it exists. The database holds what signs
/// sessions and every endpoint's secret, so only Herald's user may read it, whatever the
/// umask. SQLite gives the `-wal` and `-shm` files it creates later the mode of the main
/// file, so this one call covers all three; `backup` uses it for its copy too.
pub fn create_private(path: &Path) -> Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Open(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// An existing database is left as its owner set it, but a readable one is worth a warning:
/// whoever can copy it can read endpoint secrets.
fn warn_if_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                db = %path.display(),
                mode = format!("{mode:o}"),
                "the database file is readable by other users; it holds secrets: chmod 600 it \
                 (and its -wal and -shm files)"
            );
        }
    }
}

/// A plain connection beside the writer (the checkpointer, backup's `VACUUM INTO`): WAL is
/// a property of the file, set once by the writer, so it needs no pragmas of its own.
pub fn open_plain(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Read-only connections: a bug in a read path cannot write.
pub fn read_pool(path: &Path) -> Result<Pool> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.execute_batch("PRAGMA foreign_keys = ON;")
        });
    // WAL lets every reader run at once beside the writer, so the size bounds memory (each
    // connection keeps its own page cache) rather than concurrency on the file.
    Ok(r2d2::Pool::builder()
        .max_size(16)
        .min_idle(Some(1))
        .build(manager)?)
}
