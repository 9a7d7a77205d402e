//! The delivery engine: from the outbox table to the receivers' doors.
//!
//! The path of a delivery:
//! 1. A publish commits an event and its pending delivery rows, then calls
//!    `EngineHandle::wake`, so the dispatcher looks at the outbox at once — delivery latency
//!    does not depend on a polling interval.
//! 2. The dispatcher (`dispatcher.rs`) runs claim rounds (`Outbox::claim_among`; with
//!    SQLite a read, the claim kept in memory) over the endpoints its due-time index
//!    (`due.rs`) lists as due, oldest first: the outbox reads them until the planner
//!    (`plan.rs`) has filled the round, and the claims are pinned to the board
//!    (`board.rs`), which keeps a per-endpoint in-flight cap so one slow endpoint cannot
//!    hold every worker. Endpoints with nothing to do cost it nothing. It still wakes on
//!    its own when the index's next endpoint (a retry, a probe) comes due.
//! 3. A worker (`worker.rs`) takes a ready delivery, signs and sends it (`http.rs`, with
//!    the SSRF guard in the resolver, applying `domain::address`'s rules; through the
//!    shared agent, or the endpoint's own for a client certificate, a CA bundle or a proxy:
//!    `agents.rs`, with Herald's TLS in `tls.rs`; with the endpoint's auth, an OAuth2 token
//!    from the shared cache in `oauth.rs`), decides the
//!    next step (`retry.rs`), passes the outcome to the recorder, and goes straight on
//!    with its endpoint's next delivery.
//! 4. The recorder (`recorder.rs`) writes outcomes in batches, one transaction for many
//!    attempts, and only then lets their claims go; in that transaction the health policy
//!    (`health.rs`) decides what each attempt means for its endpoint (circuit breaker,
//!    auto-disable, Herald's own events). While the store refuses writes, it holds the
//!    outcomes and the dispatcher claims nothing, so a fault causes no resends.
//! 5. The pruner (`pruner.rs`) trims history older than `retention` in small batches.
//!
//! The engine sees the store only as an `Outbox`, and its rules are pure code here, so both
//! backends follow one copy of them. `Parts::wire` builds the parts once, for the threads
//! (`Engine::start`) and for the steppable harness (`harness.rs`). One `Shutdown` token stops
//! them all: its hooks stop the board and wake the dispatcher; the workers, blocked on the
//! board, end; `Engine::shutdown` waits for requests in flight and their records.
//!
//! Crash safety: a delivery is only final once its attempt is recorded. Anything claimed but
//! not recorded is still pending in the store; after a crash it is claimed and sent again
//! with the same `webhook-id` (at-least-once).

pub mod agents;
pub mod board;
pub mod dispatcher;
pub mod due;
pub mod harness;
pub mod health;
pub mod http;
pub mod oauth;
pub mod plan;
mod pruner;
pub mod recorder;
pub mod retry;
mod tls;
mod transport;
pub mod worker;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{now_ms, Clock, SystemClock};
use crate::config::Config;
use crate::lifecycle::{Critical, Shutdown, Tally};
use crate::store::{AttemptRecord, Judge, Outbox, StoreError};
use board::Board;
use dispatcher::Dispatcher;
use health::HealthPolicy;
use recorder::{Recorder, Stall};
use worker::WorkerContext;

/// Days before a client certificate's expiry that `herald.endpoint.certificate_expiring`
/// is raised (and the endpoint page warns).
pub const CERT_WARNING_DAYS: i64 = 14;

/// Messages to the dispatcher.
#[derive(Debug)]
pub enum Signal {
    /// New work may be due (a publish, a retry, a resumed endpoint, a queue that ran dry),
    /// or shutdown began (the dispatcher looks at the token when it wakes).
    Wake,
    /// A retry was scheduled for this time (ms); its endpoint is in the due-time index.
    DueAt(i64),
    /// A claim round may find work, in the store as the index knows it: an endpoint's
    /// queue on the board ran dry, or its next delivery waits for its rate limit.
    Round,
}

