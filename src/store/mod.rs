//! The only code that knows SQL.
//!
//! Reads go through an r2d2 pool of read-only connections (WAL lets them run beside the
//! writer). Every write goes through the single writer thread in `writer.rs`, which batches
//! concurrent writes into one transaction per commit. Handlers and the engine call named
//! functions (`store.publish(..)`, `store.claim_due(..)`); that narrow surface is what a
//! PostgreSQL backend would implement later.

mod connection;
pub mod deliveries;
pub mod endpoints;
pub mod event_types;
pub mod events;
mod migrate;
pub mod outbox;
pub mod page;
pub mod pages;
pub mod settings;
pub mod tenants;
mod writer;

use std::path::Path;
use std::sync::Arc;

use r2d2_sqlite::SqliteConnectionManager;

use crate::config::Durability;
pub use deliveries::Delivery;
pub use events::Event;
pub use page::{Cursor, Page};
pub use writer::WriterStats;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the writer thread has stopped")]
    WriterGone,
    #[error("{0}")]
    Open(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the database: cheap to clone, shared by the API, the pages and the engine.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    writer: Arc<writer::Writer>,
    path: Arc<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database file, migrates it, and starts the writer.
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        let mut conn = connection::open_writer(path, durability)?;
        migrate::migrate(&mut conn)?;
        let pool = connection::read_pool(path)?;
        let writer = Arc::new(writer::Writer::start(conn));
        Ok(Store {
            pool,
            writer,
            path: Arc::new(path.to_owned()),
        })
    }

    /// Runs `f` on a pooled read-only connection, on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&*pool.get()?))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a pooled read-only connection on the calling thread (engine, CLI).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        f(&*self.pool.get()?)
    }

    /// Queues `f` for the writer thread; resolves once its transaction has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Like `write`, blocking the calling thread (engine workers, CLI).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Online backup into `dest` with `VACUUM INTO`, a consistent snapshot taken by a reader.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        let dest = dest.to_string_lossy().into_owned();
        let conn = connection::open_plain(&self.path)?;
        conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }
}
