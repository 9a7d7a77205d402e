//! Time as Herald stores it (integer milliseconds, UTC) and as people read it (RFC 3339).
//!
//! The process clock (`now_ms`) is monotonic: the wall clock is read once, at the first
//! call, and time moves on from there by `Instant` (CLOCK_MONOTONIC). Every interval Herald
//! waits (retry schedules, back-offs, linger, probes, leases) is a difference of two
//! `now_ms` readings, so a wall-clock step while it runs (an NTP step, an operator's
//! `date -s`) changes nothing it waits for; the times it shows are those of its start's
//! wall clock plus the time elapsed, until it restarts.
//!
//! On PostgreSQL every replica writes due times and leases the others compare with their
//! own `now_ms`, so they must share one clock: the store measures the database's time
//! against this one (`set_offset_ms`, refreshed by its heartbeat) and `now_ms` adds the
//! difference. A replica whose clock runs a minute ahead then claims, leases and schedules
//! on the database's time, like the others.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where the engine reads the time: the system clock in production, a clock a test sets by
/// hand in the engine harness (retry schedules, auto-disable, without waiting).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(ms))
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The wall clock's reading at the process clock's start, and the `Instant` it was taken at.
static START: OnceLock<(i64, Instant)> = OnceLock::new();

/// Added to the process clock: the database's time minus ours, on PostgreSQL (0 on SQLite).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

fn start() -> &'static (i64, Instant) {
    START.get_or_init(|| (wall_ms(), Instant::now()))
}

/// The system's wall clock, which can step (only the start reads it).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The process clock before the shared offset: the start's wall time plus the monotonic
/// time since.
pub fn local_ms() -> i64 {
    let (wall, at) = start();
    wall + at.elapsed().as_millis() as i64
}

/// Herald's time in ms since the epoch: monotonic within the process, and on PostgreSQL
/// the database's time (see the module comment).
pub fn now_ms() -> i64 {
    local_ms() + OFFSET_MS.load(Ordering::Relaxed)
}

/// Sets how far the shared clock (the database's) is ahead of `local_ms`.
pub fn set_offset_ms(offset: i64) {
    OFFSET_MS.store(offset, Ordering::Relaxed);
}

pub fn offset_ms() -> i64 {
    OFFSET_MS.load(Ordering::Relaxed)
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-25T08:40:00.123Z`: what API fields carry.
pub fn rfc3339_ms(ms: i64) -> String {
    let d = datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

/// `2026-11-25T08:40:00Z`: the `timestamp` added to payloads, in the seeds' spelling.
pub fn rfc3339_seconds(ms: i64) -> String {
    let mut s = rfc3339_ms(ms);
    s.replace_range(19..23, "");
    s
}

/// Parses an RFC 3339 time (`2026-11-25T08:40:00Z`, offsets allowed) or unix seconds.
pub fn parse(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| format!("`{s}` is not an RFC 3339 time like 2026-11-25T08:40:00Z"))
}

/// serde helpers so records keep `i64` ms inside and show RFC 3339 outside.
pub mod ser {
    use serde::Serializer;

    pub fn ms<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_ms(*v))
    }

    pub fn opt_schedule<S: Serializer>(
        v: &Option<Vec<std::time::Duration>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&crate::units::format_schedule(v)),
            None => s.serialize_none(),
        }
    }

    pub fn opt_duration<S: Serializer>(
        v: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&crate::units::format_duration(*v)),
            None => s.serialize_none(),
        }
    }

    /// Extra endpoint headers: names only, values masked (`ExtraHeaders::MASKED`).
    pub fn masked_headers<S: Serializer>(
        v: &std::collections::BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&crate::domain::ExtraHeaders::masked(v), s)
    }

    pub fn opt_ms<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&super::rfc3339_ms(*v)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339_ms(1_734_948_000_123), "2024-12-23T10:00:00.123Z");
        assert_eq!(rfc3339_seconds(1_734_948_000_123), "2024-12-23T10:00:00Z");
        assert_eq!(parse("2024-12-23T10:00:00Z").unwrap(), 1_734_948_000_000);
        assert_eq!(
            parse("2024-12-23T11:00:00+01:00").unwrap(),
            1_734_948_000_000
        );
        assert_eq!(parse("1734948000").unwrap(), 1_734_948_000_000);
        assert!(parse("yesterday").is_err());
    }

    #[test]
    fn the_process_clock_is_monotonic_and_near_the_wall() {
        let a = local_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = local_ms();
        assert!(b - a >= 20, "{a} then {b}");
        assert!((wall_ms() - b).abs() < 1_000, "started from the wall clock");
    }
}