/// Counters for /metrics.
#[derive(Default)]
pub struct EngineStats {
    pub attempts: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// The Prometheus figures (`/metrics`).
    pub metrics: crate::metrics::Metrics,
}

/// What the API holds: a way to wake the dispatcher and to ask whether it is alive.
#[derive(Clone)]
pub struct EngineHandle {
    signals: mpsc::Sender<Signal>,
    heartbeat: Arc<AtomicI64>,
    board: Arc<Board>,
    due: Arc<due::Due>,
    pub stats: Arc<EngineStats>,
}

impl EngineHandle {
    /// An endpoint's in-flight limit now (it adapts to the receiver).
    pub fn concurrency_of(&self, endpoint: i64) -> usize {
        self.board.limit_of(endpoint)
    }

    /// New deliveries were written (a publish, a replay): the dispatcher reads them.
    pub fn wake(&self) {
        let _ = self.signals.send(Signal::Wake);
    }

    /// Existing deliveries or endpoints changed so that work may be due the dispatcher
    /// cannot tell from new rows (a retry or recovery, an endpoint resumed): it scans the
    /// store in full before its next round.
    pub fn rescan(&self) {
        self.due.rescan();
        self.wake();
    }

    /// The dispatcher loop ran within the last few seconds.
    pub fn alive(&self) -> bool {
        now_ms() - self.heartbeat.load(Ordering::Relaxed) < 5_000
    }
}

/// The engine's parts, wired in one place: `Engine::start` runs them on threads, and the
/// harness (`harness.rs`) drives the same parts one step at a time.
pub struct Parts {
    pub outbox: Arc<dyn Outbox>,
    pub board: Arc<Board>,
    pub dispatcher: Dispatcher,
    /// What every worker is given (each takes a clone).
    pub worker: WorkerContext,
    pub judge: Arc<dyn Judge>,
    /// The workers' outcomes, for the recorder.
    pub records: mpsc::Receiver<AttemptRecord>,
    /// The dispatcher's signals.
    pub signals: mpsc::Receiver<Signal>,
    pub handle: EngineHandle,
    /// Writes the outcomes (on its own thread, or the harness's).
    pub recorder: Recorder,
}

impl Parts {
    /// Wires the parts over `outbox`. At the `shutdown` trigger, the board stops handing
    /// out work (idle workers wake and end) and gives back what was never sent, and the
    /// dispatcher wakes to see the token.
    pub fn wire(
        outbox: Arc<dyn Outbox>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        shutdown: &Shutdown,
    ) -> Result<Parts, StoreError> {
        // Whatever an earlier run of this process left claimed is due again now.
        let released = outbox.engine_starting()?;
        if released > 0 {
            tracing::warn!(
                released,
                "re-queued deliveries left in flight by the previous run"
            );
        }
        let (signal_tx, signals) = mpsc::channel();
        let (record_tx, records) = mpsc::channel();
        let board = Arc::new(Board::adaptive(
            config.endpoint_concurrency,
            config.max_endpoint_concurrency,
            config.rate_limit,
            clock.clone(),
        ));
        let stats = Arc::new(EngineStats::default());
        let stall = Arc::new(Stall::default());
        let dispatcher = Dispatcher::new(
            outbox.clone(),
            config.clone(),
            board.clone(),
            clock.clone(),
            stall.clone(),
            shutdown.clone(),
        );
        let handle = EngineHandle {
            signals: signal_tx.clone(),
            heartbeat: Arc::new(AtomicI64::new(now_ms())),
            board: board.clone(),
            due: dispatcher.due(),
            stats: stats.clone(),
        };
        stop_at(shutdown, &board, &outbox, &signal_tx);
        let judge: Arc<dyn Judge> = Arc::new(HealthPolicy::from_config(&config));
        let mut recorder = Recorder::new(
            outbox.clone(),
            board.clone(),
            clock.clone(),
            judge.clone(),
            signal_tx.clone(),
            stats.clone(),
            stall,
        );
        recorder.due = dispatcher.due();
        let worker = WorkerContext {
            outbox: outbox.clone(),
            board: board.clone(),
            agents: Arc::new(agents::Agents::new(config.clone())),
            tokens: Arc::new(oauth::Tokens::default()),
            config: config.clone(),
            names: WorkerContext::header_names(&config),
            clock,
            results: record_tx,
            signals: signal_tx,
            busy: Arc::new(Tally::default()),
            stats,
            due: dispatcher.due(),
        };
        Ok(Parts {
            judge,
            outbox,
            board,
            dispatcher,
            worker,
            records,
            signals,
            handle,
            recorder,
        })
    }
}

