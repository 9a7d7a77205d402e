//! The board: claimed deliveries between the dispatcher and the workers, per endpoint.
//!
//! The dispatcher pins what it claimed to the board; each endpoint has at most
//! `endpoint_concurrency` deliveries `in_flight`, the rest of its claim `waiting` behind
//! them, and whatever may go now sits in `ready` for any idle worker. A worker that finishes
//! a request takes its endpoint's next waiting delivery itself and goes on with it, so a
//! busy endpoint's deliveries flow from worker to worker without a round trip through the
//! dispatcher; only when an endpoint's queue runs dry does the dispatcher hear about it.
//!
//! Rate limits live here too: an endpoint with a limit of r requests per second lets a
//! delivery go only `1/r` seconds after the previous one (a GCRA-style schedule: a burst
//! queues, it is never dropped), whether it is a first attempt or a retry; the schedule
//! starts from the endpoint's last attempt in the store, so a restart does not reset it.
//! A 429 or 503 with `Retry-After` pushes the endpoint's schedule out that far. What waits
//! for its time is let go by `release_due`, which the dispatcher calls when
//! `next_release_at` comes.
//!
//! Each endpoint's in-flight limit adapts to the receiver (additive increase,
//! multiplicative decrease): it starts at `endpoint_concurrency`, grows by about one per
//! window of successful requests whose latency holds (at most twice the fastest seen), and
//! halves, at most once per window, on timeouts, connection errors, 5xx and 429 — between 1
//! and `max_endpoint_concurrency`. A FIFO endpoint stays at one.
//!
//! A circuit's probe (`probing`) sets the endpoint's limit to one; if the probe succeeds, the
//! limit ramps back up, doubling with each success (1, 2, 4, 8…) until it is back at
//! `endpoint_concurrency` — TCP's slow start after a timeout — and then adapts as above. The
//! additive increase alone would take about `endpoint_concurrency² / 2` successes to climb
//! back from the one request the probe was, so a backlog that waited out the outage would
//! drain one request at a time long after the receiver was back.
//!
//! One mutex guards it all: each operation is a few map lookups, far below the cost of the
//! HTTP request around it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::store::Claimed;

pub struct Board {
    state: Mutex<State>,
    work: Condvar,
    /// Per-endpoint in-flight limit to start from.
    cap: usize,
    /// The most an endpoint's adaptive limit may reach.
    max_cap: usize,
    /// Requests per second to endpoints that set no limit of their own.
    default_rate: Option<f64>,
    /// Read when a worker takes a delivery: the schedule counts from the real send.
    clock: Arc<dyn Clock>,
}

/// An endpoint's adaptive in-flight limit.
#[derive(Debug, Clone, Copy)]
struct Limit {
    current: f64,
    /// The fastest answer seen, drifting up slowly so an endpoint that got slower for good
    /// is judged by its new normal.
    fastest_ms: f64,
    /// Answers since the last decrease, and how many were in flight then: the answers to
    /// those requests all belong to the one overload that caused the decrease.
    since_decrease: usize,
    window: usize,
    /// Ramping up after a probe: each success doubles the limit up to the start value.
    ramp: bool,
}

impl Limit {
    fn new(start: f64) -> Limit {
        Limit {
            current: start,
            fastest_ms: f64::MAX,
            since_decrease: 0,
            window: 0,
            ramp: false,
        }
    }
}

/// An endpoint's send schedule.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Milliseconds between two requests (0: no rate limit, only a back-off).
    interval: f64,
    /// The earliest time (ms) the next request may go.
    next_at: f64,
}

#[derive(Default)]
struct State {
    /// May go now; already counted in `in_flight`.
    ready: VecDeque<Claimed>,
    in_flight: HashMap<i64, usize>,
    waiting: HashMap<i64, VecDeque<Claimed>>,
    /// Everything on the board: ready, in flight and waiting.
    total: usize,
    /// Endpoints that answered 410 and whose disabling the recorder has not yet written:
    /// nothing more goes to them. A count: the worker's and the recorder's news may cross.
    gone: HashMap<i64, i32>,
    pace: HashMap<i64, Pace>,
    /// FIFO endpoints: one request in flight, whatever the cap.
    fifo: std::collections::HashSet<i64>,
    /// Adaptive in-flight limits of endpoints heard from.
    limits: HashMap<i64, Limit>,
    /// A worker has asked the dispatcher for a round since the last began (`Finished::ask`).
    asked: bool,
    /// Endpoints with a queue whose limit grew since `release_due` last looked.
    grown: std::collections::HashSet<i64>,
    stopping: bool,
}

