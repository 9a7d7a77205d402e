//! Failed authentications, counted per door and client address.
//!
//! Each door — the admin login, the portal login, the API's bearer tokens — keeps its own
//! count, so a success at one (an attacker's own tenant key on the portal) does nothing to
//! the count at another. A success never resets a count.
//!
//! The limit is exact: no more than `lock_after` tokens are ever checked for an address
//! within the window, however many arrive at once. So an attempt takes a slot *before* its
//! token is checked (`begin`), in one atomic step with the lock-out check: failures plus
//! attempts being checked may not pass the limit. A failure keeps its slot (it becomes a
//! failure); a success gives it back. Counting only afterwards would let a burst of
//! parallel guesses all pass the check before any was counted. An attempt that finds the
//! slots taken by attempts still being checked (not by failures) waits for them instead of
//! being refused: a program sending many requests at once with a good key is never locked
//! out by its own concurrency.
//!
//! The counts live in the store (`Backend::throttle_*`), because replicas behind a load
//! balancer must share them: on SQLite in this process's memory (`Memory`; one process, and
//! no write per login attempt), on PostgreSQL in a table, one row per door and address,
//! changed by one statement each.
//!
//! A slot is a `Slot` guard: an attempt abandoned before its answer is known (actix drops
//! a handler's pending extractors when another of them fails: a bad path id, an unknown
//! query parameter, a 413 body; or the client went away) gives its slot back when the
//! guard is dropped, as a success would. Its token was never answered, so nothing was
//! learnt from it. Before this, such abandoned slots piled up until they filled the limit
//! and locked the address out, on SQLite until a restart. Slots still pending after
//! `STALE_PENDING_MS` are freed on both backends all the same (a replica that died, a
//! store that failed to give one back).
//!
//! Counts are forgotten `FORGET_MS` after an address's last failure. Failures are logged
//! at most once a minute per door and address, with the count so far; so is a refusal of
//! a locked-out address, and an attempt refused because slots stayed held for
//! `WAIT_FOR_SLOT` is logged at most every `BUSY_LOG_EVERY_MS`.
//!
//! Addresses in `throttle_exempt` (set once at start-up, `exempt`) are never counted: an
//! operator's own network, or the test that fuzzes the API with wrong tokens on purpose.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::clock::now_ms;
pub use crate::store::throttle::{
    Check, Door, Failures, Memory, FORGET_MS, LOG_EVERY_MS, STALE_PENDING_MS,
};
use crate::store::{Backend, Store};

/// How long an attempt waits for slots held by attempts still being checked.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(10);
const BUSY_LOG_EVERY_MS: i64 = 10_000;

/// Whether an attempt may go on.
pub enum Gate {
    /// The attempt holds a slot; call `Slot::failed` or `Slot::succeeded` once it is known.
    Open(Slot),
    /// The address is locked out of this door until its failures age out (already logged).
    Locked,
}

/// The slot of an attempt being checked. Resolve it with `failed` or `succeeded`; dropped
/// unresolved (the request was abandoned), it is given back like a success.
pub struct Slot {
    /// `None` for an exempt address, or once resolved.
    held: Option<(Store, Door, Option<IpAddr>)>,
}

impl Slot {
    /// The attempt failed (its slot stays taken, as a failure): logs it if this address has
    /// not been logged for a minute, and returns how long to wait before answering.
    pub async fn failed(mut self, now: i64) -> Duration {
        let Some((store, door, ip)) = self.held.take() else {
            return Duration::ZERO;
        };
        match store.throttle_failed(door, ip, now).await {
            Ok(Some(f)) => {
                log(door, ip, f);
                door.delay(f.count)
            }
            Ok(None) => Duration::ZERO,
            // The slot stays held until it goes stale: stricter for a while, never looser.
            Err(e) => {
                tracing::warn!(?door, error = %e, "could not count a failed authentication");
                door.delay(door.lock_after())
            }
        }
    }

    /// The attempt succeeded: gives its slot back. Should the store fail, the slot stays
    /// held until it goes stale: stricter for a while, never looser.
    pub async fn succeeded(mut self) {
        if let Some((store, door, ip)) = self.held.take() {
            give_back(&*store, door, ip).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((store, door, ip)) = self.held.take() else {
            return;
        };
        // Drop cannot wait: the store is asked on the runtime. Outside one (the process is
        // stopping) the slot goes stale instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { give_back(&*store, door, ip).await });
        }
    }
}

async fn give_back(store: &dyn Backend, door: Door, ip: Option<IpAddr>) {
    if let Err(e) = store.throttle_succeeded(door, ip).await {
        tracing::warn!(?door, error = %e, "could not give back an authentication slot");
    }
}

static EXEMPT: OnceLock<Vec<crate::server::client_addr::Cidr>> = OnceLock::new();

/// Addresses whose failures are never counted, slowed or refused (`throttle_exempt`).
pub fn exempt(networks: Vec<crate::server::client_addr::Cidr>) {
    let _ = EXEMPT.set(networks);
}

fn is_exempt(ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| {
        EXEMPT
            .get()
            .is_some_and(|n| n.iter().any(|c| c.contains(ip)))
    })
}

