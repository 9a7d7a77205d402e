//! The health policy: what one attempt means for its endpoint. Pure: the recorder's
//! transaction reads the endpoint's health, asks `HealthPolicy::judge`, and writes the
//! answer (`store::Outbox::record`), so both backends follow this one copy.
//!
//! - A success closes the circuit and forgets the failures (the backlog drains, within
//!   the rate limit); if the circuit was open, `herald.endpoint.recovered` says so.
//! - A delivery that failed for good raises `herald.delivery.failed`, unless it carried one
//!   of Herald's own events (a failing operator endpoint must not feed itself).
//! - A 410 Gone disables the endpoint at once: it asked never to be called again.
//! - Any other failure counts. A closed circuit opens after `circuit_threshold`
//!   consecutive failures: deliveries then wait for a probe, `circuit_backoff` later. A
//!   failed probe (an attempt sent at or after the planned probe time; requests already in
//!   flight when the circuit opened do not count) doubles the wait, up to
//!   `CIRCUIT_MAX_BACKOFF_MS`.
//! - An active endpoint that failed without a single success for `disable_after` (its own,
//!   or the deployment's) is disabled.

use serde_json::json;

use crate::domain::EndpointStatus;
use crate::store::{
    AttemptRecord, CircuitState, Disable, EndpointHealth, FailureRecord, HealthChange, Judge,
    Verdict,
};

/// The longest wait between two probes of an open circuit.
pub const CIRCUIT_MAX_BACKOFF_MS: i64 = 30 * 60_000;

/// The deployment's settings for endpoint health.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Disable an endpoint that failed without a success for this long (unless the
    /// endpoint has its own).
    pub disable_after_ms: i64,
    /// Open an endpoint's circuit after this many consecutive failures (0: never).
    pub circuit_threshold: u32,
    /// The first wait of an open circuit before its probe.
    pub circuit_backoff_ms: i64,
}

impl HealthPolicy {
    pub fn from_config(config: &crate::config::Config) -> HealthPolicy {
        HealthPolicy {
            disable_after_ms: config.disable_after.as_millis() as i64,
            circuit_threshold: config.circuit_threshold,
            circuit_backoff_ms: config.circuit_backoff.as_millis() as i64,
        }
    }
}

impl Judge for HealthPolicy {
    fn judge(&self, r: &AttemptRecord, health: &EndpointHealth, now: i64) -> HealthChange {
        let mut change = HealthChange {
            // When the endpoint was last sent to: its rate limit holds across a restart.
            last_attempt_at: health.rate_limited.then_some(r.started_at),
            ..HealthChange::default()
        };
        if r.verdict == Verdict::Failed && !r.operational {
            let data = json!({
                "delivery_id": r.delivery_id,
                "status_code": r.status_code,
                "error": r.error,
            });
            change.events.push(("herald.delivery.failed", data));
        }
        let before = health.failures;
        if r.verdict == Verdict::Succeeded {
            if before.circuit.is_some() {
                change.events.push(("herald.endpoint.recovered", json!({})));
            }
            if before != FailureRecord::default() {
                change.failures = Some(FailureRecord::default());
            }
            return change;
        }
        if r.gone {
            change.disable = Some(disable("the endpoint answered 410 Gone"));
            return change;
        }
        let failures = self.count_failure(before, r.started_at, now);
        if before.circuit.is_none() {
            if let Some(opened) = failures.circuit {
                tracing::warn!(
                    endpoint = r.endpoint_id,
                    "circuit opened: deliveries wait for a probe"
                );
                let data = json!({
                    "consecutive_failures": failures.consecutive,
                    "next_probe": crate::clock::rfc3339_ms(opened.next_probe),
                });
                change.events.push(("herald.endpoint.circuit_opened", data));
            }
        }
        change.failures = Some(failures);
        let disable_after = health.disable_after_ms.unwrap_or(self.disable_after_ms);
        let since = failures.failing_since.unwrap_or(r.started_at);
        if health.status == EndpointStatus::Active && since <= now - disable_after {
            change.disable = Some(disable(
                "every delivery failed for longer than disable_after",
            ));
        }
        change
    }
}

impl HealthPolicy {
    /// The failure record after one more failure, sent at `sent`.
    fn count_failure(&self, before: FailureRecord, sent: i64, now: i64) -> FailureRecord {
        let consecutive = before.consecutive.saturating_add(1);
        let circuit = match before.circuit {
            // A failed probe: the wait doubles.
            Some(c) if sent >= c.next_probe => {
                let backoff_ms = (c.backoff_ms * 2).min(CIRCUIT_MAX_BACKOFF_MS);
                Some(CircuitState {
                    backoff_ms,
                    next_probe: now + backoff_ms,
                    ..c
                })
            }
            Some(c) => Some(c),
            None if self.circuit_threshold > 0 && consecutive >= self.circuit_threshold => {
                Some(CircuitState {
                    opened_at: now,
                    next_probe: now + self.circuit_backoff_ms,
                    backoff_ms: self.circuit_backoff_ms,
                })
            }
            None => None,
        };
        FailureRecord {
            consecutive,
            failing_since: Some(before.failing_since.unwrap_or(sent)),
            circuit,
        }
    }
}

