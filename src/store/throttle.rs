//! The records the authentication throttles keep, and the rules they are counted by: per
//! door (the admin login, the portal login, the API's bearer tokens) and client address,
//! failures that age out after `FORGET_MS`, a slot per attempt being checked that goes
//! stale after `STALE_PENDING_MS`. They live at the store's level because the store keeps
//! them: SQLite in this process's memory (`Memory`), PostgreSQL in a table every replica
//! sees. The HTTP side — waiting for a slot, slowing answers, the exempt networks — is
//! `server::throttle`, above.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub const FORGET_MS: i64 = 15 * 60 * 1000;

pub const LOG_EVERY_MS: i64 = 60 * 1000;

/// Attempts being checked that have not been resolved for this long are taken for lost (a
/// replica died between `begin` and its answer) and their slots are freed.
pub const STALE_PENDING_MS: i64 = 30 * 1000;

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
    pub fn delay(self, n: u32) -> Duration {
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

/// A failure as the store counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures of this address at this door so far.
    pub count: u32,
    /// Whether this one is to be logged (none was for a minute).
    pub log: bool,
}

/// What the store answers to `throttle_begin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The attempt holds a slot; resolve it with `throttle_failed` or `throttle_succeeded`.
    Open,
    /// Every slot is held, some by attempts still being checked: ask again shortly.
    Busy,
    /// The address has used up its failures; logged when `log` says so.
    Locked(Failures),
}

struct Count {
    failures: u32,
    /// The last failure.
    last_ms: i64,
    /// Attempts let in and not yet resolved.
    pending: u32,
    /// The last attempt let in: pending attempts older than `STALE_PENDING_MS` are lost.
    pending_ms: i64,
    logged_ms: Option<i64>,
}

impl Count {
    fn log_now(&mut self, now: i64) -> bool {
        let log = self.logged_ms.is_none_or(|t| now - t >= LOG_EVERY_MS);
        if log {
            self.logged_ms = Some(now);
        }
        log
    }
}

/// The counts of one process, for a store that is not shared (SQLite). Pending attempts go
/// stale as on PostgreSQL: a slot `Slot` could not give back is not held for ever.
#[derive(Default)]
pub struct Memory {
    table: HashMap<(Door, Option<IpAddr>), Count>,
}

impl Memory {
    pub fn begin(&mut self, door: Door, ip: Option<IpAddr>, now: i64) -> Check {
        let table = &mut self.table;
        if table.len() > SWEEP_AT {
            table.retain(|_, c| {
                (c.pending > 0 && now - c.pending_ms < STALE_PENDING_MS)
                    || now - c.last_ms < FORGET_MS
            });
        }
        let count = table.entry((door, ip)).or_insert(Count {
            failures: 0,
            last_ms: now,
            pending: 0,
            pending_ms: now,
            logged_ms: None,
        });
        if now - count.last_ms >= FORGET_MS {
            count.failures = 0;
        }
        if now - count.pending_ms >= STALE_PENDING_MS {
            count.pending = 0;
        }
        if count.failures >= door.lock_after() {
            let log = count.log_now(now);
            return Check::Locked(Failures {
                count: count.failures,
                log,
            });
        }
        if count.failures + count.pending >= door.lock_after() {
            return Check::Busy;
        }
        count.pending += 1;
        count.pending_ms = now;
        Check::Open
    }

    pub fn succeeded(&mut self, door: Door, ip: Option<IpAddr>) {
        let table = &mut self.table;
        if let Some(count) = table.get_mut(&(door, ip)) {
            count.pending = count.pending.saturating_sub(1);
            if count.failures == 0 && count.pending == 0 && count.logged_ms.is_none() {
                table.remove(&(door, ip));
            }
        }
    }

    pub fn failed(&mut self, door: Door, ip: Option<IpAddr>, now: i64) -> Option<Failures> {
        let count = self.table.get_mut(&(door, ip))?;
        count.pending = count.pending.saturating_sub(1);
        if now - count.last_ms >= FORGET_MS {
            count.failures = 0;
        }
        count.failures += 1;
        count.last_ms = now;
        let log = count.log_now(now);
        Some(Failures {
            count: count.failures,
            log,
        })
    }
}