/// Takes a slot for this attempt, waiting while slots are held by attempts still being
/// checked. A store that cannot answer fails closed (the caller answers 503).
pub async fn begin(
    store: &Store,
    door: Door,
    ip: Option<IpAddr>,
    now: i64,
) -> crate::store::Result<Gate> {
    if is_exempt(ip) {
        return Ok(Gate::Open(Slot { held: None }));
    }
    let waited = Instant::now();
    loop {
        match store.throttle_begin(door, ip, now).await? {
            Check::Open => {
                return Ok(Gate::Open(Slot {
                    held: Some((store.clone(), door, ip)),
                }))
            }
            Check::Locked(failures) => {
                log(door, ip, failures);
                return Ok(Gate::Locked);
            }
            // Only a burst from one address gets here; the slots free within milliseconds.
            Check::Busy if waited.elapsed() < WAIT_FOR_SLOT => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Check::Busy => {
                busy_too_long(door, ip);
                return Ok(Gate::Locked);
            }
        }
    }
}

fn log(door: Door, ip: Option<IpAddr>, f: Failures) {
    if f.log {
        tracing::warn!(
            ?door,
            ip = ?ip,
            failures = f.count,
            "failed authentication (logged at most once a minute per address)"
        );
    }
}

static BUSY_LOGGED_MS: AtomicI64 = AtomicI64::new(0);
static BUSY_UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// An attempt refused because every slot stayed held by attempts being checked for
/// `WAIT_FOR_SLOT`: logged at most every `BUSY_LOG_EVERY_MS`, with how many in between.
fn busy_too_long(door: Door, ip: Option<IpAddr>) {
    let count = BUSY_UNLOGGED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_ms();
    let last = BUSY_LOGGED_MS.load(Ordering::Relaxed);
    if now - last >= BUSY_LOG_EVERY_MS
        && BUSY_LOGGED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        BUSY_UNLOGGED.fetch_sub(count, Ordering::Relaxed);
        tracing::warn!(
            ?door,
            ip = ?ip,
            refused = count,
            "authentication refused (429): every slot of this address stayed held by \
             attempts being checked for 10 s (logged at most every 10 s)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    fn locked(check: Check) -> bool {
        matches!(check, Check::Locked(_))
    }

    #[test]
    fn the_limit_is_exact_and_per_door() {
        let mut m = Memory::default();
        let a = ip(1);
        for i in 0..20 {
            assert_eq!(
                m.begin(Door::AdminLogin, a, i),
                Check::Open,
                "under the limit"
            );
            m.failed(Door::AdminLogin, a, i);
        }
        assert!(locked(m.begin(Door::AdminLogin, a, 30)));
        // Another door from the same address is open, and its success changes nothing here.
        assert_eq!(m.begin(Door::PortalLogin, a, 31), Check::Open);
        m.succeeded(Door::PortalLogin, a);
        assert!(locked(m.begin(Door::AdminLogin, a, 32)));
        assert_eq!(
            m.begin(Door::AdminLogin, a, 19 + FORGET_MS),
            Check::Open,
            "aged out"
        );
    }

    #[test]
    fn attempts_being_checked_hold_slots_and_a_success_gives_its_back() {
        let mut m = Memory::default();
        let a = ip(2);
        for i in 0..19 {
            assert_eq!(m.begin(Door::PortalLogin, a, i), Check::Open);
            m.failed(Door::PortalLogin, a, i);
        }
        assert_eq!(m.begin(Door::PortalLogin, a, 20), Check::Open);
        // 19 failures + 1 being checked: the next waits, it is not refused.
        assert_eq!(m.begin(Door::PortalLogin, a, 21), Check::Busy);
        m.succeeded(Door::PortalLogin, a);
        assert_eq!(m.begin(Door::PortalLogin, a, 22), Check::Open);
        m.failed(Door::PortalLogin, a, 22);
        assert!(locked(m.begin(Door::PortalLogin, a, 23)), "19 + 1 = 20");
    }

    #[test]
    fn many_good_attempts_at_once_are_never_locked_out() {
        let mut m = Memory::default();
        let a = ip(4);
        for _ in 0..50 {
            assert_eq!(m.begin(Door::Api, a, 0), Check::Open);
        }
        assert_eq!(m.begin(Door::Api, a, 0), Check::Busy);
        for _ in 0..50 {
            m.succeeded(Door::Api, a);
        }
        assert_eq!(m.begin(Door::Api, a, 0), Check::Open);
    }

    #[test]
    fn pending_attempts_go_stale() {
        let mut m = Memory::default();
        let a = ip(5);
        for _ in 0..50 {
            assert_eq!(m.begin(Door::Api, a, 0), Check::Open);
        }
        assert_eq!(m.begin(Door::Api, a, STALE_PENDING_MS - 1), Check::Busy);
        // Never resolved (lost): their slots are free once stale.
        assert_eq!(m.begin(Door::Api, a, STALE_PENDING_MS), Check::Open);
    }

    /// A request abandoned while its token was being checked (actix dropped the check)
    /// gives its slot back: 200 of them leave the address free, on a real SQLite store.
    #[tokio::test]
    async fn dropped_slots_are_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::config::Database::parse(&dir.path().join("t.db").display().to_string());
        let store = tokio::task::spawn_blocking(move || {
            crate::store::open(&db, crate::config::Durability::Normal)
        })
        .await
        .unwrap()
        .unwrap();
        let a = ip(6);
        for _ in 0..200 {
            match begin(&store, Door::Api, a, 0).await.unwrap() {
                Gate::Open(slot) => drop(slot),
                Gate::Locked => panic!("locked out by abandoned checks"),
            }
            // The slot goes back on the runtime.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            store.throttle_begin(Door::Api, a, 0).await.unwrap(),
            Check::Open
        );
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
        m.begin(Door::Api, a, 2);
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
