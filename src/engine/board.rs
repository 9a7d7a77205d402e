//! The board: claimed deliveries between the dispatcher and the workers, per endpoint.
//!
//! The dispatcher pins what it claimed to the board; each endpoint has at most
//! `endpoint_concurrency` deliveries `in_flight`, the rest of its claim `waiting` behind
//! them, and whatever may go now sits in `ready` for any idle worker. A worker that finishes
//! a request takes its endpoint's next waiting delivery itself and goes on with it, so a
//! busy endpoint's deliveries flow from worker to worker without a round trip through the
//! dispatcher; only when an endpoint's queue runs dry does the dispatcher hear about it.
//!
//! One mutex guards it all: each operation is a few map lookups, far below the cost of the
//! HTTP request around it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::store::Claimed;

pub struct Board {
    state: Mutex<State>,
    work: Condvar,
    /// Per-endpoint in-flight cap.
    cap: usize,
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
}

impl Board {
    pub fn new(cap: usize) -> Board {
        Board {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            cap: cap.max(1),
        }
    }

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
        held
    }

    /// Pins freshly claimed deliveries and wakes workers for what may go now.
    pub fn pin(&self, claimed: Vec<Claimed>) {
        let mut s = self.lock();
        let before = s.ready.len();
        for delivery in claimed {
            s.total += 1;
            let endpoint = delivery.endpoint_id;
            s.waiting.entry(endpoint).or_default().push_back(delivery);
            Self::release(&mut s, endpoint, self.cap);
        }
        let woken = s.ready.len().saturating_sub(before);
        drop(s);
        // One idle worker per delivery that may go: waking them all for one delivery
        // cost more CPU than the delivery itself at low rates.
        for _ in 0..woken {
            self.work.notify_one();
        }
    }

    /// Moves `endpoint`'s waiting deliveries to `ready` while it has free slots.
    fn release(s: &mut State, endpoint: i64, cap: usize) {
        while s.in_flight.get(&endpoint).copied().unwrap_or(0) < cap {
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

    /// The next delivery for an idle worker; waits up to `timeout`. `None` on timeout or
    /// once the board is stopping.
    pub fn next(&self, timeout: Duration) -> Option<Claimed> {
        let mut s = self.lock();
        loop {
            if s.stopping {
                return None;
            }
            if let Some(d) = s.ready.pop_front() {
                return Some(d);
            }
            let (guard, result) = self
                .work
                .wait_timeout(s, timeout)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
            if result.timed_out() && s.ready.is_empty() {
                return None;
            }
        }
    }

    /// Takes what is ready without waiting (the engine harness).
    pub fn try_next(&self) -> Option<Claimed> {
        self.lock().ready.pop_front()
    }

    /// A worker finished a request of `endpoint` (`gone`: it answered 410).
    pub fn finish(&self, endpoint: i64, gone: bool) -> Finished {
        let mut s = self.lock();
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
            };
        }
        let next = match s.waiting.get_mut(&endpoint) {
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
        Finished { next, dry, dropped }
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
            attempts: 0,
            created_at: 0,
        }
    }

    #[test]
    fn an_endpoint_never_has_more_than_its_cap_in_flight() {
        let board = Board::new(2);
        board.pin((1..=5).map(|d| claimed(d, 7)).collect());
        let first = board.try_next().unwrap();
        let second = board.try_next().unwrap();
        assert!(board.try_next().is_none(), "the third waits behind the cap");
        assert_eq!(board.in_flight(), 2);
        // Finishing hands the next one of the same endpoint straight to the worker.
        let done = board.finish(first.endpoint_id, false);
        assert_eq!(done.next.unwrap().delivery_id, 3);
        assert!(!done.dry);
        assert_eq!(board.in_flight(), 2);
        let done = board.finish(second.endpoint_id, false);
        assert_eq!(done.next.unwrap().delivery_id, 4);
        let done = board.finish(7, false);
        assert_eq!(done.next.unwrap().delivery_id, 5);
        assert!(done.dry, "its queue ran dry: time to claim more");
    }

    #[test]
    fn a_gone_endpoint_gets_nothing_more_until_recorded() {
        let board = Board::new(1);
        board.pin(vec![claimed(1, 3), claimed(2, 3)]);
        let d = board.try_next().unwrap();
        let done = board.finish(d.endpoint_id, true);
        assert!(done.next.is_none());
        assert_eq!(board.total(), 0);
        assert_eq!(board.held().get(&3), Some(&usize::MAX));
        board.gone_recorded(3);
        assert_eq!(board.held().get(&3), None);
    }

    #[test]
    fn stop_returns_what_was_never_sent() {
        let board = Board::new(1);
        board.pin(vec![claimed(1, 3), claimed(2, 3), claimed(3, 4)]);
        let mut unsent = board.stop();
        unsent.sort();
        assert_eq!(unsent, vec![1, 2, 3]);
        assert!(board.next(Duration::from_millis(1)).is_none());
    }
}
