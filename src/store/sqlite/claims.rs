//! Claims held in memory: which deliveries this process has handed to a worker and not yet
//! recorded.
//!
//! One process owns a SQLite file, so a claim needs no row update and no fsync: the claim
//! round is a read that skips what is held here. A delivery leaves this set only after its
//! attempt is committed (so the next claim round sees its new state, never the old one) or
//! when it is given back unsent. A crash forgets the set, and with it nothing durable: every
//! delivery that was held is still `pending` and due in the file, and is sent again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Claims {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// delivery id -> endpoint id
    held: HashMap<i64, i64>,
    per_endpoint: HashMap<i64, usize>,
}

impl Claims {
    /// Locks the set for one claim round. The round must read the file while it holds
    /// this: `release` runs only after a record's commit, so either the round's reads
    /// start after that commit (and see the delivery's new state), or the delivery is
    /// still held when the round takes. Without the lock, a round that read a delivery as
    /// pending just before its record committed could take it just after its release, and
    /// send it twice.
    pub fn round(&self) -> Round<'_> {
        Round(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn held_count(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.held.len()
    }

    /// Lets go of `deliveries`. Called only after their records committed (or for ones
    /// never sent), which is the ordering `round` relies on; unknown ids are ignored, so a
    /// double release is harmless.
    pub fn release(&self, deliveries: &[i64]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for delivery in deliveries {
            if let Some(endpoint) = inner.held.remove(delivery) {
                if let Some(n) = inner.per_endpoint.get_mut(&endpoint) {
                    *n -= 1;
                    if *n == 0 {
                        inner.per_endpoint.remove(&endpoint);
                    }
                }
            }
        }
    }

    /// Forgets every claim when an engine starts on this store: a previous engine in the
    /// same process (tests, a restart of the engine alone) may have left some behind, and
    /// what it held is still pending in the file.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.held.clear();
        inner.per_endpoint.clear();
    }
}

/// The claim set, locked for one claim round.
pub struct Round<'a>(MutexGuard<'a, Inner>);

impl Round<'_> {
    /// How many deliveries of `endpoint` are held.
    pub fn held_for(&self, endpoint: i64) -> usize {
        self.0.per_endpoint.get(&endpoint).copied().unwrap_or(0)
    }

    /// Whether this process holds `delivery`.
    pub fn holds(&self, delivery: i64) -> bool {
        self.0.held.contains_key(&delivery)
    }

    /// Takes the ids of `candidates` (delivery, endpoint) that nobody holds, up to `limit`.
    pub fn take(&mut self, candidates: &[(i64, i64)], limit: usize) -> Vec<i64> {
        let inner = &mut *self.0;
        let mut taken = Vec::with_capacity(limit.min(candidates.len()));
        for &(delivery, endpoint) in candidates {
            if taken.len() == limit {
                break;
            }
            if inner.held.contains_key(&delivery) {
                continue;
            }
            inner.held.insert(delivery, endpoint);
            *inner.per_endpoint.entry(endpoint).or_default() += 1;
            taken.push(delivery);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::Claims;

    #[test]
    fn a_held_delivery_is_not_taken_twice_until_released() {
        let claims = Claims::default();
        assert_eq!(claims.round().take(&[(1, 10), (2, 10)], 5), vec![1, 2]);
        assert_eq!(
            claims.round().take(&[(1, 10), (2, 10), (3, 10)], 5),
            vec![3]
        );
        assert_eq!(claims.round().held_for(10), 3);
        claims.release(&[1]);
        assert_eq!(claims.round().held_for(10), 2);
        assert_eq!(claims.round().take(&[(1, 10)], 5), vec![1]);
        let mut round = claims.round();
        assert_eq!(round.take(&[(4, 11), (5, 11)], 1), vec![4], "limit holds");
    }
}
