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

/// The latest `limit` of attempts keyed by (delivery id, attempt id; 0 for the first
/// attempt kept in its delivery row), newest first.
pub fn newest(mut all: Vec<((i64, i64), RecentAttempt)>, limit: usize) -> Vec<RecentAttempt> {
    all.sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key));
    all.into_iter().take(limit).map(|(_, a)| a).collect()
}

/// One UTC hour, in ms: the rollups' unit.
pub const HOUR_MS: i64 = 3_600_000;

/// First attempts of one hour whose publish → attempt latency fell in one histogram bucket
/// (`latency_bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyCount {
    pub hour: i64,
    pub bucket: i32,
    pub count: i64,
}

/// The histogram bucket of a latency (ms): exact below 16 ms, then 8 buckets per power of
/// two, so a bucket is at most 12.5 % wide and a day's worth of milliseconds needs 200
/// buckets. The migrations that back-filled the rollups compute the same in SQL.
pub fn latency_bucket(ms: i64) -> i32 {
    let ms = ms.max(0) as u64;
    if ms < 16 {
        return ms as i32;
    }
    let e = 63 - ms.leading_zeros() as i64; // floor(log2 ms), ≥ 4
    (16 + (e - 4) * 8 + ((ms >> (e - 3)) & 7) as i64) as i32
}

/// The lowest latency (ms) in `bucket` and the first one past it.
pub fn latency_bucket_range(bucket: i32) -> (i64, i64) {
    let b = bucket.max(0) as i64;
    if b < 16 {
        return (b, b + 1);
    }
    let e = (b - 16) / 8 + 4;
    let m = (b - 16) % 8;
    let width = 1i64 << (e - 3);
    let low = (8 + m) * width;
    (low, low + width)
}

/// Nearest-rank percentile `p` of a histogram (`(bucket, count)` in bucket order, not all
/// empty), as the middle of the bucket it falls in (exact below 16 ms).
pub fn histogram_percentile(counts: &[(i32, i64)], p: f64) -> i64 {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let rank = (((p / 100.0) * total as f64).ceil() as i64).clamp(1, total.max(1));
    let mut seen = 0;
    for (bucket, n) in counts {
        seen += n;
        if seen >= rank {
            let (low, high) = latency_bucket_range(*bucket);
            return low + (high - 1 - low) / 2;
        }
    }
    counts.last().map_or(0, |(b, _)| latency_bucket_range(*b).0)
}

/// What one batch of attempt records adds to the rollups, summed in memory so the store
/// writes one row per hour (and per hour and bucket) however many records the batch holds.
#[derive(Debug, Default)]
pub struct Rollup {
    /// Hour → (succeeded, failed).
    pub hours: std::collections::BTreeMap<i64, (i64, i64)>,
    /// (Hour, bucket) → first attempts.
    pub latency: std::collections::BTreeMap<(i64, i32), i64>,
}

impl Rollup {
    /// One attempt that started at `started_at`; `first_latency` is its publish → attempt
    /// latency when it was its delivery's first attempt.
    pub fn add(&mut self, started_at: i64, status_code: Option<u16>, first_latency: Option<i64>) {
        let hour = started_at.div_euclid(HOUR_MS) * HOUR_MS;
        let counts = self.hours.entry(hour).or_default();
        if status_code.is_some_and(|s| (200..300).contains(&s)) {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        if let Some(latency) = first_latency {
            *self
                .latency
                .entry((hour, latency_bucket(latency)))
                .or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_cover_every_value_once_and_in_order() {
        let mut last = -1;
        for ms in 0..100_000 {
            let b = latency_bucket(ms);
            assert!(b == last || b == last + 1, "{ms} → {b} after {last}");
            let (low, high) = latency_bucket_range(b);
            assert!(low <= ms && ms < high, "{ms} not in {low}..{high}");
            last = b;
        }
        assert_eq!(latency_bucket(86_400_000), latency_bucket(86_400_001));
        assert!(latency_bucket(86_400_000) < 220);
        assert_eq!(latency_bucket(-5), 0);
    }

    #[test]
    fn percentiles_of_a_histogram_are_exact_below_16_ms_and_close_above() {
        let h = [(latency_bucket(3), 98), (latency_bucket(1_000), 2)];
        assert_eq!(histogram_percentile(&h, 50.0), 3);
        let p99 = histogram_percentile(&h, 99.0);
        assert!((940..=1_060).contains(&p99), "{p99}");
    }

    #[test]
    fn a_rollup_sums_a_batch_per_hour() {
        let mut r = Rollup::default();
        r.add(HOUR_MS + 5, Some(200), Some(4));
        r.add(HOUR_MS + 9, Some(500), None);
        r.add(HOUR_MS + 10, None, Some(4));
        r.add(2 * HOUR_MS, Some(204), None);
        assert_eq!(r.hours[&HOUR_MS], (1, 2));
        assert_eq!(r.hours[&(2 * HOUR_MS)], (1, 0));
        assert_eq!(r.latency[&(HOUR_MS, 4)], 2);
    }
}
