//! Failed authentications, counted per door and client address.
//!
//! Each door — the admin login, the portal login, the API's bearer tokens — keeps its own
//! count, so a success at one (an attacker's own tenant key on the portal) does nothing to
//! the count at another. A success never resets a count: it only takes back its own attempt.
//!
//! An attempt is counted *before* its token is checked, in the same atomic step as the
//! lock-out check (`begin`). Counting afterwards would let a burst of parallel guesses all
//! pass the check before any of them is counted; this way the limit is exact.
//!
//! The counts live in the store (`Backend::throttle_*`), because replicas behind a load
//! balancer must share them: on SQLite in this process's memory (`Memory`; one process, and
//! no write per login attempt), on PostgreSQL in a table, one row per door and address,
//! counted by one statement each.
//!
//! Counts are forgotten `FORGET_MS` after an address's last failure. Failures are logged
//! at most once a minute per door and address, with the count so far.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::store::Backend;

pub const FORGET_MS: i64 = 15 * 60 * 1000;
pub const LOG_EVERY_MS: i64 = 60 * 1000;
/// Addresses remembered before stale entries are swept.
const SWEEP_AT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    AdminLogin,
    PortalLogin,
    Api,
}

impl Door {
    /// Failures (within `FORGET_MS`) after which the address is refused outright.
    pub fn lock_after(self) -> u32 {
        match self {
            Door::AdminLogin | Door::PortalLogin => 20,
            // Programs retry; a misconfigured one should be slowed before it is stopped.
            Door::Api => 50,
        }
    }

    /// How long the answer to the `n`th failure waits.
    fn delay(self, n: u32) -> Duration {
        let ms = match self {
            Door::AdminLogin | Door::PortalLogin => (500 * n as u64).min(5_000),
            Door::Api => (100 * n.saturating_sub(10) as u64).min(1_000),
        };
        Duration::from_millis(ms)
    }

    /// The name a shared store keys a count by, with the address.
    pub fn key(self, ip: Option<IpAddr>) -> String {
        let door = match self {
            Door::AdminLogin => "admin",
            Door::PortalLogin => "portal",
            Door::Api => "api",
        };
        match ip {
            Some(ip) => format!("{door}|{ip}"),
            None => format!("{door}|-"),
        }
    }
}

/// A failed attempt as the store counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures of this address at this door so far.
    pub count: u32,
    /// Whether this one is to be logged (none was for a minute).
    pub log: bool,
}

/// Whether an attempt may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Counted in advance as a failure; call `failed` or `succeeded` once it is known.
    Open,
    /// The address is locked out of this door until its failures age out (already logged).
    Locked,
}

/// Checks the door and counts this attempt as a failure in advance, atomically. A store
/// that cannot answer fails closed (the caller answers 503).
pub async fn begin(
    store: &dyn Backend,
    door: Door,
    ip: Option<IpAddr>,
    now: i64,
) -> crate::store::Result<Gate> {
    if store.throttle_begin(door, ip, now).await? {
        return Ok(Gate::Open);
    }
    failed(store, door, ip, now).await;
    Ok(Gate::Locked)
}

/// The attempt `begin` counted failed (it stays counted): logs it if this address has not
/// been logged for a minute, and returns how long to wait before answering.
pub async fn failed(store: &dyn Backend, door: Door, ip: Option<IpAddr>, now: i64) -> Duration {
    match store.throttle_failed(door, ip, now).await {
        Ok(Some(f)) => {
            if f.log {
                tracing::warn!(
                    ?door,
                    ip = ?ip,
                    failures = f.count,
                    "failed authentication (logged at most once a minute per address)"
                );
            }
            door.delay(f.count)
        }
        Ok(None) => Duration::ZERO,
        // The attempt was counted by `begin`; only the log line and the delay are lost.
        Err(e) => {
            tracing::warn!(?door, error = %e, "could not read a failure count");
            door.delay(door.lock_after())
        }
    }
}

