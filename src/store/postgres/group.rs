//! Group commit of publishes on PostgreSQL: the requests that arrive while a batch commits
//! share the next batch's transaction, as on SQLite's writer thread (`sqlite/writer.rs`).
//!
//! The API hands each publish to a channel. `COMMITTERS` threads each take the first
//! waiting request and every one already queued behind it (up to `MAX_EVENTS` events), run
//! them as one transaction on a pooled connection (`events::publish`: one statement per
//! table for the whole batch) and answer every request of the batch once `COMMIT` has
//! returned. No delay is added to wait for company: while one batch's commit waits on
//! PostgreSQL's WAL flush, new requests queue up and form the next batch by themselves, so
//! under load a dozen or more publishes share one transaction, one advisory-lock statement, one
//! insert per table and one WAL flush instead of paying each.
//!
//! Why an acknowledged publish survives `kill -9` (of Herald or of PostgreSQL): a request
//! is answered only after `COMMIT` returned, and with PostgreSQL's default
//! `synchronous_commit = on` the server returns from COMMIT only once the commit record is
//! flushed to its WAL on disk. A crash before that loses the whole batch and no request of
//! it has been answered (each sees its connection fail: 503, retry with the same
//! `Idempotency-Key`); a crash after it loses only answers, never rows.
//!
//! One request must not fail the others: a tenant that does not exist is answered
//! `NotFound` inside the batch, writing nothing; any other failure before `COMMIT` was sent
//! (a statement error, an idempotency key held too long) rolls the batch back and runs
//! each of its requests again in a transaction of its own, so a rejected request changes
//! nothing and an accepted one is committed. A failure *at* `COMMIT` on a connection that
//! died is not retried: the commit may have happened, and running the requests again
//! would store their events twice; they are answered the error, as a lone publish was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use postgres::Client;
use tokio::sync::oneshot;

use super::events::{self, Answer, Publish};
use super::{connection, liveness, on_connection};
use crate::store::{Result, StoreError};

/// Batches committing at once per replica. Two, so one batch waiting on a lock (an
/// idempotency key another replica holds, a disable of one of its tenants) or on its WAL
/// flush does not hold every publish of the replica behind it, while each batch stays
/// large; more would only split the batches smaller and cost pool connections.
const COMMITTERS: usize = 2;

/// Caps one transaction's work (and a request's wait behind the others of its batch): a
/// batch stops taking requests once it holds this many events (a single request larger
/// than that is a batch of its own).
const MAX_EVENTS: usize = 1_000;

struct Job {
    publish: Publish,
    reply: oneshot::Sender<Answer>,
}

/// Transactions committed and operations in them, for /metrics (`writer_stats`).
#[derive(Default)]
pub struct Counters {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
}

pub struct Publisher {
    sender: Mutex<mpsc::Sender<Job>>,
}

