//! The recorder: writes the workers' outcomes in batches, and holds them while it cannot.
//!
//! It blocks for the first outcome, lingers a moment for more, and commits them as one
//! transaction (`Outbox::record`). Only a committed record lets its delivery's claim go, so
//! a delivery is never claimed twice while its outcome is on its way to the disk.
//!
//! When the store refuses the write (a full disk, an I/O error, PostgreSQL unreachable),
//! nothing of the batch was written and its claims stay held. The recorder keeps the
//! outcomes in memory, in order, and writes them again with an exponential back-off
//! (`FIRST_BACKOFF` doubling to `MAX_BACKOFF`); meanwhile the dispatcher claims nothing
//! (`Stall`), so the workers only finish what the board already held. A receiver therefore
//! sees no request twice because of the fault: the attempt it already got is recorded once
//! the store takes writes again. Only if the process dies first, or more than
//! `MAX_UNWRITTEN` outcomes pile up, is a delivery sent again (at-least-once, with the same
//! `webhook-id`): at most once more per delivery that was in flight or on the board.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::board::Board;
use super::due::Due;
use super::{EngineStats, Signal};
use crate::clock::Clock;
use crate::store::{AttemptRecord, Judge, Outbox, Verdict};

/// The most records one recorder transaction writes: large enough that group commit pays
/// off under load, small enough that one transaction never holds the writer for long.
const RECORD_BATCH: usize = 1024;

/// How long the recorder waits for more records before writing a batch. Short, because a
/// delivery's claim (and a FIFO endpoint's next head) is held until its record commits.
const RECORD_LINGER: Duration = Duration::from_millis(2);

/// The first wait after a refused write, doubled after each refusal.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between two tries: a store back from a fault is used within this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The most outcomes kept unwritten. The dispatcher claims nothing while any are, so only
/// what the board held can pile up (`workers × 4` claims); this bound is for a board larger
/// than that (none today) and keeps memory flat whatever happens. Past it, the oldest
/// claims are given back and those deliveries are sent again.
const MAX_UNWRITTEN: usize = 16 * RECORD_BATCH;

/// Set while outcomes wait to be written: the dispatcher claims nothing meanwhile.
#[derive(Default)]
pub struct Stall(AtomicBool);

impl Stall {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
}

pub struct Recorder {
    pub outbox: Arc<dyn Outbox>,
    pub board: Arc<Board>,
    pub clock: Arc<dyn Clock>,
    pub judge: Arc<dyn Judge>,
    pub signals: mpsc::Sender<Signal>,
    pub stats: Arc<EngineStats>,
    pub stall: Arc<Stall>,
    /// The dispatcher's due-time index: a retry's endpoint goes in it once recorded.
    pub due: Arc<Due>,
    /// Batches the store refused, oldest first, each written again as one transaction.
    unwritten: VecDeque<Arc<[AttemptRecord]>>,
    backoff: Duration,
}

