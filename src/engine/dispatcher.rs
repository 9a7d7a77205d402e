//! The dispatcher: claims due deliveries and hands them to workers.
//!
//! It keeps, per endpoint, how many deliveries are with workers (`in_flight`) and how many
//! it claimed beyond the endpoint's cap (`waiting`, already leased, sent as slots free up).
//! A claim never gives one endpoint more than four times its cap (in flight plus queued), so a
//! slow or dead endpoint holds at most `endpoint_concurrency` workers and a small share of
//! the claim capacity, while the others keep their latency.
//!
//! `step` is one round (claim and hand out); `run` is the loop around it, woken by
//! publishes, by finished requests, and by the clock when the next retry comes due.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::Signal;
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::outbox::{self, Claimed};
use crate::store::{Store, StoreError};

/// The longest the dispatcher sleeps without a signal: the bound on noticing work that no
/// signal announced (a publish from the CLI, an expired lease).
const POLL: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    store: Store,
    config: Arc<Config>,
    work: mpsc::Sender<Claimed>,
    in_flight: HashMap<i64, usize>,
    waiting: HashMap<i64, VecDeque<Claimed>>,
    total: usize,
    /// Endpoints that answered 410 and that the store may not show disabled yet: left out
    /// of claims until the recorder has written the 410. A count, not a flag, because the
    /// worker's `Done` and the recorder's `GoneRecorded` may arrive in either order.
    gone: HashMap<i64, i32>,
    /// Set when a claim round could find something: a wake-up, a freed queue, the clock.
    needs_claim: bool,
}

impl Dispatcher {
    pub fn new(store: Store, config: Arc<Config>, work: mpsc::Sender<Claimed>) -> Dispatcher {
        Dispatcher {
            store,
            config,
            work,
            in_flight: HashMap::new(),
            waiting: HashMap::new(),
            total: 0,
            gone: HashMap::new(),
            needs_claim: true,
        }
    }

    /// How many deliveries may be held at once: enough that workers never wait for a
    /// claim round, few enough that leases do not sit in a queue.
    fn capacity(&self) -> usize {
        self.config.workers * 4
    }

    fn lease_ms(&self) -> i64 {
        (self.config.connect_timeout + self.config.request_timeout + Duration::from_secs(60))
            .as_millis() as i64
    }

    /// One round: claims what is due (within capacity) and hands it out. Returns how many
    /// deliveries were claimed.
    pub fn step(&mut self) -> Result<usize, StoreError> {
        self.needs_claim = false;
        let room = self.capacity().saturating_sub(self.total);
        if room == 0 {
            return Ok(0);
        }
        // Per endpoint: `endpoint_concurrency` in flight plus up to three times as many
        // queued behind them, so a slot that frees up is refilled without a claim round,
        // while one endpoint's backlog can never take the capacity the others need. An
        // endpoint is topped up only once its queue is empty (held <= cap), so a busy
        // endpoint costs one claim (one commit) per 3 x cap deliveries, not one per delivery.
        let cap = self.config.endpoint_concurrency;
        let per_endpoint = cap * 4;
        let mut held: HashMap<i64, usize> = self
            .in_flight
            .iter()
            .map(|(id, n)| (*id, *n + self.waiting.get(id).map_or(0, |q| q.len())))
            .collect();
        for (endpoint, _) in self.gone.iter().filter(|(_, n)| **n > 0) {
            held.insert(*endpoint, usize::MAX);
        }
        let skip: Vec<i64> = held
            .iter()
            .filter(|(_, n)| **n > cap)
            .map(|(id, _)| *id)
            .collect();
        let now = now_ms();
        let picked = self
            .store
            .read_blocking(|c| outbox::due_candidates(c, now, room, per_endpoint, &held, &skip))?;
        if picked.is_empty() {
            return Ok(0);
        }
        let lease_until = now + self.lease_ms();
        let leased = self
            .store
            .write_blocking(move |c| outbox::lease(c, &picked, now, lease_until))?;
        let claimed = self
            .store
            .read_blocking(|c| outbox::claimed(c, &leased, now))?;
        let count = claimed.len();
        for delivery in claimed {
            self.total += 1;
            let endpoint = delivery.endpoint_id;
            self.waiting
                .entry(endpoint)
                .or_default()
                .push_back(delivery);
            self.release_waiting(endpoint);
        }
        // A full round may have left more due work behind.
        self.needs_claim = count > 0;
        Ok(count)
    }

