//! The due-time index: which endpoints may have work to claim, and from when.
//!
//! A claim round looks only at the endpoints this index says are due, oldest first, so an
//! endpoint with nothing pending costs the dispatcher nothing, however many there are. The
//! index is a cache of the store, kept *early*: an endpoint may be listed sooner than its
//! work is due (a round then reads it, finds nothing to take, and learns its real time),
//! but never later, and never missing while it has work — that is what every source below
//! is for:
//! - a claim round says, for every endpoint it read, when it may next have work
//!   (`settle`, from `Claim::looked`);
//! - the dispatcher scans the store (`Outbox::due_scan`): in full when it starts, at least
//!   every second, and after changes it cannot see (`Signal::Wake` from the API's retry,
//!   recover or endpoint update, via `EngineHandle::rescan`); only the deliveries written
//!   since its last scan after a publish;
//! - the recorder adds an endpoint whose attempt was scheduled for a retry, and claims
//!   given back unsent put their endpoint back at once (`touch`).
//!
//! `touch` may race a round that read the store before the touch's write committed and
//! then settles the same endpoint from that older view. So each touch is stamped with a
//! generation, a round notes the generation before it reads (`generation`), and `settle`
//! lets a later touch stand (it keeps the earlier of the two times) instead of removing or
//! postponing the endpoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The index, shared by the dispatcher (which reads and settles it), the recorder and the
/// workers (which touch it).
#[derive(Default)]
pub struct Due(Mutex<DueIndex>);

impl Due {
    pub fn lock(&self) -> MutexGuard<'_, DueIndex> {
        // Every operation leaves the map and the order consistent before it can panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `endpoint` may have work from `at` (ms).
    pub fn touch(&self, endpoint: i64, at: i64) {
        self.lock().touch(endpoint, at);
    }

    /// The next round scans the store in full first.
    pub fn rescan(&self) {
        self.lock().rescan = true;
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    /// The generation of the last `touch`; 0 if only rounds and scans set it.
    touched: u64,
}

#[derive(Default)]
pub struct DueIndex {
    entries: HashMap<i64, Entry>,
    /// (at, endpoint) of every entry: the due order.
    order: BTreeSet<(i64, i64)>,
    generation: u64,
    /// A full scan is wanted before the next round.
    pub rescan: bool,
}

impl DueIndex {
    fn set(&mut self, endpoint: i64, entry: Entry) {
        if let Some(old) = self.entries.insert(endpoint, entry) {
            self.order.remove(&(old.at, endpoint));
        }
        self.order.insert((entry.at, endpoint));
    }

    fn remove(&mut self, endpoint: i64) {
        if let Some(old) = self.entries.remove(&endpoint) {
            self.order.remove(&(old.at, endpoint));
        }
    }

    /// `endpoint` may have work from `at`: kept at the earlier of that and what it had.
    pub fn touch(&mut self, endpoint: i64, at: i64) {
        self.generation += 1;
        let at = self.entries.get(&endpoint).map_or(at, |e| e.at.min(at));
        let touched = self.generation;
        self.set(endpoint, Entry { at, touched });
    }

    /// Noted by a round before it reads the store (see the module comment).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What a round that read the store after generation `seen` learnt of `endpoint`: its
    /// next work comes due at `next`, or it has none. A touch since `seen` stands.
    pub fn settle(&mut self, endpoint: i64, next: Option<i64>, seen: u64) {
        match (self.entries.get(&endpoint).copied(), next) {
            (Some(e), next) if e.touched > seen => {
                let at = next.map_or(e.at, |n| n.min(e.at));
                self.set(endpoint, Entry { at, ..e });
            }
            (_, Some(at)) => self.set(endpoint, Entry { at, touched: 0 }),
            (_, None) => self.remove(endpoint),
        }
    }

    /// A full scan read after generation `seen` (`DueScan::full`): the endpoints it lists
    /// and their times replace the rest, except what was touched since.
    pub fn replace(&mut self, due: &[(i64, i64)], seen: u64) {
        let listed: HashMap<i64, i64> = due.iter().copied().collect();
        let gone: Vec<i64> = self
            .entries
            .iter()
            .filter(|(e, entry)| entry.touched <= seen && !listed.contains_key(e))
            .map(|(e, _)| *e)
            .collect();
        for endpoint in gone {
            self.remove(endpoint);
        }
        for (&endpoint, &at) in &listed {
            self.settle(endpoint, Some(at), seen);
        }
    }

    /// The endpoints that may have work at `now`, oldest due first.
    pub fn due(&self, now: i64) -> impl Iterator<Item = i64> + '_ {
        self.order
            .range(..=(now, i64::MAX))
            .map(|(_, endpoint)| *endpoint)
    }

    /// When the first endpoint after `now` comes due (the dispatcher's sleep).
    pub fn next_after(&self, now: i64) -> Option<i64> {
        self.order
            .range((now.saturating_add(1), i64::MIN)..)
            .next()
            .map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_lists_endpoints_oldest_first_up_to_now() {
        let mut index = DueIndex::default();
        index.touch(1, 300);
        index.touch(2, 100);
        index.touch(3, 200);
        index.touch(4, 900);
        assert_eq!(index.due(300).collect::<Vec<_>>(), vec![2, 3, 1]);
        assert_eq!(index.next_after(300), Some(900));
        assert_eq!(index.next_after(900), None);
    }

    #[test]
    fn a_touch_keeps_the_earlier_time() {
        let mut index = DueIndex::default();
        index.touch(1, 500);
        index.touch(1, 700);
        assert_eq!(index.next_after(0), Some(500));
        index.touch(1, 200);
        assert_eq!(index.next_after(0), Some(200));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_round_settles_what_it_read_unless_a_touch_came_after_its_read() {
        let mut index = DueIndex::default();
        index.touch(1, 100);
        index.touch(2, 100);
        let seen = index.generation();
        // A retry of endpoint 2 recorded while the round read: it stands.
        index.touch(2, 5_000);
        index.settle(1, None, seen);
        index.settle(2, None, seen);
        assert_eq!(index.due(i64::MAX).collect::<Vec<_>>(), vec![2]);
        // A later round, after the touch, may move it.
        let seen = index.generation();
        index.settle(2, Some(9_000), seen);
        assert_eq!(index.next_after(0), Some(9_000));
        index.settle(2, None, seen);
        assert!(index.is_empty());
    }

    #[test]
    fn a_full_scan_replaces_all_but_what_was_touched_since() {
        let mut index = DueIndex::default();
        index.touch(1, 100); // gone from the store by the scan
        index.touch(2, 100);
        let seen = index.generation();
        index.touch(3, 50); // published during the scan
        index.replace(&[(2, 400), (4, 10)], seen);
        assert_eq!(index.due(i64::MAX).collect::<Vec<_>>(), vec![4, 3, 2]);
        assert_eq!(index.next_after(100), Some(400));
    }
}
