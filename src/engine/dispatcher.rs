//! The dispatcher: claims due deliveries and pins them to the board.
//!
//! A claim round asks the outbox for due work within the board's capacity, shared out by
//! the planner (`plan.rs`: every due endpoint its in-flight cap first, then top-ups, FIFO
//! heads, probes), so a slow or dead endpoint holds at most `endpoint_concurrency` workers
//! and a small share of the capacity while the others keep their latency. With SQLite the
//! claim is a read: nothing durable sits between a publish and its first attempt.
//!
//! `step` is one round; `run` is the loop around it, woken by publishes (`Signal::Wake`),
//! by a worker whose endpoint ran dry, by the recorder (a retry scheduled, a 410 written),
//! and by the clock when the next retry comes due.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::board::Board;
use super::plan::{self, Shares};
use super::recorder::Stall;
use super::Signal;
use crate::clock::Clock;
use crate::config::Config;
use crate::lifecycle::Shutdown;
use crate::store::{ClaimRound, Outbox, StoreError, Take};

/// The longest the dispatcher sleeps without a signal: the bound on noticing work that no
/// signal announced (a publish from the CLI in another process).
const POLL: Duration = Duration::from_secs(1);

/// The shortest gap between two claim rounds while workers are busy.
const PACE: Duration = Duration::from_millis(1);

/// How soon a failed claim round is tried again.
const AFTER_ERROR: Duration = Duration::from_millis(50);

pub struct Dispatcher {
    outbox: Arc<dyn Outbox>,
    config: Arc<Config>,
    board: Arc<Board>,
    clock: Arc<dyn Clock>,
    /// Set while the recorder holds outcomes the store refused: nothing is claimed.
    stall: Arc<Stall>,
    shutdown: Shutdown,
    /// Set when a claim round could find something: a wake-up, a dry queue, the clock.
    needs_claim: bool,
}

impl Dispatcher {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        config: Arc<Config>,
        board: Arc<Board>,
        clock: Arc<dyn Clock>,
        stall: Arc<Stall>,
        shutdown: Shutdown,
    ) -> Dispatcher {
        Dispatcher {
            outbox,
            config,
            board,
            clock,
            stall,
            shutdown,
            needs_claim: true,
        }
    }

    /// How many deliveries the board may hold: enough that workers never wait for a claim
    /// round, few enough that claims do not sit in a queue.
    fn capacity(&self) -> usize {
        self.config.workers * 4
    }

    /// One round: claims what is due (within capacity, as `plan` shares it out) and pins
    /// it to the board. Returns how many deliveries were claimed.
    pub fn step(&mut self) -> Result<usize, StoreError> {
        if self.stall.is_set() {
            // Claims whose outcomes cannot be written would only pile up; the recorder
            // wakes the dispatcher when the store takes writes again.
            return Ok(0);
        }
        self.needs_claim = false;
        let room = self.capacity().saturating_sub(self.board.total());
        if room == 0 {
            return Ok(0);
        }
        let shares = Shares {
            limit: room,
            cap: self.config.endpoint_concurrency,
            caps: self.board.limits(),
            // See `plan`: a shared outbox's claims count for every replica.
            depth: if self.outbox.shared() { 1 } else { 4 },
        };
        // An endpoint whose board holds more than its cap (its queue is not empty) waits
        // for a later round, so a busy endpoint costs one round per 3 x cap deliveries.
        let skip: Vec<i64> = self
            .board
            .held()
            .into_iter()
            .filter(|(id, n)| *n > shares.caps.get(id).copied().unwrap_or(shares.cap))
            .map(|(id, _)| id)
            .collect();
        let now = self.clock.now_ms();
        let round = ClaimRound {
            now,
            skip,
            ready_limit: shares.ready_limit(),
            default_rate_limited: self.config.rate_limit.is_some(),
            lease_ms: self.config.lease.as_millis() as i64,
        };
        // The endpoints given a circuit's probe: the board sends it alone and, if it
        // succeeds, ramps the endpoint back up (`Board::probing`).
        let mut probes = Vec::new();
        let claimed = self.outbox.claim(&round, &mut |due| {
            let picks = plan::plan(&shares, due);
            probes = picks
                .iter()
                .filter(|p| p.take == Take::Next)
                .map(|p| p.endpoint)
                .collect();
            picks
        })?;
        for endpoint in probes {
            self.board.probing(endpoint);
        }
        let count = claimed.len();
        let excess = self.board.pin(claimed, now);
        self.outbox.release(&excess)?;
        // Only a full round may have left more due work behind.
        self.needs_claim = count == room;
        Ok(count)
    }

    /// How long to sleep before the next retry comes due (at most `POLL`).
    fn idle_wait(&self) -> Duration {
        let now = self.clock.now_ms();
        match self.outbox.next_due(now) {
            Ok(Some(at)) => {
                Duration::from_millis((at - now).clamp(0, POLL.as_millis() as i64) as u64)
            }
            Ok(None) => POLL,
            Err(_) => AFTER_ERROR,
        }
    }

    pub fn run(&mut self, signals: mpsc::Receiver<Signal>, heartbeat: &AtomicI64) {
        // When the next retry comes due; `None` until asked (the question costs a query).
        let mut deadline: Option<Instant> = None;
        let mut last_round = Instant::now() - PACE;
        // The shutdown token wakes it (`Parts::wire`) and it ends at its next look.
        while !self.shutdown.is_set() {
            heartbeat.store(self.clock.now_ms(), Ordering::Relaxed);
            // While workers are busy, rounds are paced: the queues they drain refill one
            // round later at worst, and a round walks every active endpoint. An idle board
            // claims at once, so a publish never waits for the pace.
            self.board.release_due(self.clock.now_ms());
            let paced = self.board.total() > 0 && last_round.elapsed() < PACE;
            if self.needs_claim && !paced {
                last_round = Instant::now();
                match self.step() {
                    Ok(_) if !self.needs_claim => deadline = None,
                    Ok(_) => {}
                    // An unreachable database was logged once by the store; not 20 times a
                    // second here.
                    Err(StoreError::Unreachable) => {
                        deadline = Some(Instant::now() + AFTER_ERROR);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deliveries failed");
                        deadline = Some(Instant::now() + AFTER_ERROR);
                    }
                }
            }
            let wait = if self.stall.is_set() {
                POLL // until the recorder's wake-up
            } else if self.needs_claim && self.board.total() < self.capacity() {
                PACE.saturating_sub(last_round.elapsed())
            } else {
                // Nothing more is due now: sleep until the next retry comes due.
                let at = *deadline.get_or_insert_with(|| Instant::now() + self.idle_wait());
                at.saturating_duration_since(Instant::now())
            };
            // A delivery held back by a rate limit may go before anything else happens.
            let wait = match self.board.next_release_at() {
                Some(at) => {
                    let until = Duration::from_millis((at - self.clock.now_ms()).max(0) as u64);
                    wait.min(until)
                }
                None => wait,
            };
            let first = match signals.recv_timeout(wait) {
                Ok(s) => Some(s),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !self.needs_claim {
                        self.needs_claim = true; // the clock: a retry came due
                        deadline = None;
                    }
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            for signal in first.into_iter().chain(signals.try_iter()) {
                match signal {
                    Signal::Wake => self.needs_claim = true,
                    Signal::DueAt(at) => {
                        let now = self.clock.now_ms();
                        let at = Instant::now() + Duration::from_millis((at - now).max(0) as u64);
                        // Unknown (`None`) stays unknown: the next look asks the store,
                        // which has this retry by now.
                        deadline = deadline.map(|d| d.min(at));
                    }
                }
            }
        }
    }
}