impl Recorder {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        board: Arc<Board>,
        clock: Arc<dyn Clock>,
        judge: Arc<dyn Judge>,
        signals: mpsc::Sender<Signal>,
        stats: Arc<EngineStats>,
        stall: Arc<Stall>,
    ) -> Recorder {
        Recorder {
            // Its own until `Parts::wire` gives it the dispatcher's.
            due: Arc::default(),
            outbox,
            board,
            clock,
            judge,
            signals,
            stats,
            stall,
            unwritten: VecDeque::new(),
            backoff: FIRST_BACKOFF,
        }
    }

    /// The recorder thread: until every worker is gone, writes what they pass on, and
    /// retries what the store refused. At the end, one last try for what is still held.
    pub fn run(mut self, results: mpsc::Receiver<AttemptRecord>) {
        // When to try the store again after it refused a write; `None` while it takes them.
        let mut retry_at: Option<Instant> = None;
        loop {
            let first = match retry_at {
                None => match results.recv() {
                    Ok(record) => Some(record),
                    Err(_) => break,
                },
                // Waiting out the back-off, still taking outcomes meanwhile.
                Some(at) => {
                    match results.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(record) => Some(record),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch: Vec<AttemptRecord> = first.into_iter().collect();
            // Linger a moment for more: under load, one transaction for many attempts
            // costs far less than many small ones, and nothing waits on these records but
            // the claims they release.
            if !batch.is_empty() {
                let until = Instant::now() + RECORD_LINGER;
                while batch.len() < RECORD_BATCH {
                    let left = until.saturating_duration_since(Instant::now());
                    match results.recv_timeout(left) {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
            }
            if retry_at.is_some_and(|at| Instant::now() < at) {
                // Not yet: held behind the ones the store refused, written with them.
                self.hold(batch);
                continue;
            }
            retry_at = if self.write(batch) {
                None
            } else {
                let wait = self.backoff;
                self.backoff = (wait * 2).min(MAX_BACKOFF);
                Some(Instant::now() + wait)
            };
        }
        if !self.unwritten.is_empty() {
            self.write(Vec::new());
        }
        if !self.unwritten.is_empty() {
            let held = self.unwritten();
            // Still pending in the store: sent again after the restart (at-least-once).
            tracing::error!(
                outcomes = held,
                "stopping with attempt outcomes the store would not take; those deliveries \
                 will be sent again"
            );
        }
    }

    /// Queues `batch` behind what is still unwritten.
    fn hold(&mut self, batch: Vec<AttemptRecord>) {
        if !batch.is_empty() {
            self.unwritten.push_back(batch.into());
        }
        self.shed_excess();
    }

    /// Queues `batch` behind what is still unwritten, then writes the queue, oldest first,
    /// until the store refuses. Returns whether everything is written.
    pub fn write(&mut self, batch: Vec<AttemptRecord>) -> bool {
        self.hold(batch);
        let was_stalled = self.stall.is_set();
        while let Some(next) = self.unwritten.front().cloned() {
            if !self.write_one(next) {
                if !was_stalled {
                    tracing::error!(
                        "cannot record attempts; holding their outcomes and claiming \
                         nothing new until the store takes writes again"
                    );
                }
                self.stall.set(true);
                return false;
            }
            self.unwritten.pop_front();
        }
        if was_stalled {
            tracing::info!("recording attempts again; claiming resumes");
            self.stall.set(false);
        }
        self.backoff = FIRST_BACKOFF;
        // The claims just let go may unblock work a claim round skipped while they were
        // held: a FIFO endpoint's next head, an open circuit's next probe, or (after a
        // stall) everything.
        let _ = self.signals.send(Signal::Wake);
        true
    }

    /// Writes one batch (one transaction); tells the board which 410s are written and the
    /// dispatcher when the batch's earliest retry comes due.
    fn write_one(&self, batch: Arc<[AttemptRecord]>) -> bool {
        let written = self
            .outbox
            .record(batch.clone(), self.judge.clone(), self.clock.now_ms());
        if let Err(e) = &written {
            self.stats.metrics.record_failed();
            tracing::warn!(error = %e, attempts = batch.len(), "recording attempts failed");
            return false;
        }
        for r in batch.iter().filter(|r| r.gone) {
            self.board.gone_recorded(r.endpoint_id);
        }
        // Committed: a round from now on sees the retry, and the index lists its endpoint.
        let mut due = None;
        for r in batch.iter() {
            if let Verdict::RetryAt(at) = r.verdict {
                self.due.touch(r.endpoint_id, at);
                due = Some(due.map_or(at, |d: i64| d.min(at)));
            }
        }
        if let Some(at) = due {
            let _ = self.signals.send(Signal::DueAt(at));
        }
        true
    }

    /// Past `MAX_UNWRITTEN`, gives the oldest batches' claims back: those deliveries are
    /// sent again rather than memory growing without bound.
    fn shed_excess(&mut self) {
        let mut held: usize = self.unwritten.iter().map(|b| b.len()).sum();
        while held > MAX_UNWRITTEN {
            let Some(oldest) = self.unwritten.pop_front() else {
                break;
            };
            held -= oldest.len();
            let ids: Vec<i64> = oldest.iter().map(|r| r.delivery_id).collect();
            for r in oldest.iter().filter(|r| r.gone) {
                self.board.gone_recorded(r.endpoint_id);
            }
            let _ = self.outbox.release(&ids);
            // Due again at once, at endpoints the index may have let go.
            self.due.rescan();
            tracing::warn!(
                outcomes = ids.len(),
                "too many unwritten outcomes; their deliveries will be sent again"
            );
        }
    }

    /// How many outcomes wait to be written.
    pub fn unwritten(&self) -> usize {
        self.unwritten.iter().map(|b| b.len()).sum()
    }
}