fn disable(reason: &'static str) -> Disable {
    Disable {
        reason,
        announce: ("herald.endpoint.disabled", json!({ "reason": reason })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            disable_after_ms: 60 * MIN,
            circuit_threshold: 3,
            circuit_backoff_ms: MIN,
        }
    }

    fn attempt(verdict: Verdict, sent: i64) -> AttemptRecord {
        AttemptRecord {
            delivery_id: 7,
            endpoint_id: 1,
            started_at: sent,
            duration_ms: 5,
            status_code: Some(500),
            error: None,
            response_headers: None,
            response_body: None,
            verdict,
            gone: false,
            backoff_until: None,
            operational: false,
        }
    }

    fn healthy() -> EndpointHealth {
        EndpointHealth {
            status: EndpointStatus::Active,
            rate_limited: false,
            failures: FailureRecord::default(),
            disable_after_ms: None,
        }
    }

    fn kinds(change: &HealthChange) -> Vec<&'static str> {
        change.events.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn a_success_of_a_healthy_endpoint_changes_nothing() {
        let change = policy().judge(&attempt(Verdict::Succeeded, 0), &healthy(), 0);
        assert_eq!(change, HealthChange::default());
    }

    #[test]
    fn failures_count_and_the_circuit_opens_at_the_threshold() {
        let p = policy();
        let mut h = healthy();
        for n in 1..=3 {
            let change = p.judge(&attempt(Verdict::RetryAt(99), n * 10), &h, n * 10);
            h.failures = change.failures.expect("a failure is written");
            assert_eq!(h.failures.consecutive, n as u32);
            assert_eq!(h.failures.failing_since, Some(10), "the first failure");
            let opened = kinds(&change) == ["herald.endpoint.circuit_opened"];
            assert_eq!(opened, n == 3, "opens at the third failure only");
        }
        let c = h.failures.circuit.expect("open");
        assert_eq!(
            (c.opened_at, c.next_probe, c.backoff_ms),
            (30, 30 + MIN, MIN)
        );
    }

    #[test]
    fn a_failed_probe_doubles_the_wait_and_an_earlier_request_does_not() {
        let p = policy();
        let mut h = healthy();
        h.failures = FailureRecord {
            consecutive: 3,
            failing_since: Some(0),
            circuit: Some(CircuitState {
                opened_at: 0,
                next_probe: MIN,
                backoff_ms: MIN,
            }),
        };
        // Sent before the probe time: in flight when the circuit opened.
        let early = p.judge(&attempt(Verdict::RetryAt(0), MIN - 1), &h, MIN);
        assert_eq!(early.failures.unwrap().circuit, h.failures.circuit);
        let probe = p.judge(&attempt(Verdict::RetryAt(0), MIN), &h, MIN + 5);
        let c = probe.failures.unwrap().circuit.unwrap();
        assert_eq!((c.backoff_ms, c.next_probe), (2 * MIN, MIN + 5 + 2 * MIN));
        assert!(kinds(&probe).is_empty(), "no second circuit_opened");
        h.failures.circuit = Some(CircuitState {
            backoff_ms: CIRCUIT_MAX_BACKOFF_MS,
            ..c
        });
        let capped = p.judge(&attempt(Verdict::RetryAt(0), c.next_probe), &h, 0);
        assert_eq!(
            capped.failures.unwrap().circuit.unwrap().backoff_ms,
            CIRCUIT_MAX_BACKOFF_MS
        );
    }

    #[test]
    fn a_success_closes_the_circuit_and_says_so() {
        let mut h = healthy();
        h.failures = FailureRecord {
            consecutive: 9,
            failing_since: Some(0),
            circuit: Some(CircuitState {
                opened_at: 0,
                next_probe: 1,
                backoff_ms: 1,
            }),
        };
        let change = policy().judge(&attempt(Verdict::Succeeded, 5), &h, 5);
        assert_eq!(change.failures, Some(FailureRecord::default()));
        assert_eq!(kinds(&change), ["herald.endpoint.recovered"]);
    }

    #[test]
    fn disable_after_is_measured_from_the_first_failure_and_the_endpoint_may_have_its_own() {
        let p = policy();
        let mut h = healthy();
        h.failures.consecutive = 1;
        h.failures.failing_since = Some(0);
        let before = p.judge(&attempt(Verdict::RetryAt(0), 5), &h, 60 * MIN - 1);
        assert_eq!(before.disable, None);
        let at = p.judge(&attempt(Verdict::RetryAt(0), 5), &h, 60 * MIN);
        assert_eq!(
            at.disable.map(|d| d.announce.0),
            Some("herald.endpoint.disabled")
        );
        h.disable_after_ms = Some(2 * 60 * MIN);
        let own = p.judge(&attempt(Verdict::RetryAt(0), 5), &h, 60 * MIN);
        assert_eq!(own.disable, None, "its own, longer disable_after");
        h.status = EndpointStatus::Paused;
        h.disable_after_ms = None;
        let paused = p.judge(&attempt(Verdict::RetryAt(0), 5), &h, 60 * MIN);
        assert_eq!(paused.disable, None, "a paused endpoint is not disabled");
    }

    #[test]
    fn gone_disables_at_once_without_counting_and_final_failures_are_announced() {
        let mut gone = attempt(Verdict::Failed, 0);
        gone.gone = true;
        let change = policy().judge(&gone, &healthy(), 0);
        assert_eq!(change.failures, None);
        assert_eq!(
            change.disable.as_ref().map(|d| d.reason),
            Some("the endpoint answered 410 Gone")
        );
        assert_eq!(kinds(&change), ["herald.delivery.failed"]);
        let mut own = attempt(Verdict::Failed, 0);
        own.operational = true;
        assert!(kinds(&policy().judge(&own, &healthy(), 0)).is_empty());
    }

    #[test]
    fn a_rate_limited_endpoint_keeps_its_last_attempt_time() {
        let mut h = healthy();
        h.rate_limited = true;
        let change = policy().judge(&attempt(Verdict::Succeeded, 42), &h, 50);
        assert_eq!(change.last_attempt_at, Some(42));
    }
}
