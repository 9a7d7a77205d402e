//! Failed authentications, counted per door and client address.
//!
//! Each door — the admin login, the portal login, the API's bearer tokens — keeps its own
//! count, so a success at one (an attacker's own tenant key on the portal) does nothing to
//! the count at another. A success never resets a count: it only takes back its own attempt.
//!
//! An attempt is counted *before* its token is checked, in the same critical section as
//! the lock-out check (`begin`). Counting afterwards would let a burst of parallel guesses
//! all pass the check before any of them is counted; this way the limit is exact.
//!
//! Counts are forgotten `FORGET_MS` after an address's last failure. Failures are logged
//! at most once a minute per door and address, with the count so far.
//!
//! Addresses in `throttle_exempt` (set once at start-up, `exempt`) are never counted: an
//! operator's own network, or the test that fuzzes the API with wrong tokens on purpose.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const FORGET_MS: i64 = 15 * 60 * 1000;
const LOG_EVERY_MS: i64 = 60 * 1000;
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
    fn lock_after(self) -> u32 {
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
}

struct Count {
    failures: u32,
    last_ms: i64,
    logged_ms: Option<i64>,
}

type Table = HashMap<(Door, Option<IpAddr>), Count>;

static COUNTS: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

fn table() -> MutexGuard<'static, Table> {
    COUNTS.lock().unwrap_or_else(|p| p.into_inner())
}

static EXEMPT: OnceLock<Vec<crate::client_addr::Cidr>> = OnceLock::new();

/// Addresses whose failures are never counted, slowed or refused (`throttle_exempt`).
pub fn exempt(networks: Vec<crate::client_addr::Cidr>) {
    let _ = EXEMPT.set(networks);
}

fn is_exempt(ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| {
        EXEMPT
            .get()
            .is_some_and(|n| n.iter().any(|c| c.contains(ip)))
    })
}

/// The address is locked out of this door until its failures age out.
#[derive(Debug)]
pub struct Locked;

/// Checks the door and counts this attempt as a failure in advance, atomically.
pub fn begin(door: Door, ip: Option<IpAddr>, now: i64) -> Result<(), Locked> {
    if is_exempt(ip) {
        return Ok(());
    }
    let mut table = table();
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
        return Err(Locked);
    }
    count.failures += 1;
    count.last_ms = now;
    Ok(())
}

/// The attempt `begin` counted was a success: take it back.
pub fn succeeded(door: Door, ip: Option<IpAddr>) {
    let mut table = table();
    if let Some(count) = table.get_mut(&(door, ip)) {
        count.failures = count.failures.saturating_sub(1);
        if count.failures == 0 && count.logged_ms.is_none() {
            table.remove(&(door, ip));
        }
    }
}

/// The attempt `begin` counted failed (it stays counted): logs it if this address has not
/// been logged for a minute, and returns how long to wait before answering.
pub fn failed(door: Door, ip: Option<IpAddr>, now: i64) -> Duration {
    let mut table = table();
    let Some(count) = table.get_mut(&(door, ip)) else {
        return Duration::ZERO;
    };
    if count.logged_ms.is_none_or(|t| now - t >= LOG_EVERY_MS) {
        count.logged_ms = Some(now);
        tracing::warn!(
            ?door,
            ip = ?ip,
            failures = count.failures,
            "failed authentication (logged at most once a minute per address)"
        );
    }
    door.delay(count.failures)
}

/// Logs a refusal of a locked-out address (rate-limited like failures).
pub fn locked(door: Door, ip: Option<IpAddr>, now: i64) {
    failed(door, ip, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn the_limit_is_exact_and_per_door() {
        let a = ip(1);
        for i in 0..20 {
            begin(Door::AdminLogin, a, i).expect("under the limit");
            failed(Door::AdminLogin, a, i);
        }
        assert!(begin(Door::AdminLogin, a, 30).is_err());
        // Another door from the same address is open, and its success changes nothing here.
        begin(Door::PortalLogin, a, 31).unwrap();
        succeeded(Door::PortalLogin, a);
        assert!(begin(Door::AdminLogin, a, 32).is_err());
        assert!(
            begin(Door::AdminLogin, a, 19 + FORGET_MS).is_ok(),
            "aged out"
        );
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt() {
        let a = ip(2);
        for i in 0..19 {
            begin(Door::PortalLogin, a, i).unwrap();
        }
        begin(Door::PortalLogin, a, 20).unwrap();
        succeeded(Door::PortalLogin, a);
        begin(Door::PortalLogin, a, 21).unwrap();
        assert!(
            begin(Door::PortalLogin, a, 22).is_err(),
            "19 failures + 1 = 20"
        );
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
