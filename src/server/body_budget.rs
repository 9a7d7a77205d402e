//! A bound on the memory that request bodies hold while they are read.
//!
//! `max_payload` bounds one body and the body timeout bounds how long it may take, but
//! neither bounds how many arrive at once: a few hundred clients each sending most of a
//! 1 MiB body and stalling held ~450 MiB. Every body therefore takes its bytes from one
//! shared budget (`max_body_memory`) before they are buffered: the declared
//! `Content-Length` up front, or chunk by chunk for a chunked body. A body that does not fit
//! is refused with 503 `busy` and `Retry-After` without being read, and the bytes go back to
//! the budget when the request's body is dropped.
//!
//! One client (an address, an IPv6 network: `client_addr::client_key`) may hold at most a
//! share of the budget (`SHARE`, never less than one largest body): otherwise one address
//! announcing large bodies on its few hundred connections took all of it, and every other
//! client's requests were refused `busy`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// One client may hold this fraction of the budget (1/SHARE).
pub const SHARE: usize = 8;

/// The bytes all bodies being read may hold together, and each client.
pub struct BodyBudget {
    limit: usize,
    share: usize,
    used: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Bytes taken from the budget; given back on drop.
pub struct Permit {
    bytes: usize,
    client: Option<IpAddr>,
    budget: Option<Arc<BodyBudget>>,
}

impl BodyBudget {
    /// `limit` bytes in all; one client `limit / SHARE`, but at least `largest_body` (so a
    /// client can always send one body of the largest size allowed).
    pub fn new(limit: usize, largest_body: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            share: (limit / SHARE).max(largest_body).min(limit),
            used: Mutex::new(Used::default()),
        })
    }

    /// Bytes held now by bodies in flight.
    pub fn used(&self) -> usize {
        self.lock().total
    }

    /// The most one client may hold.
    pub fn share(&self) -> usize {
        self.share
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, client: Option<IpAddr>, n: usize) -> bool {
        let mut used = self.lock();
        let total = used.total.saturating_add(n);
        if total > self.limit {
            return false;
        }
        if let Some(client) = client {
            let mine = used.by_client.get(&client).copied().unwrap_or(0);
            if mine.saturating_add(n) > self.share {
                return false;
            }
            used.by_client.insert(client, mine + n);
        }
        used.total = total;
        true
    }

    fn give(&self, client: Option<IpAddr>, n: usize) {
        let mut used = self.lock();
        used.total -= n;
        if let Some(client) = client {
            if let Some(mine) = used.by_client.get_mut(&client) {
                *mine -= n;
                if *mine == 0 {
                    used.by_client.remove(&client);
                }
            }
        }
    }

    /// `n` bytes for `client`, or `None` when they would pass the limit or its share.
    pub fn reserve(self: &Arc<Self>, client: Option<IpAddr>, n: usize) -> Option<Permit> {
        self.take(client, n).then(|| Permit {
            bytes: n,
            client,
            budget: Some(self.clone()),
        })
    }
}

impl Permit {
    /// A permit outside any budget (no budget configured).
    pub fn unbounded() -> Permit {
        Permit {
            bytes: 0,
            client: None,
            budget: None,
        }
    }

    /// Makes the permit cover `total` bytes; false when the budget cannot give more.
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if total <= self.bytes {
            return true;
        }
        if !budget.take(self.client, total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(self.client, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_one_budget_and_give_it_back() {
        let budget = BodyBudget::new(100, 100);
        let a = budget.reserve(None, 60).unwrap();
        assert!(budget.reserve(None, 50).is_none(), "60 + 50 > 100");
        let mut b = budget.reserve(None, 30).unwrap();
        assert!(b.grow_to(40));
        assert!(!b.grow_to(41), "60 + 41 > 100");
        drop(a);
        assert!(b.grow_to(90));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn one_client_takes_at_most_its_share() {
        let budget = BodyBudget::new(800, 10);
        assert_eq!(budget.share(), 100);
        let (a, b) = (
            Some("192.0.2.1".parse().unwrap()),
            Some("192.0.2.2".parse().unwrap()),
        );
        let held: Vec<_> = (0..10).filter_map(|_| budget.reserve(a, 10)).collect();
        assert_eq!(held.len(), 10, "a's share is 100 bytes");
        assert!(budget.reserve(a, 1).is_none());
        let mut other = budget
            .reserve(b, 100)
            .expect("another client is not affected");
        assert!(!other.grow_to(101), "nor can it pass its own share");
        drop(held);
        assert!(budget.reserve(a, 100).is_some());
        drop(other);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_share_holds_at_least_one_largest_body() {
        assert_eq!(BodyBudget::new(800, 300).share(), 300);
        assert_eq!(BodyBudget::new(800, 1000).share(), 800);
    }
}
