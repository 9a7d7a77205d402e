//! What the operator's view reads: attempts counted per time bucket, the queue and the
//! endpoints' states for gauges, and an endpoint's recent attempts. Every read here is
//! bounded by an index or a limit, so a page view or a scrape never walks the history.

use serde::Serialize;

/// Attempts that started in one bucket (`start` in ms, inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttemptBucket {
    pub start: i64,
    /// Answered 2xx.
    pub succeeded: i64,
    /// Any other answer, or no answer.
    pub failed: i64,
}

/// Current levels, for /metrics gauges and the overview.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Gauges {
    /// Deliveries waiting to be sent (due now or later).
    pub pending: i64,
    pub endpoints_active: i64,
    pub endpoints_paused: i64,
    pub endpoints_disabled: i64,
    /// Active or paused endpoints whose last delivery failed (no success since).
    pub endpoints_failing: i64,
    /// Endpoints whose circuit is open (deliveries wait for a probe).
    pub circuits_open: i64,
}

/// One attempt as an endpoint's page charts and lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentAttempt {
    pub delivery_id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

impl RecentAttempt {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The first attempt of a delivery: when it started, and how long after the publish.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FirstAttempt {
    pub started_at: i64,
    pub latency_ms: i64,
}
