//! A bound on the memory that request bodies hold while they are read.
//!
//! `max_payload` bounds one body and the body timeout bounds how long it may take, but
//! neither bounds how many arrive at once: a few hundred clients each sending most of a
//! 1 MiB body and stalling held ~450 MiB. Every body therefore takes its bytes from one
//! shared budget (`max_body_memory`) before they are buffered: the declared
//! `Content-Length` up front, or chunk by chunk for a chunked body. A body that does not fit
//! is refused with 503 `busy` and `Retry-After` without being read, and the bytes go back to
//! the budget when the request's body is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes all bodies being read may hold together.
pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

/// Bytes taken from the budget; given back on drop.
pub struct Permit {
    bytes: usize,
    budget: Option<Arc<BodyBudget>>,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now by bodies in flight.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// `n` bytes, or `None` when they would pass the limit.
    pub fn reserve(self: &Arc<Self>, n: usize) -> Option<Permit> {
        self.take(n).then(|| Permit {
            bytes: n,
            budget: Some(self.clone()),
        })
    }
}

impl Permit {
    /// A permit outside any budget (no budget configured).
    pub fn unbounded() -> Permit {
        Permit {
            bytes: 0,
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
        if !budget.take(total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_one_budget_and_give_it_back() {
        let budget = BodyBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_none(), "60 + 50 > 100");
        let mut b = budget.reserve(30).unwrap();
        assert!(b.grow_to(40));
        assert!(!b.grow_to(41), "60 + 41 > 100");
        drop(a);
        assert!(b.grow_to(90));
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
