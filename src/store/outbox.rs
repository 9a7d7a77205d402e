//! The engine's view of the store: the outbox of pending deliveries.
//!
//! The dispatcher, workers, recorder and pruner see the store only through `Outbox`. Its
//! operations are read and write primitives; every decision about them is the engine's and
//! is passed in: how many deliveries each endpoint may have out, FIFO heads, probes and
//! rate limits (a *planner*, `engine::plan`), and what an attempt means for its endpoint —
//! the circuit breaker, auto-disable, Herald's own events (a `Judge`, `engine::health`).
//! So both backends follow one copy of the rules, and the rules are tested without a
//! database.
//!
//! The two primitives that carry a decision run it inside one consistent view of the data:
//! - a claim round reads the endpoints with due work and what the planner must know about
//!   each (`DueEndpoint`), asks the planner what to take (`Pick`s), and takes exactly that;
//!   SQLite under its claim set's lock, PostgreSQL in one transaction that holds each
//!   endpoint's advisory lock, so two rounds never plan from the same counts;
//! - a record writes each attempt, reads its endpoint's health as it stands in the same
//!   transaction (earlier records of the batch included), asks the judge what follows
//!   (`HealthChange`), and writes that.
//!
//! A claim round need not read every endpoint: the engine keeps a due-time index
//! (`engine::due`) and names the endpoints to look at (`Among`), in due order; the round
//! reads them until the planner's picks fill the round and says, for each it looked at,
//! when it next may have work (`Claim::looked`). `Outbox::due_scan` fills that index: in
//! full (every active push endpoint with pending work and when it is due, one statement),
//! or, where the backend can, only the deliveries written since the last scan.
//!
//! Where the backends must differ, the difference is named here: `Outbox::shared` (other
//! processes claim from the same outbox, so claims are durable leases, and what they hold
//! counts in `DueEndpoint::out`), `DueEndpoint::out_elsewhere` (always 0 on a private
//! outbox) and `ClaimRound::lease_ms` (ignored by a private outbox, whose claims live in
//! memory and die with the process).

use std::sync::Arc;

use super::{AttemptRecord, Claimed, Result};
use crate::domain::EndpointStatus;
use crate::lifecycle::Shutdown;

/// What one claim round asks of the outbox, beside its planner.
#[derive(Debug, Clone)]
pub struct ClaimRound {
    pub now: i64,
    /// Endpoints to leave out of this round (the caller holds their share already, or one
    /// just answered 410).
    pub skip: Vec<i64>,
    /// Count at most this many ready deliveries per endpoint: the most a planner could give
    /// one endpoint in a round.
    pub ready_limit: usize,
    /// Endpoints without a rate limit of their own follow the deployment's.
    pub default_rate_limited: bool,
    /// How long a lease lasts, on a shared outbox (a private one ignores it).
    pub lease_ms: i64,
}

/// The endpoints a claim round looks at, and how much it may take.
#[derive(Debug, Clone, Default)]
pub struct Among {
    /// The endpoints that may have due work, oldest due first (the due-time index's order).
    pub endpoints: Vec<i64>,
    /// The round reads these until the planner's picks come to this many deliveries.
    pub limit: usize,
}

/// What a claim round took, and what it learnt about the endpoints it looked at.
#[derive(Debug, Default)]
pub struct Claim {
    pub claimed: Vec<Claimed>,
    /// Each endpoint looked at, with the earliest time it may have work to claim again
    /// (a pending delivery nobody here holds comes due, an open circuit's probe), or `None`:
    /// nothing pending, or not an active push endpoint. A time at or before the round's
    /// `now` means it still has due work (beyond this round's share, or blocked behind
    /// what is in flight).
    pub looked: Vec<(i64, Option<i64>)>,
}

/// What `Outbox::due_scan` found: endpoints and when their first pending work is due.
#[derive(Debug, Default)]
pub struct DueScan {
    /// (endpoint, time): in a full scan, every active push endpoint with pending work; in
    /// a partial one, the endpoints of the deliveries written since the cursor.
    pub due: Vec<(i64, i64)>,
    /// Pass this to the next scan to read only what was written since; `None`: this
    /// outbox scans in full each time (PostgreSQL: ids are not allocated in commit order).
    pub cursor: Option<i64>,
    /// Whether this was a full scan (every endpoint with pending work is listed).
    pub full: bool,
}