/// What a worker learns when it finishes a request.
pub struct Finished {
    /// The endpoint's next delivery, already counted in flight: the worker sends it now.
    pub next: Option<Claimed>,
    /// The endpoint's queue ran dry: the dispatcher may claim more for it.
    pub dry: bool,
    /// Deliveries dropped unsent because the endpoint answered 410; their claims can go.
    pub dropped: Vec<i64>,
    /// The endpoint's next delivery waits for its rate limit or back-off.
    pub paced: bool,
    /// `dry` or `paced`, and the dispatcher has not been asked for a round since its last
    /// one began (`round_started`): the worker signals it. Later asks before that round
    /// would only wake it again for nothing: one context switch per delivery, to one
    /// endpoint whose queue keeps running dry, was most of the dispatcher's CPU.
    pub ask: bool,
}

impl Board {
    pub fn new(cap: usize, default_rate: Option<f64>, clock: Arc<dyn Clock>) -> Board {
        Board::adaptive(cap, cap, default_rate, clock)
    }

    /// A board whose per-endpoint limits start at `cap` and may grow to `max_cap`.
    pub fn adaptive(
        cap: usize,
        max_cap: usize,
        default_rate: Option<f64>,
        clock: Arc<dyn Clock>,
    ) -> Board {
        Board {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            cap: cap.max(1),
            max_cap: max_cap.max(cap).max(1),
            default_rate,
            clock,
        }
    }

    /// A worker is about to send `d`: a rate-limited endpoint's next slot counts from now,
    /// so a worker that picked it up late cannot bring two sends closer than the interval.
    fn taken(&self, s: &mut State, d: Claimed) -> Claimed {
        if let Some(pace) = s.pace.get_mut(&d.endpoint_id) {
            if pace.interval > 0.0 {
                let now = self.clock.now_ms() as f64;
                pace.next_at = pace.next_at.max(now + pace.interval);
            }
        }
        d
    }

    /// A panic while holding the lock cannot leave the counts half-updated in a way worse
    /// than stopping delivery altogether, so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Per endpoint, how many deliveries the board holds; endpoints that answered 410 and
    /// are not yet recorded as disabled count as full.
    pub fn held(&self) -> HashMap<i64, usize> {
        let s = self.lock();
        let mut held: HashMap<i64, usize> = s.in_flight.clone();
        for (endpoint, queue) in &s.waiting {
            *held.entry(*endpoint).or_default() += queue.len();
        }
        for (endpoint, n) in &s.gone {
            if *n > 0 {
                held.insert(*endpoint, usize::MAX);
            }
        }
        // A rate-limited endpoint with deliveries waiting for their turn needs no more:
        // claiming them early would only fill the board with what cannot go yet.
        for (endpoint, pace) in &s.pace {
            if pace.interval > 0.0 && s.waiting.contains_key(endpoint) {
                held.insert(*endpoint, usize::MAX);
            }
        }
        held
    }

