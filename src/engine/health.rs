//! The health policy: what one attempt means for its endpoint. Pure: the recorder's
//! transaction reads the endpoint's health, asks `HealthPolicy::judge`, and writes the
//! answer (`store::Outbox::record`), so both backends follow this one copy.
//!
//! - A success closes the circuit and forgets the failures (the backlog drains, within
//!   the rate limit); if the circuit was open, `herald.endpoint.recovered` says so.
//! - A delivery that failed for good raises `herald.delivery.failed`, unless it carried one
//!   of Herald's own events (a failing operator endpoint must not feed itself).
//! - A 410 Gone disables the endpoint at once: it asked never to be called again.
//! - Any other failure counts, in the run of consecutive failures and in the endpoint's
//!   attempt window (below). A closed circuit opens on either rule:
//!   - **rate:** the window holds at least `circuit_min_attempts` attempts and at least
//!     `circuit_failure_rate` of them failed (default: 90 % of 20);
//!   - **run:** `circuit_threshold` consecutive failures (default 5), *and* a run that
//!     long is no accident of the rate the endpoint failed at before it: with `p` the
//!     failure rate of the window's attempts before the run (0 if the window has none),
//!     `p^run <= RUN_CHANCE` (one in a million). An endpoint that worked until now (`p`
//!     near 0), or has no attempts in the window before the run (nothing else to judge
//!     by: a new endpoint failing half its requests opens if its first five fail, one time
//!     in 32), opens after `circuit_threshold` failures as before; one failing half its
//!     requests at random needs a run of 20, which at 50 % comes once in a million tries,
//!     so its retries keep doing their work (issue 19: a run of 5 comes every 32 tries,
//!     and opened such an endpoint 20 times in three minutes).
//!
//!   `circuit_threshold = 0` turns both off. Deliveries of an open circuit wait for a
//!   probe, `circuit_backoff` later. A failed probe (an attempt sent at or after the
//!   planned probe time; requests already in flight when the circuit opened do not count)
//!   doubles the wait, up to `CIRCUIT_MAX_BACKOFF_MS`; a successful one closes the circuit
//!   and clears the window (what it held was about the outage the probe ended).
//! - An active endpoint that failed without a single success for `disable_after` (its own,
//!   or the deployment's) is disabled.
//!
//! The window is two buckets of `circuit_window` (60 s), aligned to multiples of it: the
//! current bucket and the previous one, so it covers the last one to two windows. A window
//! without a failure is kept empty: a healthy endpoint's successes are not counted, so
//! they cost no write (counting starts with the first failure, which only makes the rate
//! rule see the failures a little sooner).

use serde_json::json;

use crate::domain::EndpointStatus;
use crate::store::{
    AttemptRecord, AttemptWindow, CircuitState, Disable, EndpointHealth, FailureRecord,
    HealthChange, Judge, Verdict,
};

/// The longest wait between two probes of an open circuit.
pub const CIRCUIT_MAX_BACKOFF_MS: i64 = 30 * 60_000;

/// How unlikely a run of failures must be, at the rate the endpoint failed before it, to
/// open the circuit: it then says the endpoint changed, not that it was unlucky.
pub const RUN_CHANCE: f64 = 1e-6;

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
    /// The failure rate (0..=1) over the attempt window that opens the circuit…
    pub circuit_failure_rate: f64,
    /// …once the window holds at least this many attempts.
    pub circuit_min_attempts: u32,
    /// The length of one of the window's two buckets (ms).
    pub circuit_window_ms: i64,
}