/// One endpoint with work to claim, as a claim round sees it. Rounds list them in the order
/// of their oldest due delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEndpoint {
    pub id: i64,
    /// Its circuit is open and the probe is due: it may get one delivery, its next pending
    /// one whether due or not (while the circuit was open, their retry times stood still).
    pub probe_due: bool,
    /// It takes its deliveries one at a time, in publish order.
    pub fifo: bool,
    /// It has a rate limit, its own or the deployment's.
    pub rate_limited: bool,
    /// Its pending deliveries that are due now and claimed by nobody, at most
    /// `ClaimRound::ready_limit`.
    pub ready: usize,
    /// Its oldest pending delivery is due and claimed by nobody (what a FIFO endpoint may
    /// send next).
    pub head_ready: bool,
    /// Its deliveries claimed and not yet recorded or released, by every process that
    /// shares the outbox (this one included).
    pub out: usize,
    /// Of `out`, those held by other processes.
    pub out_elsewhere: usize,
}

/// What a planner takes of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Up to this many ready deliveries, oldest due first.
    Due(usize),
    /// Its next pending delivery, due or not: a circuit's probe.
    Next,
    /// Its oldest pending delivery, if it is still ready: a FIFO endpoint's head.
    Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub endpoint: i64,
    pub take: Take,
}

/// An endpoint's health as the recorder's transaction reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    pub status: EndpointStatus,
    /// It has a rate limit of its own (its last attempt's time is kept across restarts).
    pub rate_limited: bool,
    pub failures: FailureRecord,
    /// Its own `disable_after` (ms), if it has one.
    pub disable_after_ms: Option<i64>,
    /// Its recent attempts, which the failure-rate rule reads.
    pub window: AttemptWindow,
}

/// An endpoint's recent attempts, counted in two buckets of `circuit_window` each: the
/// current one, which began at `start`, and the one before it. Counters rather than one
/// row per attempt: the recorder reads and writes them with the endpoint's row, in the
/// transaction of the attempt, so every process sharing the store sees the same window.
/// `start: None` is the empty window (a healthy endpoint's: see `engine::health`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptWindow {
    pub start: Option<i64>,
    pub succeeded: u32,
    pub failed: u32,
    pub prev_succeeded: u32,
    pub prev_failed: u32,
}

impl AttemptWindow {
    /// Attempts in both buckets.
    pub fn attempts(&self) -> u32 {
        self.succeeded
            .saturating_add(self.failed)
            .saturating_add(self.prev_succeeded)
            .saturating_add(self.prev_failed)
    }

    /// Failures in both buckets.
    pub fn failures(&self) -> u32 {
        self.failed.saturating_add(self.prev_failed)
    }
}

/// An endpoint's failures since its last success, and its circuit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureRecord {
    pub consecutive: u32,
    /// When the first failure since the last success was sent.
    pub failing_since: Option<i64>,
    pub circuit: Option<CircuitState>,
}

/// An open circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitState {
    pub opened_at: i64,
    /// When the next probe may go.
    pub next_probe: i64,
    /// The wait before that probe; it doubles with each failed probe.
    pub backoff_ms: i64,
}

/// What follows from one attempt for its endpoint, as the judge decides it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthChange {
    /// The endpoint's new failure record and circuit, when they change.
    pub failures: Option<FailureRecord>,
    /// The endpoint's new attempt window, when it changes.
    pub window: Option<AttemptWindow>,
    /// Move the endpoint's `last_attempt_at` forward to this (never back).
    pub last_attempt_at: Option<i64>,
    /// Herald's own events about the endpoint, published with the record.
    pub events: Vec<OperationalEvent>,
    /// Disable the endpoint: its pending deliveries are cancelled.
    pub disable: Option<Disable>,
}

/// One of Herald's own events about an endpoint: its kind and data (`operational_event`
/// adds the tenant, endpoint and URL).
pub type OperationalEvent = (&'static str, serde_json::Value);

/// A decision to disable an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Disable {
    pub reason: &'static str,
    /// Published once the endpoint is disabled. A backend that cannot take the endpoint's
    /// tenant at once (PostgreSQL, while an API change of it holds the lock) leaves the
    /// endpoint active and publishes nothing: its failure record is kept, so the next
    /// failure decides again.
    pub announce: OperationalEvent,
}

