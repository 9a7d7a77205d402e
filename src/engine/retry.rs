//! The retry policy, as a pure function of one attempt's outcome.
//!
//! The schedule lists the waits before the 2nd, 3rd, … attempt of a round (default 1 min,
//! 5 min, 30 min: seed 001's promise). When it is used up the delivery is `failed`.
//! `Retry-After` (on 429 and 503) can only lengthen a wait — a server that asks us to back
//! off gets at least that — and is capped so one header cannot park a delivery for weeks.

use std::time::Duration;

use crate::store::Verdict;

/// The longest `Retry-After` Herald honours.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Decides the next step after an attempt.
/// `round_attempts` counts the attempts of this round including the one just made.
pub fn decide(
    success: bool,
    gone: bool,
    retry_after: Option<Duration>,
    round_attempts: u32,
    schedule: &[Duration],
    now_ms: i64,
) -> Verdict {
    if success {
        return Verdict::Succeeded;
    }
    // 410 Gone is the receiver saying the endpoint no longer exists: retrying would only
    // load a server that has already answered.
    if gone {
        return Verdict::Failed;
    }
    // The first attempt of a round is not in the schedule, so attempt n waits schedule[n-1];
    // running off the end is the only way a retryable failure becomes final.
    let Some(wait) = schedule.get(round_attempts.saturating_sub(1) as usize) else {
        return Verdict::Failed;
    };
    // max, not replace: a receiver's short Retry-After must not make us retry sooner than
    // the schedule already promised the endpoint's owner.
    let wait = match retry_after {
        Some(asked) => (*wait).max(asked.min(RETRY_AFTER_CAP)),
        None => *wait,
    };
    // Saturating: a schedule parsed from config could be absurdly long; an overflow here
    // would wrap into the past and retry at once.
    Verdict::RetryAt(now_ms.saturating_add(wait.as_millis() as i64))
}

/// Parses `Retry-After` in its delta-seconds form (the HTTP-date form is rare for webhooks
/// and is ignored, falling back to the schedule).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 60;

    fn schedule() -> Vec<Duration> {
        [M, 5 * M, 30 * M].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn follows_the_schedule_then_fails() {
        let s = schedule();
        assert_eq!(
            decide(false, false, None, 1, &s, 0),
            Verdict::RetryAt(60_000)
        );
        assert_eq!(
            decide(false, false, None, 2, &s, 0),
            Verdict::RetryAt(300_000)
        );
        assert_eq!(
            decide(false, false, None, 3, &s, 0),
            Verdict::RetryAt(1_800_000)
        );
        assert_eq!(decide(false, false, None, 4, &s, 0), Verdict::Failed);
        assert_eq!(decide(true, false, None, 4, &s, 0), Verdict::Succeeded);
    }

    #[test]
    fn retry_after_lengthens_but_is_capped() {
        let s = schedule();
        let long = Some(Duration::from_secs(600));
        assert_eq!(
            decide(false, false, long, 1, &s, 0),
            Verdict::RetryAt(600_000)
        );
        let short = Some(Duration::from_secs(5));
        assert_eq!(
            decide(false, false, short, 1, &s, 0),
            Verdict::RetryAt(60_000)
        );
        let huge = Some(Duration::from_secs(86_400 * 30));
        assert_eq!(
            decide(false, false, huge, 1, &s, 0),
            Verdict::RetryAt(3_600_000)
        );
    }

    #[test]
    fn gone_fails_at_once() {
        assert_eq!(
            decide(false, true, None, 1, &schedule(), 0),
            Verdict::Failed
        );
    }

    #[test]
    fn parses_retry_after() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