    /// Pins freshly claimed deliveries and wakes workers for what may go now. Returns the
    /// ids it did not keep: beyond its in-flight cap, a rate-limited endpoint's claim is
    /// given back (the caller releases it), so slow endpoints cannot fill the board.
    pub fn pin(&self, claimed: Vec<Claimed>, now: i64) -> Vec<i64> {
        let mut s = self.lock();
        if s.stopping {
            // A round that raced the shutdown: nothing more is sent; all of it goes back.
            return claimed.into_iter().map(|d| d.delivery_id).collect();
        }
        let mut excess = Vec::new();
        let before = s.ready.len();
        for delivery in claimed {
            s.total += 1;
            let endpoint = delivery.endpoint_id;
            match delivery.rate_limit.or(self.default_rate) {
                Some(rate) => {
                    let interval = 1000.0 / rate;
                    // Never attempted: no previous send to space from, so it may go now.
                    let last = delivery.last_attempt_at.map_or(f64::MIN, |t| t as f64);
                    let pace = s.pace.entry(endpoint).or_insert(Pace {
                        interval,
                        next_at: last + interval,
                    });
                    pace.interval = interval; // the endpoint's limit may have changed
                }
                None => {
                    if let Some(pace) = s.pace.get_mut(&endpoint) {
                        pace.interval = 0.0;
                    }
                }
            }
            if delivery.fifo {
                s.fifo.insert(endpoint);
            } else {
                s.fifo.remove(&endpoint);
            }
            let limited = s.pace.get(&endpoint).is_some_and(|p| p.interval > 0.0);
            let cap = Self::cap_in(&s, endpoint, self.cap);
            let queue = s.waiting.entry(endpoint).or_default();
            // Only rate-limited endpoints give back claims: an unlimited one drains its
            // queue as fast as workers free, so holding a queue of `cap` costs little.
            if limited && queue.len() >= cap {
                excess.push(delivery.delivery_id);
                s.total -= 1;
                continue;
            }
            queue.push_back(delivery);
            Self::release(&mut s, endpoint, self.cap, now);
        }
        let woken = s.ready.len().saturating_sub(before);
        drop(s);
        // One idle worker per delivery that may go: waking them all for one delivery
        // cost more CPU than the delivery itself at low rates.
        for _ in 0..woken {
            self.work.notify_one();
        }
        excess
    }

    /// An endpoint's in-flight limit now: 1 for FIFO, else its adaptive limit.
    fn cap_in(s: &State, endpoint: i64, base: usize) -> usize {
        if s.fifo.contains(&endpoint) {
            return 1;
        }
        s.limits
            .get(&endpoint)
            .map_or(base, |l| (l.current.floor() as usize).max(1))
    }

    /// The in-flight limit of `endpoint` now (the API and pages show it).
    pub fn limit_of(&self, endpoint: i64) -> usize {
        Self::cap_in(&self.lock(), endpoint, self.cap)
    }

    /// Per endpoint heard from, its in-flight limit where it differs from the start value
    /// (the dispatcher sizes each endpoint's claim by it).
    pub fn limits(&self) -> HashMap<i64, usize> {
        let s = self.lock();
        s.limits
            .keys()
            .chain(s.fifo.iter())
            .map(|e| (*e, Self::cap_in(&s, *e, self.cap)))
            .filter(|(_, cap)| *cap != self.cap)
            .collect()
    }

    /// `limits`, for `endpoints` only: a claim round asks about the endpoints it may read,
    /// not every endpoint ever heard from.
    pub fn limits_of(&self, endpoints: impl Iterator<Item = i64>) -> HashMap<i64, usize> {
        let s = self.lock();
        endpoints
            .map(|e| (e, Self::cap_in(&s, e, self.cap)))
            .filter(|(_, cap)| *cap != self.cap)
            .collect()
    }

    /// Adapts `endpoint`'s in-flight limit to one answer: `ok` a success that took `ms`;
    /// `overloaded` a timeout, connection error, 5xx or 429. Other answers (4xx) say
    /// nothing about the receiver's capacity.
    pub fn observe(&self, endpoint: i64, ok: bool, overloaded: bool, ms: u64) {
        self.observe_in(&mut self.lock(), endpoint, ok, overloaded, ms);
    }

    fn observe_in(&self, s: &mut State, endpoint: i64, ok: bool, overloaded: bool, ms: u64) {
        if !ok && !overloaded {
            return;
        }
        let (start, max) = (self.cap as f64, self.max_cap as f64);
        let before = Self::cap_in(s, endpoint, self.cap);
        self.adapt(s, endpoint, ok, ms, start, max);
        if Self::cap_in(s, endpoint, self.cap) > before && s.waiting.contains_key(&endpoint) {
            // A slot opened that no finish will fill: `release_due` lets its queue move.
            s.grown.insert(endpoint);
        }
    }