/// The attempt `begin` counted was a success: take it back. Should the store fail, the
/// count stays one too high until it ages out: stricter, never looser.
pub async fn succeeded(store: &dyn Backend, door: Door, ip: Option<IpAddr>) {
    if let Err(e) = store.throttle_succeeded(door, ip).await {
        tracing::warn!(?door, error = %e, "could not take back a counted attempt");
    }
}

struct Count {
    failures: u32,
    last_ms: i64,
    logged_ms: Option<i64>,
}

/// The counts of one process, for a store that is not shared (SQLite).
#[derive(Default)]
pub struct Memory {
    table: HashMap<(Door, Option<IpAddr>), Count>,
}

impl Memory {
    /// `begin`'s step: true when the door is open (and the attempt is now counted).
    pub fn begin(&mut self, door: Door, ip: Option<IpAddr>, now: i64) -> bool {
        let table = &mut self.table;
        if table.len() > SWEEP_AT {
            table.retain(|_, c| now - c.last_ms < FORGET_MS);
        }
        let count = table.entry((door, ip)).or_insert(Count {
            failures: 0,
            last_ms: now,
            logged_ms: None,
        });
        if now - count.last_ms >= FORGET_MS {
            count.failures = 0;
        }
        if count.failures >= door.lock_after() {
            return false;
        }
        count.failures += 1;
        count.last_ms = now;
        true
    }

    pub fn succeeded(&mut self, door: Door, ip: Option<IpAddr>) {
        let table = &mut self.table;
        if let Some(count) = table.get_mut(&(door, ip)) {
            count.failures = count.failures.saturating_sub(1);
            if count.failures == 0 && count.logged_ms.is_none() {
                table.remove(&(door, ip));
            }
        }
    }

    pub fn failed(&mut self, door: Door, ip: Option<IpAddr>, now: i64) -> Option<Failures> {
        let count = self.table.get_mut(&(door, ip))?;
        let log = count.logged_ms.is_none_or(|t| now - t >= LOG_EVERY_MS);
        if log {
            count.logged_ms = Some(now);
        }
        Some(Failures {
            count: count.failures,
            log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn the_limit_is_exact_and_per_door() {
        let mut m = Memory::default();
        let a = ip(1);
        for i in 0..20 {
            assert!(m.begin(Door::AdminLogin, a, i), "under the limit");
            m.failed(Door::AdminLogin, a, i);
        }
        assert!(!m.begin(Door::AdminLogin, a, 30));
        // Another door from the same address is open, and its success changes nothing here.
        assert!(m.begin(Door::PortalLogin, a, 31));
        m.succeeded(Door::PortalLogin, a);
        assert!(!m.begin(Door::AdminLogin, a, 32));
        assert!(m.begin(Door::AdminLogin, a, 19 + FORGET_MS), "aged out");
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt() {
        let mut m = Memory::default();
        let a = ip(2);
        for i in 0..19 {
            assert!(m.begin(Door::PortalLogin, a, i));
        }
        assert!(m.begin(Door::PortalLogin, a, 20));
        m.succeeded(Door::PortalLogin, a);
        assert!(m.begin(Door::PortalLogin, a, 21));
        assert!(!m.begin(Door::PortalLogin, a, 22), "19 failures + 1 = 20");
    }

    #[test]
    fn failures_are_logged_once_a_minute() {
        let mut m = Memory::default();
        let a = ip(3);
        m.begin(Door::Api, a, 0);
        assert!(m.failed(Door::Api, a, 0).unwrap().log);
        m.begin(Door::Api, a, 1);
        assert_eq!(
            m.failed(Door::Api, a, 1),
            Some(Failures {
                count: 2,
                log: false
            })
        );
        assert!(m.failed(Door::Api, a, LOG_EVERY_MS).unwrap().log);
    }

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(Door::AdminLogin.delay(1), Duration::from_millis(500));
        assert_eq!(Door::AdminLogin.delay(40), Duration::from_secs(5));
        assert_eq!(Door::Api.delay(10), Duration::ZERO);
        assert_eq!(Door::Api.delay(15), Duration::from_millis(500));
        assert_eq!(Door::Api.delay(49), Duration::from_secs(1));
    }
}