/// Decides what an attempt means for its endpoint (`engine::health`).
pub trait Judge: Send + Sync {
    fn judge(&self, attempt: &AttemptRecord, health: &EndpointHealth, now: i64) -> HealthChange;
}

/// The planner a claim round consults: given the due endpoints, what to take of each.
pub type Planner<'a> = dyn FnMut(&[DueEndpoint]) -> Vec<Pick> + 'a;

/// The engine's operations (blocking: the engine's threads call them directly).
pub trait Outbox: Send + Sync {
    /// Whether other processes claim from this outbox too (PostgreSQL replicas): then a
    /// claim is a durable lease that lapses if its holder dies, and the deliveries other
    /// processes hold count in `DueEndpoint::out`.
    fn shared(&self) -> bool;
    /// Makes whatever a previous run of this process left claimed claimable again.
    fn engine_starting(&self) -> Result<usize>;
    /// One claim round: reads the due endpoints (active push endpoints with pending work
    /// due, or a probe due), lets `plan` decide, and claims exactly the picks (fewer where
    /// deliveries went meanwhile). A claimed delivery is not claimed again until its
    /// attempt is recorded or it is released.
    fn claim(&self, round: &ClaimRound, plan: &mut Planner<'_>) -> Result<Vec<Claimed>> {
        // Every endpoint with pending work, oldest due first: a round over all of them.
        let mut due = self.due_scan(None)?.due;
        due.sort_by_key(|&(endpoint, at)| (at, endpoint));
        let among = Among {
            endpoints: due
                .into_iter()
                .filter(|&(_, at)| at <= round.now)
                .map(|(endpoint, _)| endpoint)
                .collect(),
            limit: usize::MAX,
        };
        Ok(self.claim_among(round, &among, plan)?.claimed)
    }
    /// A claim round over `among`'s endpoints only (the dispatcher's, fed by its due-time
    /// index), read in their order until the picks come to `among.limit`: otherwise as
    /// `claim`. Says when each endpoint it looked at may have work next.
    fn claim_among(
        &self,
        round: &ClaimRound,
        among: &Among,
        plan: &mut Planner<'_>,
    ) -> Result<Claim>;
    /// The endpoints with pending work and when it comes due: `since: None` reads every
    /// active push endpoint (one statement); a cursor from an earlier scan reads only the
    /// deliveries written since, where the backend can (`DueScan::cursor`).
    fn due_scan(&self, since: Option<i64>) -> Result<DueScan>;
    /// Writes attempts and their consequences in one transaction: the attempt, the
    /// delivery's new state, and for each what `judge` decides about its endpoint; then
    /// lets their claims go. On an error nothing was written and the claims stay held:
    /// the caller writes the same records again later (`engine::recorder`), or releases.
    fn record(&self, records: Arc<[AttemptRecord]>, judge: Arc<dyn Judge>, now: i64) -> Result<()>;
    /// Gives back claims that were never attempted (shutdown, or more than the board takes).
    fn release(&self, delivery_ids: &[i64]) -> Result<()>;
    /// When the next pending delivery, or an open circuit's probe, comes due after `now`.
    fn next_due(&self, now: i64) -> Result<Option<i64>>;
    /// Deletes up to `batch` events older than `before` with their deliveries.
    fn prune(&self, before: i64, batch: usize) -> Result<usize>;
    /// The endpoints with a client certificate: id, the certificate's PEM, and the
    /// fingerprint of the one whose coming expiry was last announced.
    fn client_certificates(&self) -> Result<Vec<(i64, String, Option<String>)>>;
    /// Raises `herald.endpoint.certificate_expiring` (with `data`) for the endpoint's
    /// certificate `fingerprint`, once: `false` (and nothing raised) when it was already.
    fn announce_certificate(
        &self,
        endpoint: i64,
        fingerprint: String,
        data: serde_json::Value,
        now: i64,
    ) -> Result<bool>;
    /// Calls `wake` whenever another process makes work due (a publish, a retry), until
    /// `shutdown`. Only a shared outbox has anything to watch.
    fn watch_wakeups(&self, _wake: Box<dyn Fn() + Send>, _shutdown: Shutdown) -> Result<()> {
        Ok(())
    }
}
