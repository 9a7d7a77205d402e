//! Whether the database answers, this replica's heartbeat, and the shared clock: one
//! thread (`watch`) on a connection of its own.
//!
//! - **Down fast.** Once a connection is refused or lost (a pool checkout's connect fails,
//!   a pooled connection closes under a query, the heartbeat fails), the store is *down*:
//!   every operation answers `StoreError::Unreachable` (503) at once instead of waiting
//!   the pool's checkout timeout, until this thread, probing every `PROBE` with a short
//!   connect timeout, gets a heartbeat through. A load balancer's `/readyz` then sees 503
//!   within ~100 ms of the database going away, and 200 again within ~`PROBE` of its
//!   return.
//! - **Heartbeat.** Every `BEAT` the replica's row in `replicas` gets the database's
//!   `clock_timestamp()`. A lease whose owner's heartbeat is older than `STALE` counts as
//!   lapsed (`outbox.rs`), so a `kill -9`ed replica's deliveries are claimable again after
//!   `STALE`, not after the whole lease.
//! - **Shared clock.** The same statement returns the database's time; its difference to
//!   this process's clock (taken at the round trip's midpoint) is `clock::set_offset_ms`,
//!   so every replica's `now_ms` is the database's time (`clock.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;

use super::connection::Target;
use crate::clock;
use crate::lifecycle::Shutdown;
use crate::store::Result;

/// How often a live replica's heartbeat is written.
pub const BEAT: Duration = Duration::from_millis(500);
/// How old the heartbeat of a lease's owner may be before its leases count as lapsed: six
/// beats, so a replica must miss five in a row (a stall of more than 2.5 s) to lose them.
pub const STALE_MS: i64 = 3_000;
/// How often a database seen down is tried again.
const PROBE: Duration = Duration::from_millis(250);
/// The probe's connect timeout: an unreachable host answers nothing, and the probe must
/// not hang on it for the URL's (or the default) 10 s.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Replicas whose heartbeat is this old are forgotten (their rows, not their leases).
const FORGET_MS: i64 = 24 * 3_600_000;
/// An offset that moved by less than this is kept: the round trip's noise would otherwise
/// make the clock tick back and forth by a millisecond.
const OFFSET_SLACK_MS: i64 = 20;

/// The database's clock in ms, as every statement that must agree with it spells it.
const DB_NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::int8";

/// Whether the database is seen down; shared by the store's operations and `watch`.
#[derive(Default)]
pub struct Liveness {
    down: AtomicBool,
}

impl Liveness {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Marks the database down (a refused or lost connection); logged once per outage.
    pub fn mark_down(&self, why: &str) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(
                cause = why,
                "PostgreSQL is unreachable: answering 503 until it is back (checked every 250 ms)"
            );
        }
    }

    fn mark_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!("PostgreSQL is reachable again");
        }
    }
}

/// Tells the liveness of every connection the pool fails to open (r2d2 calls it on the
/// pool's own threads and in checkouts).
#[derive(Debug)]
pub struct PoolErrors(pub Arc<Liveness>);

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Liveness {{ down: {} }}", self.is_down())
    }
}

impl r2d2::HandleError<postgres::Error> for PoolErrors {
    fn handle_error(&self, error: postgres::Error) {
        self.0.mark_down(&error.to_string());
    }
}

/// Writes this replica's heartbeat and sets the shared clock from the database's answer.
pub fn beat(c: &mut Client, replica: &str) -> Result<()> {
    let before = clock::local_ms();
    let row = c.query_one(
        &format!(
            "INSERT INTO replicas (id, heartbeat_at, started_at) VALUES ($1, {DB_NOW_MS}, {DB_NOW_MS})
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
             RETURNING heartbeat_at"
        ),
        &[&replica],
    )?;
    let after = clock::local_ms();
    let db_ms: i64 = row.get(0);
    let offset = db_ms - (before + after) / 2;
    if (offset - clock::offset_ms()).abs() > OFFSET_SLACK_MS.max(after - before) {
        clock::set_offset_ms(offset);
    }
    Ok(())
}

/// Deletes the rows of replicas gone for a day (every restart leaves one behind).
fn forget_old(c: &mut Client) -> Result<()> {
    c.execute(
        &format!("DELETE FROM replicas WHERE heartbeat_at < {DB_NOW_MS} - $1"),
        &[&FORGET_MS],
    )?;
    Ok(())
}

/// The liveness thread: a heartbeat every `BEAT` while the database answers, a probe
/// every `PROBE` while it does not. Ends with `stop`.
pub fn watch(target: Target, replica: String, live: Arc<Liveness>, stop: Shutdown) {
    let mut probe = target.clone();
    probe.config.connect_timeout(PROBE_CONNECT_TIMEOUT);
    let mut client: Option<Client> = None;
    let mut last_forget = Instant::now();
    loop {
        let wait = if live.is_down() { PROBE } else { BEAT };
        if stop.sleep(wait) {
            return;
        }
        let c = match client.as_mut() {
            Some(c) => c,
            None => match probe.connect() {
                Ok(c) => client.insert(c),
                Err(e) => {
                    live.mark_down(&e.to_string());
                    continue;
                }
            },
        };
        match beat(c, &replica) {
            Ok(()) => live.mark_up(),
            Err(e) => {
                // A new connection next time: this one may be the broken part.
                client = None;
                live.mark_down(&e.to_string());
                continue;
            }
        }
        if last_forget.elapsed() > Duration::from_secs(600) {
            last_forget = Instant::now();
            if let Err(e) = forget_old(c) {
                tracing::debug!(error = %e, "cannot forget old replicas");
            }
        }
    }
}