impl Publisher {
    pub fn start(
        pool: connection::Pool,
        live: Arc<liveness::Liveness>,
        counters: Arc<Counters>,
    ) -> Result<Publisher> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..COMMITTERS {
            let (pool, live, counters, receiver) = (
                pool.clone(),
                live.clone(),
                counters.clone(),
                receiver.clone(),
            );
            // Each ends when the store is dropped (the sender with it).
            super::spawn(&format!("herald-publish-{n}"), move || {
                run(&pool, &live, &counters, &receiver)
            })?;
        }
        Ok(Publisher {
            sender: Mutex::new(sender),
        })
    }

    /// Queues a publish; answers once the transaction holding it has committed.
    pub async fn publish(&self, publish: Publish) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.sender
            .lock()
            .map_err(|_| StoreError::WriterGone)?
            .send(Job { publish, reply })
            .map_err(|_| StoreError::WriterGone)?;
        // A dropped reply (a committer that panicked) is a write that did not happen.
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run(
    pool: &connection::Pool,
    live: &liveness::Liveness,
    counters: &Counters,
    receiver: &Mutex<mpsc::Receiver<Job>>,
) {
    // A connection per batch, given back to the pool before the batch is answered: one
    // held past its answers would leave the caller's next request (a `/readyz` just after
    // the database came back) to meet the pool's stale connections, each of which marks
    // the database down again.
    while let Some(batch) = next_batch(receiver) {
        let publishes: Vec<&Publish> = batch.iter().map(|j| &j.publish).collect();
        let outcome = on_connection(pool, live, |c| commit(c, &publishes));
        let answers = match outcome {
            Ok(answers) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .jobs
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                answers
            }
            Err(Failed::AtCommit(e)) => {
                tracing::warn!(error = %e, requests = batch.len(), "a publish batch's commit failed");
                publishes.iter().map(|_| Err(copy(&e))).collect()
            }
            Err(Failed::Before(e)) if batch.len() == 1 => vec![Err(e)],
            Err(Failed::Before(e)) => {
                // Rolled back whole (COMMIT was never sent): each request alone, so only
                // the one at fault is refused.
                tracing::debug!(error = %e, requests = batch.len(), "a publish batch failed; publishing its requests one by one");
                publishes
                    .iter()
                    .map(|p| {
                        let alone = on_connection(pool, live, |c| commit(c, &[p]));
                        if alone.is_ok() {
                            counters.commits.fetch_add(1, Ordering::Relaxed);
                            counters.jobs.fetch_add(1, Ordering::Relaxed);
                        }
                        match alone {
                            Ok(mut answers) => answers.remove(0),
                            Err(Failed::Before(e) | Failed::AtCommit(e)) => Err(e),
                        }
                    })
                    .collect()
            }
        };
        // Answered only now, after COMMIT returned: this is what every 202 waits for.
        for (job, answer) in batch.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// The first waiting request and those queued behind it; `None` once the store is gone.
fn next_batch(receiver: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    // Held while gathering only: the other committer gathers the next batch while this one
    // commits.
    let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
    let first = receiver.recv().ok()?;
    let mut events = first.publish.events.len();
    let mut batch = vec![first];
    // try_recv, not a timed wait: the batch is whatever queued while the last commit was
    // under way, so a lone publish is never delayed to wait for company.
    while events < MAX_EVENTS {
        match receiver.try_recv() {
            Ok(job) => {
                events += job.publish.events.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Why a batch did not commit.
enum Failed {
    /// Before COMMIT was sent: nothing of the batch was written.
    Before(StoreError),
    /// At COMMIT: on a connection that died, the commit may or may not have happened.
    AtCommit(StoreError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Failed {
        Failed::Before(e)
    }
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Failed {
        Failed::Before(e.into())
    }
}

/// One batch, one transaction. A panic in it (a bug) is a failed batch, rolled back as the
/// transaction unwinds, so the committer lives on and the requests are tried alone.
fn commit(c: &mut Client, batch: &[&Publish]) -> std::result::Result<Vec<Answer>, Failed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| in_transaction(c, batch)))
        .unwrap_or_else(|_| {
            Err(Failed::Before(StoreError::Commit(
                "a publish batch panicked; it was rolled back".into(),
            )))
        })
}

fn in_transaction(c: &mut Client, batch: &[&Publish]) -> std::result::Result<Vec<Answer>, Failed> {
    let mut tx = c.transaction()?;
    let answers = events::publish(&mut tx, batch)?;
    match tx.commit() {
        Ok(()) => Ok(answers),
        // The server answered the COMMIT with an error: it rolled the transaction back.
        Err(e) if !e.is_closed() => Err(Failed::Before(e.into())),
        Err(e) => Err(Failed::AtCommit(e.into())),
    }
}

/// An error answered to every request of a batch whose commit failed.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full => StoreError::Full,
        StoreError::Unreachable => StoreError::Unreachable,
        other => StoreError::Commit(other.to_string()),
    }
}