    fn adapt(&self, s: &mut State, endpoint: i64, ok: bool, ms: u64, start: f64, max: f64) {
        let limit = s.limits.entry(endpoint).or_insert(Limit::new(start));
        limit.since_decrease += 1;
        if ok && limit.ramp {
            limit.fastest_ms = (limit.fastest_ms * 1.01).min(ms.max(1) as f64);
            limit.current = (limit.current * 2.0).min(start);
            limit.ramp = limit.current < start;
        } else if ok {
            let ms = ms.max(1) as f64;
            limit.fastest_ms = (limit.fastest_ms * 1.01).min(ms);
            // +1/current per success is about +1 per window of `current` answers: TCP's
            // congestion avoidance, slow enough that one lucky burst does not overshoot.
            if ms <= 2.0 * limit.fastest_ms {
                limit.current = (limit.current + 1.0 / limit.current).min(max);
            }
        } else if limit.since_decrease >= limit.window || limit.ramp {
            // A failure ends the ramp: the limit adapts from where it got to.
            limit.ramp = false;
            // The next window is the number in flight now: their failures are echoes of
            // this overload and must not halve the limit again.
            limit.window = limit.current.ceil() as usize;
            limit.current = (limit.current / 2.0).max(1.0);
            limit.since_decrease = 0;
        }
    }

    /// The dispatcher claimed a circuit's probe of `endpoint`: one request in flight, and if
    /// it succeeds the limit ramps back up (module comment).
    pub fn probing(&self, endpoint: i64) {
        let mut s = self.lock();
        let limit = s
            .limits
            .entry(endpoint)
            .or_insert(Limit::new(self.cap as f64));
        *limit = Limit {
            current: 1.0,
            since_decrease: 0,
            window: 0,
            ramp: true,
            ..*limit
        };
    }

    /// Takes the endpoint's next send slot if its schedule allows one now.
    fn may_send(s: &mut State, endpoint: i64, now: i64) -> bool {
        let Some(pace) = s.pace.get_mut(&endpoint) else {
            return true;
        };
        let now = now as f64;
        if now < pace.next_at {
            return false;
        }
        // From max(next_at, now): an endpoint idle for an hour earns no burst of saved-up
        // slots, which is what keeps this a limit and not an average.
        pace.next_at = pace.next_at.max(now) + pace.interval;
        true
    }

    /// Moves `endpoint`'s waiting deliveries to `ready` while it has free slots and its
    /// schedule allows.
    fn release(s: &mut State, endpoint: i64, cap: usize, now: i64) {
        let cap = Self::cap_in(s, endpoint, cap);
        while s.in_flight.get(&endpoint).copied().unwrap_or(0) < cap {
            if !s.waiting.contains_key(&endpoint) || !Self::may_send(s, endpoint, now) {
                return;
            }
            let Some(queue) = s.waiting.get_mut(&endpoint) else {
                return;
            };
            let Some(delivery) = queue.pop_front() else {
                s.waiting.remove(&endpoint);
                return;
            };
            if queue.is_empty() {
                s.waiting.remove(&endpoint);
            }
            *s.in_flight.entry(endpoint).or_default() += 1;
            s.ready.push_back(delivery);
        }
    }

