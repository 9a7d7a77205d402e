//! How one endpoint has been doing, for its page: attempts per hour (succeeded vs failed)
//! and response times over the last 24 h, its success rate, and its last failures.
//!
//! Read from the endpoint's latest attempts only (`RECENT`, newest first), so a busy
//! endpoint's page costs the same as a quiet one's; the caption says when the 24 hours
//! hold more than that.

use super::charts::{self, Chart, HOUR};
use super::render::PageError;
use crate::clock::now_ms;
use crate::store::{AttemptBucket, RecentAttempt, Store};

const RECENT: usize = 2_000;
const FAILURES_SHOWN: usize = 5;

pub struct EndpointHealth {
    pub charts: Vec<Chart>,
    pub succeeded: i64,
    pub failed: i64,
    /// Attempts older than the read window were left out of the 24 hours.
    pub truncated: bool,
    pub failures: Vec<RecentAttempt>,
}

impl EndpointHealth {
    pub fn success_rate(&self) -> Option<String> {
        let all = self.succeeded + self.failed;
        (all > 0).then(|| format!("{:.1} %", 100.0 * self.succeeded as f64 / all as f64))
    }

    pub fn recent_limit(&self) -> usize {
        RECENT
    }
}

pub async fn load(store: &Store, tenant: &str, endpoint: i64) -> Result<EndpointHealth, PageError> {
    let recent = store
        .endpoint_recent_attempts(tenant, endpoint, RECENT)
        .await?;
    Ok(summarise(recent, now_ms()))
}

/// Pure: the page's figures from the latest attempts (newest first).
pub fn summarise(recent: Vec<RecentAttempt>, now: i64) -> EndpointHealth {
    let hours = charts::slots(now, HOUR, 24);
    let truncated =
        recent.len() >= RECENT && recent.last().is_some_and(|a| a.started_at >= hours[0]);
    let in_window: Vec<&RecentAttempt> =
        recent.iter().filter(|a| a.started_at >= hours[0]).collect();
    let buckets: Vec<AttemptBucket> = hours
        .iter()
        .map(|start| {
            let here = in_window
                .iter()
                .filter(|a| a.started_at >= *start && a.started_at < start + HOUR);
            let (mut succeeded, mut failed) = (0, 0);
            for a in here {
                if a.succeeded() {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
            }
            AttemptBucket {
                start: *start,
                succeeded,
                failed,
            }
        })
        .collect();
    let durations: Vec<(i64, i64)> = in_window
        .iter()
        .filter(|a| a.status_code.is_some())
        .map(|a| (a.started_at, a.duration_ms))
        .collect();
    let charts = vec![
        charts::attempts_chart(
            "chart-endpoint-attempts",
            "Attempts per hour, last 24 h",
            &buckets,
            &hours,
            HOUR,
        ),
        charts::latency_chart(
            "chart-endpoint-response",
            "Response time per hour, last 24 h",
            &durations,
            &hours,
            HOUR,
        ),
    ];
    let (succeeded, failed) = buckets
        .iter()
        .fold((0, 0), |(s, f), b| (s + b.succeeded, f + b.failed));
    let failures = recent
        .into_iter()
        .filter(|a| !a.succeeded())
        .take(FAILURES_SHOWN)
        .collect();
    EndpointHealth {
        charts,
        succeeded,
        failed,
        truncated,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(started_at: i64, status: Option<u16>) -> RecentAttempt {
        RecentAttempt {
            delivery_id: started_at,
            started_at,
            duration_ms: 40,
            status_code: status,
            error: status.is_none().then(|| "connection refused".into()),
        }
    }

    #[test]
    fn counts_the_last_24_hours_and_lists_the_latest_failures() {
        let now = 100 * HOUR + 30 * 60_000;
        let recent = vec![
            attempt(now - 1_000, Some(200)),
            attempt(now - 2_000, Some(500)),
            attempt(now - 3 * HOUR, None),
            attempt(now - 3 * HOUR - 1, Some(204)),
            attempt(now - 30 * HOUR, Some(503)), // older than the window
        ];
        let h = summarise(recent, now);
        assert_eq!((h.succeeded, h.failed), (2, 2));
        assert_eq!(h.success_rate().as_deref(), Some("50.0 %"));
        assert_eq!(
            h.failures.len(),
            3,
            "failures are listed whatever their age"
        );
        assert_eq!(h.failures[0].status_code, Some(500));
        assert_eq!(h.charts[0].bars.iter().filter(|b| !b.empty).count(), 2);
        assert_eq!(h.charts[1].bars.iter().filter(|b| !b.empty).count(), 2);
        assert!(!h.truncated);
    }
}
