//! The SQLite backend: one file, WAL, one writer thread, a pool of read-only connections.
//!
//! Reads run on pooled read-only connections (WAL lets them run beside the writer), on
//! tokio's blocking pool for the API and on the calling thread for the engine. Every write
//! goes through the writer thread (`writer.rs`), which batches concurrent writes into one
//! transaction per commit: a caller is answered only after that COMMIT returned, and with
//! `synchronous=FULL` SQLite returns from COMMIT only once the WAL is fsynced.
//!
//! Claims live in memory (`claims.rs`): one process owns the file, so a claimed delivery
//! needs no durable lease. If the process dies, nothing was written about the claim and the
//! delivery is simply due again at the next start: at-least-once, with no fsync between a
//! publish and its first attempt.

mod activity;
mod checkpoint;
mod claims;
mod connection;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
pub(crate) mod migrate;
mod operational;
mod ops;
mod outbox;
mod poll;
mod replay;
mod round;
mod settings;
mod subscriptions;
mod tenants;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::{Cursor, Page, Result, StoreError};
use crate::config::Durability;
use crate::store::flash;
use crate::store::throttle;

type Pool = r2d2::Pool<SqliteConnectionManager>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full;
        }
        StoreError::Backend(e.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Backend(format!("connection pool: {e}"))
    }
}

pub struct SqliteStore {
    pool: Pool,
    /// The dispatcher's own read connection (`engine_read`), taken from the pool once.
    engine_reads: Mutex<Option<r2d2::PooledConnection<SqliteConnectionManager>>>,
    writer: writer::Writer,
    claims: claims::Claims,
    path: PathBuf,
    checkpointer: checkpoint::Checkpointer,
    /// One process serves every page and request, so flash messages and throttle counts
    /// stay in its memory: no write per login attempt.
    flashes: Mutex<flash::Memory>,
    throttles: Mutex<throttle::Memory>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, migrates it, and starts the writer.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let mut conn = connection::open_writer(path, durability)?;
        migrate::migrate(&mut conn)?;
        let sealed = endpoints::reseal(&conn)?;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                "sealed endpoint secrets for their endpoint (stored in clear or the older way)"
            );
        }
        let pool = connection::read_pool(path)?;
        Ok(SqliteStore {
            pool,
            engine_reads: Mutex::default(),
            writer: writer::Writer::start(conn, durability == Durability::Full),
            claims: claims::Claims::default(),
            path: path.to_owned(),
            checkpointer: checkpoint::Checkpointer::start(path)?,
            flashes: Mutex::default(),
            throttles: Mutex::default(),
        })
    }

    fn flashes(&self) -> MutexGuard<'_, flash::Memory> {
        self.flashes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn throttles(&self) -> MutexGuard<'_, throttle::Memory> {
        self.throttles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a pooled read-only connection, on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&*pool.get()?))
            .await
            .map_err(|e| StoreError::Backend(format!("a read task failed: {e}")))?
    }

    /// Runs `f` on the dispatcher's read-only connection, on the calling thread. A claim
    /// round runs a handful of statements, each many times a second; on a connection of its
    /// own they stay prepared (a pooled one rotates, and the API's reads would push them
    /// out of its cache), which spares each round their parse and plan.
    fn engine_read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.engine_reads.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_none() {
            let c = self.pool.get()?;
            c.set_prepared_statement_cache_capacity(32);
            *conn = Some(c);
        }
        f(conn.as_ref().expect("set above"))
    }

    /// Runs `f` on a pooled read-only connection on the calling thread (engine, CLI).
    fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&*self.pool.get()?)
    }

    /// Queues `f` for the writer thread; resolves once its transaction has committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Like `write`, blocking the calling thread (engine threads).
    fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Like `write_blocking` for writes a power cut may lose harmlessly (see
    /// `Writer::submit_relaxed`).
    fn write_relaxed_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit_relaxed(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` in the writer with raw SQL: for tests that set up states the API cannot
    /// reach (a backdated failure, an injected fault).
    #[doc(hidden)]
    pub fn write_raw_for_tests<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_blocking(f)
    }
}

/// Runs a list query (newest first, `LIMIT cursor.limit + 1`) and cuts it into a page.
fn page<T, P: rusqlite::Params>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    cursor: Cursor,
    key: impl Fn(&T) -> i64,
) -> Result<Page<T>> {
    let rows = stmt
        .query_map(params, row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page::from_rows(rows, cursor.limit, key))
}

/// Shared with the writer so a failed commit can drop what its batch cached.
pub(crate) fn on_rollback() {
    subscriptions::invalidate();
}
