//! The dispatcher: claims due deliveries and pins them to the board.
//!
//! A claim round asks the outbox for due work within the board's capacity, shared out by
//! the planner (`plan.rs`: every due endpoint its in-flight cap first, then top-ups, FIFO
//! heads, probes), so a slow or dead endpoint holds at most `endpoint_concurrency` workers
//! and a small share of the capacity while the others keep their latency. With SQLite the
//! claim is a read: nothing durable sits between a publish and its first attempt.
//!
//! A round looks only at the endpoints the due-time index (`due.rs`) lists as due now,
//! oldest first, and the outbox reads them only until the planner's picks fill the round:
//! its cost follows the work it claims, not the number of endpoints. Before a round the
//! dispatcher brings the index up to date when it may be behind: after a publish
//! (`Signal::Wake`) it scans what was written since its last scan, and at start, at least
//! every `RESCAN`, and when asked (`Due::rescan`) it scans the store in full.
//!
//! `step` is one round; `run` is the loop around it, woken by publishes (`Signal::Wake`),
//! by a worker whose endpoint ran dry (`Signal::Round`), by the recorder (a retry
//! scheduled, a 410 written), and by the clock when the index's next endpoint comes due.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::board::Board;
use super::due::Due;
use super::plan::{self, Shares};
use super::recorder::Stall;
use super::Signal;
use crate::clock::Clock;
use crate::config::Config;
use crate::lifecycle::Shutdown;
use crate::store::{Among, ClaimRound, Outbox, StoreError, Take};

/// The longest the dispatcher sleeps without a signal: the bound on noticing work that no
/// signal announced (a publish from the CLI in another process).
const POLL: Duration = Duration::from_secs(1);

/// The shortest gap between two claim rounds while workers are busy.
const PACE: Duration = Duration::from_millis(1);

/// How soon a failed claim round is tried again.
const AFTER_ERROR: Duration = Duration::from_millis(50);