    /// Sends waiting deliveries of `endpoint` to the workers while it has free slots.
    fn release_waiting(&mut self, endpoint: i64) {
        let cap = self.config.endpoint_concurrency;
        loop {
            let running = self.in_flight.get(&endpoint).copied().unwrap_or(0);
            if running >= cap {
                return;
            }
            let Some(queue) = self.waiting.get_mut(&endpoint) else {
                return;
            };
            let Some(delivery) = queue.pop_front() else {
                self.waiting.remove(&endpoint);
                return;
            };
            if self.work.send(delivery).is_err() {
                return; // workers are gone: shutting down
            }
            *self.in_flight.entry(endpoint).or_default() += 1;
        }
    }

    /// A worker finished a request of `endpoint`; `gone` if it answered 410.
    pub fn finished(&mut self, endpoint: i64, gone: bool) {
        if gone {
            // The recorder disables the endpoint and cancels its pending deliveries; until
            // that is written, neither the ones queued here nor new claims may go out.
            *self.gone.entry(endpoint).or_default() += 1;
            if let Some(queue) = self.waiting.remove(&endpoint) {
                self.total = self.total.saturating_sub(queue.len());
            }
        }
        if let Some(n) = self.in_flight.get_mut(&endpoint) {
            *n = n.saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if *n == 0 && !self.waiting.contains_key(&endpoint) {
                self.in_flight.remove(&endpoint);
            }
        }
        self.release_waiting(endpoint);
        if !self.waiting.contains_key(&endpoint) {
            self.needs_claim = true; // its queue ran dry: time to top it up
        }
    }

    fn gone_recorded(&mut self, endpoint: i64) {
        let count = self.gone.entry(endpoint).or_default();
        *count -= 1;
        if *count == 0 {
            self.gone.remove(&endpoint);
        }
    }

    /// How long to sleep before the next retry comes due (at most `POLL`).
    fn idle_wait(&self) -> Duration {
        let now = now_ms();
        let next = self
            .store
            .read_blocking(|c| outbox::next_due(c, now))
            .unwrap_or(None);
        match next {
            Some(at) => Duration::from_millis((at - now).clamp(0, POLL.as_millis() as i64) as u64),
            None => POLL,
        }
    }

    pub fn run(&mut self, signals: mpsc::Receiver<Signal>, heartbeat: &AtomicI64) {
        let mut deadline = Instant::now();
        loop {
            heartbeat.store(now_ms(), Ordering::Relaxed);
            if self.needs_claim {
                if let Err(e) = self.step() {
                    tracing::error!(error = %e, "claiming deliveries failed");
                }
                if !self.needs_claim {
                    // Nothing more is due now: sleep until the next retry comes due.
                    deadline = Instant::now() + self.idle_wait();
                }
            }
            let wait = if self.needs_claim && self.total < self.capacity() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let first = match signals.recv_timeout(wait) {
                Ok(s) => Some(s),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.needs_claim = true; // the clock: a retry or an expired lease
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            for signal in first.into_iter().chain(signals.try_iter()) {
                match signal {
                    Signal::Wake => self.needs_claim = true,
                    Signal::Done { endpoint, gone } => self.finished(endpoint, gone),
                    Signal::GoneRecorded(endpoint) => {
                        self.gone_recorded(endpoint);
                        self.needs_claim = true;
                    }
                    Signal::Stop => return,
                }
            }
        }
    }
}
