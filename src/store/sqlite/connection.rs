//! The one place that opens SQLite and sets its pragmas.

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
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
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

/// A plain connection for one-off jobs (backup).
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
    Ok(r2d2::Pool::builder()
        .max_size(16)
        .min_idle(Some(1))
        .build(manager)?)
}