/// The longest the due-time index goes without a full scan of the store: the bound on
/// noticing work it was not told of (a publish from the CLI in another process, a lease
/// lapsed on another replica).
const RESCAN: Duration = Duration::from_secs(1);

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
    /// The endpoints that may have work, and from when.
    due: Arc<Due>,
    /// Where the next partial scan of the store starts (`DueScan::cursor`).
    cursor: Option<i64>,
    /// Deliveries may have been written since the last scan (a publish).
    fresh: bool,
    /// When the index was last scanned in full (`None`: never).
    full_at: Option<Instant>,
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
            due: Arc::new(Due::default()),
            cursor: None,
            fresh: true,
            full_at: None,
        }
    }

    /// The due-time index, for the parts that add to it (recorder, workers, API).
    pub fn due(&self) -> Arc<Due> {
        self.due.clone()
    }

    /// The next round scans the store in full first (the harness: a test that changed the
    /// store behind the engine's back).
    pub fn rescan(&self) {
        self.due.rescan();
    }

    /// Brings the index up to date where it may be behind: a full scan when asked, at
    /// start and every `RESCAN`; after a publish, what was written since the last scan.
    fn scan(&mut self) -> Result<(), StoreError> {
        let full = {
            let mut index = self.due.lock();
            std::mem::take(&mut index.rescan)
                || self.cursor.is_none()
                || self.full_at.is_none_or(|at| at.elapsed() >= RESCAN)
        };
        if !full && !self.fresh {
            return Ok(());
        }
        let seen = self.due.lock().generation();
        let scan = match self.outbox.due_scan(if full { None } else { self.cursor }) {
            Ok(scan) => scan,
            Err(e) => {
                if full {
                    self.due.rescan();
                }
                return Err(e);
            }
        };
        self.fresh = false;
        self.cursor = scan.cursor;
        let mut index = self.due.lock();
        if scan.full {
            index.replace(&scan.due, seen);
            self.full_at = Some(Instant::now());
        } else {
            for (endpoint, at) in scan.due {
                index.touch(endpoint, at);
            }
        }
        Ok(())
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
        // Before anything is read: a queue that runs dry from here on asks again.
        self.board.round_started();
        let room = self.capacity().saturating_sub(self.board.total());
        if room == 0 {
            return Ok(0);
        }
        self.scan()?;
        let held = self.board.held();
        let now = self.clock.now_ms();
        let (seen, due) = {
            let index = self.due.lock();
            (index.generation(), index.due(now).collect::<Vec<i64>>())
        };
        // The in-flight caps of the endpoints this round may read or skip (those whose
        // limit adapted away from the start value).
        let caps = self.board.limits_of(due.iter().chain(held.keys()).copied());
        let shares = Shares {
            limit: room,
            cap: self.config.endpoint_concurrency,
            caps,
            // See `plan`: a shared outbox's claims count for every replica.
            depth: if self.outbox.shared() { 1 } else { 4 },
        };
        // An endpoint whose board holds more than its cap (its queue is not empty) waits
        // for a later round, so a busy endpoint costs one round per 3 x cap deliveries.
        let skip: HashSet<i64> = held
            .iter()
            .filter(|(id, n)| **n > shares.caps.get(id).copied().unwrap_or(shares.cap))
            .map(|(id, _)| *id)
            .collect();
        // The round reads endpoints in this order only until it is full; an endpoint it
        // reads and cannot serve has deliveries on this board (its cap is out, its FIFO
        // head or probe is in flight), so `room` plus those are enough to fill it. A
        // shared outbox's endpoints may also be held by other replicas: it gets them all.
        let bound = if self.outbox.shared() {
            usize::MAX
        } else {
            room + held.len() + 64
        };
        let mut endpoints: Vec<i64> = due.into_iter().filter(|e| !skip.contains(e)).collect();
        let truncated = endpoints.len() > bound;
        endpoints.truncate(bound);
        if endpoints.is_empty() {
            return Ok(0);
        }
        let round = ClaimRound {
            now,
            skip: skip.into_iter().collect(),
            ready_limit: shares.ready_limit(),
            default_rate_limited: self.config.rate_limit.is_some(),
            lease_ms: self.config.lease.as_millis() as i64,
        };
        let among = Among {
            endpoints,
            limit: room,
        };
        // The endpoints given a circuit's probe: the board sends it alone and, if it
        // succeeds, ramps the endpoint back up (`Board::probing`).
        let mut probes = Vec::new();
        let claim = self.outbox.claim_among(&round, &among, &mut |due| {
            let picks = plan::plan(&shares, due);
            probes = picks
                .iter()
                .filter(|p| p.take == Take::Next)
                .map(|p| p.endpoint)
                .collect();
            picks
        })?;
        {
            let mut index = self.due.lock();
            for (endpoint, next) in &claim.looked {
                index.settle(*endpoint, *next, seen);
            }
        }
        for endpoint in probes {
            self.board.probing(endpoint);
        }
        let count = claim.claimed.len();
        let endpoint_of: HashMap<i64, i64> = claim
            .claimed
            .iter()
            .map(|c| (c.delivery_id, c.endpoint_id))
            .collect();
        let excess = self.board.pin(claim.claimed, now);
        self.outbox.release(&excess)?;
        // What went back is due again at once.
        for id in &excess {
            if let Some(endpoint) = endpoint_of.get(id) {
                self.due.touch(*endpoint, now);
            }
        }
        // Only a full round, one that stopped reading once full, or one given only the
        // first of the due endpoints may have left more due work behind.
        self.needs_claim = count == room || claim.looked.len() < among.endpoints.len() || truncated;
        Ok(count)
    }

    /// How long to sleep, at most, when no round is needed: until the index's next
    /// endpoint comes due, within `POLL`.
    fn idle_wait(&self) -> Duration {
        let now = self.clock.now_ms();
        match self.due.lock().next_after(now) {
            Some(at) => Duration::from_millis((at - now).clamp(0, POLL.as_millis() as i64) as u64),
            None => POLL,
        }
    }

    pub fn run(&mut self, signals: mpsc::Receiver<Signal>, heartbeat: &AtomicI64) {
        let mut last_round = Instant::now() - PACE;
        // After a failed round: when to try again.
        let mut retry_at: Option<Instant> = None;
        // The shutdown token wakes it (`Parts::wire`) and it ends at its next look.
        while !self.shutdown.is_set() {
            heartbeat.store(self.clock.now_ms(), Ordering::Relaxed);
            // While workers are busy, rounds are paced: the queues they drain refill one
            // round later at worst. An idle board claims at once, so a publish never waits
            // for the pace.
            self.board.release_due(self.clock.now_ms());
            let paced = self.board.total() > 0 && last_round.elapsed() < PACE;
            if self.needs_claim && !paced && retry_at.is_none_or(|at| Instant::now() >= at) {
                last_round = Instant::now();
                retry_at = None;
                match self.step() {
                    Ok(_) => {}
                    // An unreachable database was logged once by the store; not 20 times a
                    // second here.
                    Err(StoreError::Unreachable) => {
                        self.needs_claim = true;
                        retry_at = Some(Instant::now() + AFTER_ERROR);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deliveries failed");
                        self.needs_claim = true;
                        retry_at = Some(Instant::now() + AFTER_ERROR);
                    }
                }
            }
            let wait = if self.stall.is_set() {
                POLL // until the recorder's wake-up
            } else if let Some(at) = retry_at {
                at.saturating_duration_since(Instant::now())
            } else if self.needs_claim && self.board.total() < self.capacity() {
                PACE.saturating_sub(last_round.elapsed())
            } else {
                // Nothing more is due now: sleep until the index's next endpoint comes due.
                self.idle_wait()
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
                    // The clock: an endpoint came due, or the poll.
                    self.needs_claim = true;
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            for signal in first.into_iter().chain(signals.try_iter()) {
                self.hear(signal);
            }
        }
    }

    /// Takes in one signal: a publish makes the next round scan what was written since
    /// the last scan; any signal makes a round worth running.
    pub fn hear(&mut self, signal: Signal) {
        match signal {
            Signal::Wake => {
                self.fresh = true;
                self.needs_claim = true;
            }
            Signal::Round => self.needs_claim = true,
            // The recorder put the retry's endpoint in the index; the loop's sleep is
            // computed from it.
            Signal::DueAt(_) => {}
        }
    }

    /// How many endpoints the due-time index lists (what a round could look at).
    pub fn due_len(&self) -> usize {
        self.due.lock().len()
    }
}