impl HealthPolicy {
    pub fn from_config(config: &crate::config::Config) -> HealthPolicy {
        HealthPolicy {
            disable_after_ms: config.disable_after.as_millis() as i64,
            circuit_threshold: config.circuit_threshold,
            circuit_backoff_ms: config.circuit_backoff.as_millis() as i64,
            circuit_failure_rate: config.circuit_failure_rate,
            circuit_min_attempts: config.circuit_min_attempts,
            circuit_window_ms: (config.circuit_window.as_millis() as i64).max(1),
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
        if matches!(r.verdict, Verdict::Failed | Verdict::Unsent) && !r.operational {
            let data = json!({
                "delivery_id": r.delivery_id,
                "status_code": r.status_code,
                "error": r.error,
            });
            change.events.push(("herald.delivery.failed", data));
        }
        if matches!(r.verdict, Verdict::Cancelled | Verdict::Unsent) {
            // Nothing was sent: nothing is learnt about the receiver.
            return HealthChange {
                last_attempt_at: None,
                ..change
            };
        }
        let before = health.failures;
        if r.verdict == Verdict::Succeeded {
            let window = if before.circuit.is_some() {
                change.events.push(("herald.endpoint.recovered", json!({})));
                AttemptWindow::default()
            } else {
                self.count(health.window, true, now)
            };
            if before != FailureRecord::default() {
                change.failures = Some(FailureRecord::default());
            }
            change.window = (window != health.window).then_some(window);
            return change;
        }
        if r.gone {
            change.disable = Some(disable("the endpoint answered 410 Gone"));
            return change;
        }
        let window = self.count(health.window, false, now);
        let failures = self.count_failure(before, &window, r.started_at, now);
        if before.circuit.is_none() {
            if let Some(opened) = failures.circuit {
                tracing::warn!(
                    endpoint = r.endpoint_id,
                    "circuit opened: deliveries wait for a probe"
                );
                let data = json!({
                    "consecutive_failures": failures.consecutive,
                    "window_attempts": window.attempts(),
                    "window_failures": window.failures(),
                    "next_probe": crate::clock::rfc3339_ms(opened.next_probe),
                });
                change.events.push(("herald.endpoint.circuit_opened", data));
            }
        }
        change.failures = Some(failures);
        change.window = Some(window);
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
    /// The window after one more attempt, recorded at `now`.
    fn count(&self, before: AttemptWindow, succeeded: bool, now: i64) -> AttemptWindow {
        let len = self.circuit_window_ms;
        let bucket = now - now.rem_euclid(len);
        let mut w = match before.start {
            Some(start) if start >= bucket => before,
            // The next bucket: the current one becomes the previous one.
            Some(start) if start + len == bucket => AttemptWindow {
                start: Some(bucket),
                succeeded: 0,
                failed: 0,
                prev_succeeded: before.succeeded,
                prev_failed: before.failed,
            },
            // Empty, or both buckets have aged out.
            _ => AttemptWindow {
                start: Some(bucket),
                ..AttemptWindow::default()
            },
        };
        if succeeded {
            if w.failures() == 0 {
                return AttemptWindow::default(); // a healthy endpoint keeps no window
            }
            w.succeeded = w.succeeded.saturating_add(1);
        } else {
            w.failed = w.failed.saturating_add(1);
        }
        w
    }

    /// Whether a closed circuit opens, with `consecutive` failures in a row and `window`
    /// (this failure counted in both): the rules of the module comment.
    fn opens(&self, consecutive: u32, window: &AttemptWindow) -> bool {
        if self.circuit_threshold == 0 {
            return false;
        }
        let (attempts, failures) = (window.attempts(), window.failures());
        if attempts >= self.circuit_min_attempts.max(1)
            // A hair below the rate, so 18 of 20 meets 90 % whatever the rounding.
            && failures as f64 / attempts as f64 >= self.circuit_failure_rate - 1e-9
        {
            return true;
        }
        if consecutive < self.circuit_threshold {
            return false;
        }
        // The run may have begun before the window: only its part inside is left out.
        let run_inside = consecutive.min(failures);
        let before = attempts - run_inside;
        if before == 0 {
            return true; // nothing but the run: no sign the endpoint ever worked lately
        }
        let p = (failures - run_inside) as f64 / before as f64;
        consecutive as f64 * p.ln() <= RUN_CHANCE.ln()
    }

    /// The failure record after one more failure, sent at `sent`, with `window` counting it.
    fn count_failure(
        &self,
        before: FailureRecord,
        window: &AttemptWindow,
        sent: i64,
        now: i64,
    ) -> FailureRecord {
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
            None if self.opens(consecutive, window) => Some(CircuitState {
                opened_at: now,
                next_probe: now + self.circuit_backoff_ms,
                backoff_ms: self.circuit_backoff_ms,
            }),
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
            circuit_failure_rate: 0.9,
            circuit_min_attempts: 20,
            circuit_window_ms: MIN,
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
            window: AttemptWindow::default(),
        }
    }

    /// Judges `outcomes` (true: a success) one every `gap` ms from `h`, writing back what
    /// each decides as the recorder does; returns how often the circuit opened. A success
    /// closes an open circuit at once (a probe), so each opening is counted.
    fn replay(
        p: &HealthPolicy,
        h: &mut EndpointHealth,
        outcomes: &[bool],
        t0: i64,
        gap: i64,
    ) -> usize {
        let mut opened = 0;
        for (i, ok) in outcomes.iter().enumerate() {
            let t = t0 + i as i64 * gap;
            let verdict = if *ok {
                Verdict::Succeeded
            } else {
                Verdict::RetryAt(t + 1)
            };
            let change = p.judge(&attempt(verdict, t), h, t);
            opened += kinds(&change).contains(&"herald.endpoint.circuit_opened") as usize;
            if let Some(f) = change.failures {
                h.failures = f;
            }
            if let Some(w) = change.window {
                h.window = w;
            }
        }
        opened
    }

    /// A fixed stream of coin flips (xorshift), so the test is the same every run.
    fn coin_flips(n: usize, mut seed: u64) -> Vec<bool> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed >> 63 == 1
            })
            .collect()
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
    fn an_endpoint_failing_half_its_requests_at_random_never_opens() {
        // The default threshold of 5; 4,000 attempts at 20 a second, as a 2,000-delivery
        // backlog with its retries would make: runs of 5 to 12 failures come and go.
        let p = HealthPolicy {
            circuit_threshold: 5,
            ..policy()
        };
        let flips = coin_flips(4_000, 0x9e37_79b9_7f4a_7c15);
        let failing = flips.iter().filter(|ok| !**ok).count();
        assert!((1_800..2_200).contains(&failing), "{failing}");
        let mut h = healthy();
        assert_eq!(replay(&p, &mut h, &flips, 0, 50), 0);
        // Strictly alternating too.
        let alternating: Vec<bool> = (0..4_000).map(|i| i % 2 == 0).collect();
        assert_eq!(replay(&p, &mut healthy(), &alternating, 0, 50), 0);
    }

    #[test]
    fn a_dead_endpoint_opens_at_the_threshold_and_so_does_one_that_just_died() {
        let p = policy(); // threshold 3
        let mut dead = healthy();
        assert_eq!(replay(&p, &mut dead, &[false; 3], 0, 10), 1);
        assert_eq!(dead.failures.consecutive, 3);
        // One failure, then 200 successes (all counted: the window has a failure), then
        // it dies: the run of 3 is no accident at a 1 % failure rate.
        let mut h = healthy();
        let mut outcomes = vec![false];
        outcomes.extend([true; 200]);
        outcomes.extend([false; 2]);
        assert_eq!(replay(&p, &mut h, &outcomes, 0, 10), 0);
        assert!(h.failures.circuit.is_none());
        assert_eq!(replay(&p, &mut h, &[false], 2_030, 10), 1);
    }

    #[test]
    fn a_run_must_be_unlikely_at_the_rate_before_it() {
        let p = policy(); // threshold 3
                          // 10 attempts, half failed, then a run: at p = 0.5 it takes 20 in a row (0.5^20 is
                          // just under one in a million).
        let mut h = healthy();
        let before: Vec<bool> = (0..10).map(|i| i % 2 == 1).collect();
        assert_eq!(replay(&p, &mut h, &before, 0, 10), 0);
        // The rate rule would step in at 90 % of the window: keep it out of the way.
        let p = HealthPolicy {
            circuit_failure_rate: 1.0,
            ..p
        };
        assert_eq!(replay(&p, &mut h, &[false; 19], 100, 10), 0);
        assert_eq!(h.failures.consecutive, 19);
        assert_eq!(replay(&p, &mut h, &[false], 290, 10), 1);
    }

    #[test]
    fn the_failure_rate_opens_once_the_window_holds_enough_attempts() {
        // Nine failures to one success: the run never reaches 20 (it would need 131 at
        // that rate), but 90 % over 20 attempts opens it.
        let p = HealthPolicy {
            circuit_threshold: 50,
            ..policy()
        };
        let outcomes: Vec<bool> = (0..19).map(|i| i % 10 == 4).collect();
        let mut h = healthy();
        assert_eq!(replay(&p, &mut h, &outcomes, 0, 10), 0);
        assert_eq!((h.window.attempts(), h.window.failures()), (19, 17));
        assert_eq!(replay(&p, &mut h, &[false], 190, 10), 1, "18 of 20");
        // 0 turns the breaker off, both rules.
        let off = HealthPolicy {
            circuit_threshold: 0,
            ..p
        };
        assert_eq!(replay(&off, &mut healthy(), &[false; 100], 0, 10), 0);
    }

    #[test]
    fn the_window_is_two_buckets_that_roll_and_age_out() {
        let p = policy(); // buckets of a minute
        let mut h = healthy();
        replay(&p, &mut h, &[false, true], MIN + 5, 1);
        let w = h.window;
        assert_eq!((w.start, w.failed, w.succeeded), (Some(MIN), 1, 1));
        // The next minute: the current bucket becomes the previous one.
        replay(&p, &mut h, &[false], 2 * MIN + 1, 1);
        let w = h.window;
        assert_eq!(
            (
                w.start,
                w.failed,
                w.succeeded,
                w.prev_failed,
                w.prev_succeeded
            ),
            (Some(2 * MIN), 1, 0, 1, 1)
        );
        // Two minutes later both have aged out; a success of an empty window keeps none
        // and writes nothing.
        let change = p.judge(&attempt(Verdict::Succeeded, 4 * MIN), &h, 4 * MIN);
        assert_eq!(change.window, Some(AttemptWindow::default()));
        h.window = AttemptWindow::default();
        h.failures = FailureRecord::default();
        let change = p.judge(&attempt(Verdict::Succeeded, 4 * MIN), &h, 4 * MIN);
        assert_eq!(change, HealthChange::default());
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
        h.window = AttemptWindow {
            start: Some(0),
            failed: 9,
            ..AttemptWindow::default()
        };
        let change = policy().judge(&attempt(Verdict::Succeeded, 5), &h, 5);
        assert_eq!(change.failures, Some(FailureRecord::default()));
        assert_eq!(kinds(&change), ["herald.endpoint.recovered"]);
        assert_eq!(
            change.window,
            Some(AttemptWindow::default()),
            "the outage's failures are forgotten"
        );
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