/// At the trigger: the board stops handing out work (idle workers wake and end) and its
/// unsent claims go back to the outbox; the dispatcher wakes to see the token.
fn stop_at(
    shutdown: &Shutdown,
    board: &Arc<Board>,
    outbox: &Arc<dyn Outbox>,
    signals: &mpsc::Sender<Signal>,
) {
    let (board, outbox, signals) = (board.clone(), outbox.clone(), signals.clone());
    shutdown.on_trigger(move || {
        let unsent = board.stop();
        if let Err(e) = outbox.release(&unsent) {
            // A private outbox's claims die with the process; a shared one's lapse.
            tracing::warn!(error = %e, "cannot give back unsent claims; they lapse");
        }
        let _ = signals.send(Signal::Wake);
    });
}

/// The running engine; `shutdown` stops it.
pub struct Engine {
    handle: EngineHandle,
    shutdown: Shutdown,
    busy: Arc<Tally>,
    /// Closed when the recorder has written everything the workers passed on.
    recorded: mpsc::Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    pub fn start(
        outbox: Arc<dyn Outbox>,
        config: Arc<Config>,
        shutdown: Shutdown,
    ) -> Result<Engine, StoreError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let Parts {
            outbox,
            mut dispatcher,
            worker,
            records,
            signals,
            handle,
            recorder,
            ..
        } = Parts::wire(outbox, config.clone(), clock, &shutdown)?;
        {
            // Publishes on other replicas (a shared database) wake this dispatcher too.
            let signals = handle.signals.clone();
            outbox.watch_wakeups(
                Box::new(move || {
                    let _ = signals.send(Signal::Wake);
                }),
                shutdown.clone(),
            )?;
        }
        let mut threads = Vec::new();
        let busy = worker.busy.clone();
        // A few workers now, the rest as deliveries need them (`worker::Crew`). The crew
        // holds the workers' context, so the recorder ends once every worker has gone.
        drop(worker::Crew::start(worker, config.workers));
        let (recorder_done, recorded) = mpsc::channel();
        threads.push(spawn("herald-recorder", move || {
            let _critical = Critical::new("recorder");
            recorder.run(records);
            drop(recorder_done);
        }));
        let heartbeat = handle.heartbeat.clone();
        threads.push(spawn("herald-dispatcher", move || {
            let _critical = Critical::new("dispatcher");
            dispatcher.run(signals, &heartbeat)
        }));
        let (pruner_stop, retention) = (shutdown.clone(), config.retention);
        threads.push(spawn("herald-pruner", move || {
            pruner::run(outbox, retention, pruner_stop)
        }));
        Ok(Engine {
            handle,
            shutdown,
            busy,
            recorded,
            threads,
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops claiming, lets in-flight requests finish for up to `bound`, waits for their
    /// records to be written, and gives back what was claimed but never sent.
    pub fn shutdown(self, bound: Duration) {
        let started = Instant::now();
        // The board stops and gives back what was never sent; the dispatcher, idle workers
        // and the pruner end (`Parts::wire`).
        self.shutdown.trigger();
        let unfinished = self.busy.wait_idle(bound);
        // The recorder ends once every worker has gone and it has written what they passed
        // on. Waiting for that makes a finished request a recorded one, so it is not sent
        // again at the next start. A worker still in a request past the bound keeps the
        // recorder alive; its delivery stays pending and is sent again after the restart.
        if unfinished == 0 {
            let _ = self.recorded.recv_timeout(Duration::from_secs(2));
        }
        tracing::info!(
            unfinished,
            ms = started.elapsed().as_millis() as u64,
            "engine stopped"
        );
        drop(self.threads); // threads stuck in a request end with the process
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn engine thread")
}
