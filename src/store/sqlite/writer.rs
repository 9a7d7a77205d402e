//! The writer thread: every write in Herald runs here, batched into group commits.
//!
//! Callers submit closures. The thread takes the first waiting job, then every job already
//! queued behind it (up to `MAX_BATCH`), and runs them all inside one `BEGIN IMMEDIATE` …
//! `COMMIT`. Each job runs inside its own SAVEPOINT, so a job that fails (a constraint, a
//! validation inside the transaction) is rolled back alone and the others still commit.
//!
//! Why this is safe: a caller is answered only after `COMMIT` has returned, and with
//! `synchronous=FULL` SQLite returns from COMMIT only once the WAL is fsynced. So anything a
//! caller acknowledges to a client is on disk, and many concurrent publishes share one fsync
//! instead of paying one each. No batching delay is added: while one commit waits on the
//! disk, new jobs queue up and form the next batch by themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{Result, StoreError, WriterStats};

/// Caps the work (and latency) of one transaction: a caller at the back of a full batch
/// waits for every job before it plus one fsync, and 512 small jobs still commit in
/// milliseconds while sharing that fsync.
const MAX_BATCH: usize = 512;

/// Called after the batch's COMMIT (Ok) or its failure (Err) with the job's own result.
type Done = Box<dyn FnOnce(std::result::Result<(), CommitFailed>) + Send>;

/// Why a batch's COMMIT failed, for every caller in it.
#[derive(Clone)]
struct CommitFailed {
    /// The disk is full: the callers answer 503 `storage_full`, and retry later.
    full: bool,
    /// An fsync failed: the writer has stopped for good (`fail_stop`).
    stopped: bool,
    message: String,
}
/// A job and whether its caller needs it on disk before being answered.
struct Job {
    run: Box<dyn FnOnce(&Connection) -> Done + Send>,
    durable: bool,
}

pub struct Writer {
    sender: Mutex<mpsc::Sender<Job>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
    /// The last durable commit failed for want of space; cleared by the next one that
    /// succeeds.
    full: std::sync::atomic::AtomicBool,
    /// An fsync failed: no write is run or acknowledged again in this process.
    stopped: std::sync::atomic::AtomicBool,
}

impl Writer {
    /// `full`: the deployment asked for `durability = full` (fsync at every durable commit).
    pub fn start(conn: Connection, full: bool) -> Writer {
        let (sender, receiver) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("herald-writer".into())
            .spawn(move || {
                // The writer is every write's only path: if it ends for any reason but the
                // store being dropped, Herald must not go on answering 202.
                let _critical = crate::lifecycle::Critical::new("writer");
                run(conn, receiver, &thread_counters, full)
            })
            .expect("spawn writer thread");
        Writer {
            sender: Mutex::new(sender),
            counters,
        }
    }

    /// Queues `f`; the receiver yields its result once the transaction holding it committed.
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.submit_job(f, true)
    }

    /// Like `submit`, for writes whose loss in a power cut costs nothing a client was
    /// promised: attempt records (the delivery is then sent again, at-least-once) and
    /// heartbeats. A batch of only such jobs commits without waiting for fsync; the next
    /// durable commit's fsync covers their WAL frames too, since the WAL is one file
    /// written in order. A `kill -9` loses none of them either way: the OS has the pages.
    pub fn submit_relaxed<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.submit_job(f, false)
    }

    fn submit_job<T, F>(&self, f: F, durable: bool) -> Result<oneshot::Receiver<Result<T>>>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, receiver) = oneshot::channel();
        let run = Box::new(move |conn: &Connection| -> Done {
            let outcome = in_savepoint(conn, f);
            Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => outcome,
                    Err(CommitFailed { stopped: true, .. }) => Err(StoreError::Stopped),
                    Err(CommitFailed { full: true, .. }) => Err(StoreError::Full),
                    Err(CommitFailed { message, .. }) => Err(StoreError::Commit(message)),
                };
                let _ = reply.send(result);
            })
        });
        let job = Job { run, durable };
        if self.is_stopped() {
            return Err(StoreError::Stopped);
        }
        // A closed channel means the writer thread ended: the caller answers 503 rather than
        // pretending the write is queued.
        let sender = self.sender.lock().map_err(|_| StoreError::WriterGone)?;
        sender.send(job).map_err(|_| StoreError::WriterGone)?;
        Ok(receiver)
    }

    /// Whether an fsync failed: every write is refused until the process restarts.
    pub fn is_stopped(&self) -> bool {
        self.counters.stopped.load(Ordering::SeqCst)
    }

    /// Whether the disk was full at the last durable commit.
    pub fn is_full(&self) -> bool {
        self.counters.full.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            ..WriterStats::default()
        }
    }
}