    /// The next delivery for an idle worker: waits for one, and `None` once the board is
    /// stopping (`stop` wakes every waiter).
    pub fn next(&self) -> Option<Claimed> {
        let mut s = self.lock();
        loop {
            if s.stopping {
                return None;
            }
            if let Some(d) = s.ready.pop_front() {
                return Some(self.taken(&mut s, d));
            }
            s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes what is ready without waiting (the engine harness).
    pub fn try_next(&self) -> Option<Claimed> {
        let mut s = self.lock();
        let d = s.ready.pop_front()?;
        Some(self.taken(&mut s, d))
    }

    /// A worker finished a request of `endpoint` (`gone`: it answered 410; `backoff_until`:
    /// it asked for no requests before then).
    pub fn finish(
        &self,
        endpoint: i64,
        gone: bool,
        backoff_until: Option<i64>,
        now: i64,
    ) -> Finished {
        self.done(endpoint, None, gone, backoff_until, now)
    }

    /// `finish`, with what the answer says about the endpoint's capacity (`observe`'s
    /// `ok`, `overloaded`, `ms`) taken in the same lock: a worker's one visit to the
    /// board per delivery.
    pub fn done(
        &self,
        endpoint: i64,
        answer: Option<(bool, bool, u64)>,
        gone: bool,
        backoff_until: Option<i64>,
        now: i64,
    ) -> Finished {
        let mut s = self.lock();
        if let Some((ok, overloaded, ms)) = answer {
            self.observe_in(&mut s, endpoint, ok, overloaded, ms);
        }
        // A back-off without a rate limit still needs a Pace (interval 0) so `may_send`
        // and `next_release_at` see it.
        if let Some(until) = backoff_until {
            let pace = s.pace.entry(endpoint).or_insert(Pace {
                interval: 0.0,
                next_at: f64::MIN,
            });
            pace.next_at = pace.next_at.max(until as f64);
        }
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.in_flight.get_mut(&endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.in_flight.remove(&endpoint);
            }
        }
        let mut dropped = Vec::new();
        if gone {
            // The recorder disables the endpoint and cancels what is pending; until then,
            // neither what waits here nor a new claim may go out (`held` says it is full).
            *s.gone.entry(endpoint).or_default() += 1;
            if let Some(queue) = s.waiting.remove(&endpoint) {
                s.total = s.total.saturating_sub(queue.len());
                dropped = queue.into_iter().map(|d| d.delivery_id).collect();
            }
        }
        if s.stopping {
            return Finished {
                next: None,
                dry: false,
                dropped,
                paced: false,
                ask: false,
            };
        }
        // The worker continues with the endpoint only inside its (possibly just halved)
        // limit and its schedule; otherwise the delivery waits for `release_due`.
        let within =
            s.in_flight.get(&endpoint).copied().unwrap_or(0) < Self::cap_in(&s, endpoint, self.cap);
        let paced =
            within && s.waiting.contains_key(&endpoint) && !Self::may_send(&mut s, endpoint, now);
        let next = match s.waiting.get_mut(&endpoint) {
            _ if paced || !within => None,
            Some(queue) => {
                let next = queue.pop_front();
                if queue.is_empty() {
                    s.waiting.remove(&endpoint);
                }
                next
            }
            None => None,
        };
        if next.is_some() {
            *s.in_flight.entry(endpoint).or_default() += 1;
        }
        let dry = !s.waiting.contains_key(&endpoint);
        let ask = (dry || paced) && !s.asked;
        s.asked |= ask;
        Finished {
            next,
            dry,
            dropped,
            paced,
            ask,
        }
    }

    /// A claim round begins: it sees every queue as it is now, so the next dry or paced
    /// queue asks for another.
    pub fn round_started(&self) {
        self.lock().asked = false;
    }

    /// When the earliest delivery held back by a rate limit or back-off may go (ms).
    pub fn next_release_at(&self) -> Option<i64> {
        let s = self.lock();
        s.pace
            .iter()
            .filter(|(e, _)| s.waiting.contains_key(e))
            .filter(|(e, _)| {
                s.in_flight.get(e).copied().unwrap_or(0) < Self::cap_in(&s, **e, self.cap)
            })
            .map(|(_, p)| p.next_at.ceil() as i64)
            .min()
    }

    /// Lets go what the rate limits allow by `now`; wakes a worker for each.
    pub fn release_due(&self, now: i64) {
        let mut s = self.lock();
        let before = s.ready.len();
        // Only a schedule or a grown limit lets a queue move outside `pin` and `finish`
        // (which release what they can themselves), so only those queues are looked at:
        // the dispatcher calls this on every turn of its loop, with thousands of queues.
        let mut endpoints: Vec<i64> = s
            .pace
            .keys()
            .copied()
            .filter(|e| s.waiting.contains_key(e))
            .collect();
        endpoints.extend(s.grown.drain());
        for endpoint in endpoints {
            Self::release(&mut s, endpoint, self.cap, now);
        }
        let woken = s.ready.len().saturating_sub(before);
        drop(s);
        for _ in 0..woken {
            self.work.notify_one();
        }
    }

    /// The recorder wrote a 410 of `endpoint`: the store has it disabled now.
    pub fn gone_recorded(&self, endpoint: i64) {
        let mut s = self.lock();
        let n = s.gone.entry(endpoint).or_default();
        *n -= 1;
        if *n <= 0 {
            s.gone.remove(&endpoint);
        }
    }

    /// Stops handing out work; returns the ids of what was claimed but never sent.
    pub fn stop(&self) -> Vec<i64> {
        let mut s = self.lock();
        // Set under the lock, so a `pin` racing the shutdown sees it and gives back its
        // claim rather than putting work on a board no worker reads.
        s.stopping = true;
        let mut unsent: Vec<i64> = s.ready.drain(..).map(|d| d.delivery_id).collect();
        for (_, queue) in s.waiting.drain() {
            unsent.extend(queue.into_iter().map(|d| d.delivery_id));
        }
        drop(s);
        self.work.notify_all();
        unsent
    }

    /// Deliveries being sent right now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ExtraHeaders;

    /// A clock that stays at 0: these tests pass the time to each call, and a delivery
    /// taken "at 0" moves no schedule past what the calls say.
    fn clock() -> Arc<dyn Clock> {
        Arc::new(crate::clock::ManualClock::at(0))
    }

    fn claimed(delivery: i64, endpoint: i64) -> Claimed {
        Claimed {
            delivery_id: delivery,
            endpoint_id: endpoint,
            tenant_id: "default".into(),
            event_id: format!("evt_{delivery}"),
            body: "{}".into(),
            url: "http://127.0.0.1:1/".into(),
            headers: ExtraHeaders::default(),
            schemes: None,
            secret: "s".into(),
            previous_secret: None,
            round_attempts: 0,
            rate_limit: None,
            last_attempt_at: None,
            fifo: false,
            retry_schedule: None,
            request_timeout: None,
            attempts: 0,
            created_at: 0,
            operational: false,
            traceparent: None,
            reach: Default::default(),
            auth: None,
            event_type: "a.b".into(),
            transformation: None,
        }
    }

    #[test]
    fn an_endpoint_never_has_more_than_its_cap_in_flight() {
        let board = Board::new(2, None, clock());
        board.pin((1..=5).map(|d| claimed(d, 7)).collect(), 0);
        let first = board.try_next().unwrap();
        let second = board.try_next().unwrap();
        assert!(board.try_next().is_none(), "the third waits behind the cap");
        assert_eq!(board.in_flight(), 2);
        // Finishing hands the next one of the same endpoint straight to the worker.
        let done = board.finish(first.endpoint_id, false, None, 0);
        assert_eq!(done.next.unwrap().delivery_id, 3);
        assert!(!done.dry);
        assert_eq!(board.in_flight(), 2);
        let done = board.finish(second.endpoint_id, false, None, 0);
        assert_eq!(done.next.unwrap().delivery_id, 4);
        let done = board.finish(7, false, None, 0);
        assert_eq!(done.next.unwrap().delivery_id, 5);
        assert!(done.dry, "its queue ran dry: time to claim more");
    }

    #[test]
    fn a_gone_endpoint_gets_nothing_more_until_recorded() {
        let board = Board::new(1, None, clock());
        board.pin(vec![claimed(1, 3), claimed(2, 3)], 0);
        let d = board.try_next().unwrap();
        let done = board.finish(d.endpoint_id, true, None, 0);
        assert!(done.next.is_none());
        assert_eq!(board.total(), 0);
        assert_eq!(board.held().get(&3), Some(&usize::MAX));
        board.gone_recorded(3);
        assert_eq!(board.held().get(&3), None);
    }

    #[test]
    fn a_rate_limited_endpoint_never_gets_two_requests_closer_than_its_interval() {
        let board = Board::new(8, Some(2.0), clock()); // 2/s by default: 500 ms apart
        board.pin((1..=3).map(|d| claimed(d, 5)).collect(), 10_000);
        let first = board.try_next().unwrap();
        assert!(board.try_next().is_none(), "the second waits for its turn");
        assert_eq!(board.next_release_at(), Some(10_500));
        let done = board.finish(first.endpoint_id, false, None, 10_100);
        assert!(
            done.next.is_none() && done.paced,
            "finishing early does not jump the queue"
        );
        board.release_due(10_499);
        assert!(board.try_next().is_none());
        board.release_due(10_500);
        assert_eq!(board.try_next().unwrap().delivery_id, 2);
        // A 429 with Retry-After pushes the schedule out; a burst still only queues.
        let done = board.finish(5, false, Some(20_000), 10_600);
        assert!(done.paced);
        assert_eq!(board.next_release_at(), Some(20_000));
        board.release_due(19_999);
        assert!(board.try_next().is_none());
        board.release_due(20_000);
        assert_eq!(board.try_next().unwrap().delivery_id, 3);
    }

    #[test]
    fn the_schedule_starts_from_the_last_attempt_in_the_store() {
        let board = Board::new(8, None, clock());
        let mut d = claimed(1, 9);
        d.rate_limit = Some(1.0);
        d.last_attempt_at = Some(5_000);
        board.pin(vec![d], 5_200);
        assert!(
            board.try_next().is_none(),
            "a restart does not reset the limit"
        );
        board.release_due(6_000);
        assert_eq!(board.try_next().unwrap().delivery_id, 1);
    }

    #[test]
    fn the_limit_grows_while_answers_are_fast_and_halves_once_per_window_on_overload() {
        let board = Board::adaptive(8, 32, None, clock());
        assert_eq!(board.limit_of(1), 8);
        for _ in 0..40 {
            board.observe(1, true, false, 50);
        }
        let grown = board.limit_of(1);
        assert!(grown > 8 && grown <= 32, "{grown}");
        // Slow answers (over twice the fastest) hold it where it is.
        for _ in 0..40 {
            board.observe(1, true, false, 500);
        }
        assert_eq!(board.limit_of(1), grown);
        // A burst of overloads halves it once per window, not once per answer.
        for _ in 0..grown {
            board.observe(1, false, true, 0);
        }
        let halved = board.limit_of(1);
        assert!(
            halved >= grown / 2 - 1 && halved < grown,
            "{grown} -> {halved}"
        );
        for _ in 0..200 {
            board.observe(1, false, true, 0);
        }
        assert_eq!(board.limit_of(1), 1, "never below one");
        // A plain 4xx says nothing about capacity.
        board.observe(2, false, false, 5);
        assert_eq!(board.limit_of(2), 8);
        assert_eq!(board.limits().get(&1), Some(&1));
    }

    #[test]
    fn after_a_probe_the_limit_doubles_back_to_its_start_and_then_adapts_as_before() {
        let board = Board::adaptive(8, 32, None, clock());
        for _ in 0..100 {
            board.observe(1, false, true, 0); // the outage halved it to one
        }
        assert_eq!(board.limit_of(1), 1);
        board.probing(1);
        assert_eq!(board.limit_of(1), 1, "the probe goes alone");
        let mut seen = Vec::new();
        for _ in 0..4 {
            board.observe(1, true, false, 20);
            seen.push(board.limit_of(1));
        }
        assert_eq!(
            seen,
            [2, 4, 8, 8],
            "doubling, then back to additive increase"
        );
        // Without the probe's ramp, ten successes from one climb only to about four.
        for _ in 0..100 {
            board.observe(2, false, true, 0);
        }
        for _ in 0..10 {
            board.observe(2, true, false, 20);
        }
        assert!(board.limit_of(2) <= 4, "{}", board.limit_of(2));
        // A failure while ramping ends the ramp and halves what it had reached.
        board.probing(3);
        board.observe(3, true, false, 20);
        board.observe(3, true, false, 20);
        assert_eq!(board.limit_of(3), 4);
        board.observe(3, false, true, 0);
        assert_eq!(board.limit_of(3), 2);
        board.observe(3, true, false, 20);
        assert_eq!(board.limit_of(3), 2, "+1/2: additive again");
    }

    #[test]
    fn a_probe_is_sent_alone_even_if_more_is_pinned() {
        let board = Board::new(4, None, clock());
        board.probing(6);
        board.pin(vec![claimed(1, 6), claimed(2, 6), claimed(3, 6)], 0);
        assert!(board.try_next().is_some());
        assert!(board.try_next().is_none(), "one in flight while probing");
        // Its success lets two go at once: the worker goes on with one, another takes one.
        board.observe(6, true, false, 10);
        let done = board.finish(6, false, None, 0);
        assert_eq!(done.next.map(|d| d.delivery_id), Some(2));
        board.release_due(0);
        assert_eq!(board.try_next().map(|d| d.delivery_id), Some(3));
    }

    #[test]
    fn stop_returns_what_was_never_sent() {
        let board = Board::new(1, None, clock());
        board.pin(vec![claimed(1, 3), claimed(2, 3), claimed(3, 4)], 0);
        let mut unsent = board.stop();
        unsent.sort();
        assert_eq!(unsent, vec![1, 2, 3]);
        assert!(board.next().is_none(), "a stopped board answers at once");
        assert_eq!(
            board.pin(vec![claimed(4, 3)], 0),
            vec![4],
            "and takes nothing more"
        );
    }
}