fn run(conn: Connection, receiver: mpsc::Receiver<Job>, counters: &Counters, full: bool) {
    let mut synchronous_full = full;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        // try_recv, not a timed wait: the batch is whatever queued while the last commit
        // was on the disk, so a lone write is never delayed to wait for company.
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Switched per batch and only on change: the pragma costs a statement, and runs of
        // relaxed batches (attempt records under load) skip the fsync each would pay.
        if full {
            let durable = batch.iter().any(|j| j.durable);
            if durable != synchronous_full {
                let pragma = if durable {
                    "PRAGMA synchronous = FULL"
                } else {
                    "PRAGMA synchronous = NORMAL"
                };
                match conn.execute_batch(pragma) {
                    Ok(()) => synchronous_full = durable,
                    Err(e) => tracing::warn!(error = %e, "cannot switch synchronous"),
                }
            }
        }
        if counters.stopped.load(Ordering::SeqCst) {
            // Queued before the fsync failed: dropped unrun (each caller's reply channel
            // closes, which it reads as "not written"), like every job after it.
            drop(batch);
            continue;
        }
        // IMMEDIATE takes the write lock up front, so a CLI command writing beside the
        // server makes this wait (busy_timeout) at BEGIN, not fail halfway through a batch.
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            // Dropping the jobs unanswered tells each caller the write did not happen.
            tracing::error!(error = %e, "cannot begin a write transaction");
            continue;
        }
        let any_durable = batch.iter().any(|j| j.durable);
        let done: Vec<Done> = batch.into_iter().map(|job| (job.run)(&conn)).collect();
        let commit = run_cached(&conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            super::on_rollback();
            CommitFailed {
                full: e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
                stopped: is_fsync_failure(&e),
                message: e.to_string(),
            }
        });
        if let Err(CommitFailed { stopped: true, .. }) = &commit {
            // Set before any caller hears of the failure, so no later write is acknowledged.
            counters.stopped.store(true, Ordering::SeqCst);
            crate::lifecycle::fail_stop("the database failed to fsync at commit");
        }
        // Only a durable commit clears `full`: a relaxed one succeeding proves little, since
        // its pages may not have reached the disk yet.
        match &commit {
            Err(failed) if failed.full => counters.full.store(true, Ordering::SeqCst),
            Ok(()) if any_durable => counters.full.store(false, Ordering::SeqCst),
            _ => {}
        }
        if commit.is_ok() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .jobs
                .fetch_add(done.len() as u64, Ordering::Relaxed);
        }
        // Answered only now, after COMMIT returned: this is the point every "accepted" in
        // the API waits for, and why an acknowledged write survives kill -9.
        for d in done {
            d(commit.clone());
        }
    }
}

/// Whether SQLite reports a failed fsync of the database, its WAL or their directory. The
/// transaction may or may not be on disk (its frames were written, the sync failed), and
/// the kernel may have dropped pages SQLite believes written: the "fsyncgate" lesson.
fn is_fsync_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|e| e.extended_code),
        Some(rusqlite::ffi::SQLITE_IOERR_FSYNC | rusqlite::ffi::SQLITE_IOERR_DIR_FSYNC)
    )
}

/// Runs one job so that its failure undoes only its own writes.
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    run_cached(conn, "SAVEPOINT job")?;
    // A panicking job must not take the only writer thread down with it (every later
    // write would fail): it is rolled back like a failed one.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
            Err(StoreError::Commit(
                "a write job panicked; it was rolled back".into(),
            ))
        });
    // ROLLBACK TO keeps the transaction open for the batch's other jobs; RELEASE then
    // folds the (now empty or successful) savepoint into it.
    if result.is_err() {
        run_cached(conn, "ROLLBACK TO job")?;
    }
    run_cached(conn, "RELEASE job")?;
    result
}

/// Transaction control runs for every job; a cached statement skips re-parsing it.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Durability;
    use crate::store::sqlite::SqliteStore;
    use crate::store::StoreError;

    #[test]
    fn a_panicking_job_is_rolled_back_and_the_writer_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db"), Durability::Normal).unwrap();
        let result: Result<(), StoreError> = store.write_raw_for_tests(|c| {
            c.execute("INSERT INTO settings (key, value) VALUES ('a', 'b')", [])?;
            panic!("a bug in a job");
        });
        assert!(matches!(result, Err(StoreError::Commit(_))), "{result:?}");
        let count: i64 = store
            .write_raw_for_tests(|c| {
                Ok(
                    c.query_row("SELECT count(*) FROM settings WHERE key = 'a'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(count, 0, "the panicking job's write was rolled back");
    }
}
