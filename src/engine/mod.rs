//! The delivery engine: from the outbox table to the receivers' doors.
//!
//! The path of a delivery:
//! 1. A publish commits an event and its pending delivery rows, then calls
//!    `EngineHandle::wake`, so the dispatcher looks at the outbox at once — delivery latency
//!    does not depend on a polling interval.
//! 2. The dispatcher (`dispatcher.rs`) claims due deliveries (`Store::claim_due`; with
//!    SQLite a read, the claim kept in memory) and pins them to the board (`board.rs`),
//!    which keeps a per-endpoint in-flight cap so one slow endpoint cannot hold every
//!    worker. It still wakes on its own for retries that come due.
//! 3. A worker (`worker.rs`) takes a ready delivery, signs and sends it (`http.rs`, with
//!    the SSRF guard in the resolver), decides the next step (`retry.rs`), passes the
//!    outcome to the recorder, and goes straight on with its endpoint's next delivery.
//! 4. The recorder (`worker.rs`) writes outcomes in batches, one transaction for many
//!    attempts, and only then lets their claims go.
//! 5. The pruner (`pruner.rs`) trims history older than `retention` in small batches.
//!
//! Crash safety: a delivery is only final once its attempt is recorded. Anything claimed but
//! not recorded is still pending in the store; after a crash it is claimed and sent again
//! with the same `webhook-id` (at-least-once).

pub mod board;
pub mod dispatcher;
pub mod harness;
pub mod http;
mod pruner;
pub mod retry;
pub mod ssrf;
pub mod worker;

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{now_ms, Clock, SystemClock};
use crate::config::Config;
use crate::lifecycle::{Critical, Shutdown};
use crate::store::{Store, StoreError};
use board::Board;

/// Messages to the dispatcher.
#[derive(Debug)]
pub enum Signal {
    /// New work may be due (a publish, a retry, a resumed endpoint, a queue that ran dry).
    Wake,
    /// A retry was scheduled for this time (ms): look no later than that.
    DueAt(i64),
    Stop,
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
    pub stats: Arc<EngineStats>,
}

impl EngineHandle {
    /// An endpoint's in-flight limit now (it adapts to the receiver).
    pub fn concurrency_of(&self, endpoint: i64) -> usize {
        self.board.limit_of(endpoint)
    }

    pub fn wake(&self) {
        let _ = self.signals.send(Signal::Wake);
    }

    /// The dispatcher loop ran within the last few seconds.
    pub fn alive(&self) -> bool {
        now_ms() - self.heartbeat.load(Ordering::Relaxed) < 5_000
    }
}

/// The running engine; `shutdown` stops it.
pub struct Engine {
    handle: EngineHandle,
    shutdown: Shutdown,
    board: Arc<Board>,
    busy_workers: Arc<AtomicUsize>,
    recorder: JoinHandle<()>,
    threads: Vec<JoinHandle<()>>,
    store: Store,
}

impl Engine {
    pub fn start(
        store: Store,
        config: Arc<Config>,
        shutdown: Shutdown,
    ) -> Result<Engine, StoreError> {
        // Whatever an earlier run of this process left claimed is due again now.
        let released = store.engine_starting()?;
        if released > 0 {
            tracing::warn!(
                released,
                "re-queued deliveries left in flight by the previous run"
            );
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (signals, signal_rx) = mpsc::channel();
        let (record_tx, record_rx) = mpsc::channel();
        let heartbeat = Arc::new(AtomicI64::new(now_ms()));
        let stats = Arc::new(EngineStats::default());
        let busy_workers = Arc::new(AtomicUsize::new(0));
        let board = Arc::new(Board::adaptive(
            config.endpoint_concurrency,
            config.max_endpoint_concurrency,
            config.rate_limit,
            clock.clone(),
        ));
        let handle = EngineHandle {
            signals: signals.clone(),
            heartbeat: heartbeat.clone(),
            board: board.clone(),
            stats: stats.clone(),
        };
        let mut threads = Vec::new();
        {
            // Publishes on other replicas (a shared database) wake this dispatcher too.
            let signals = signals.clone();
            store.watch_wakeups(
                Box::new(move || {
                    let _ = signals.send(Signal::Wake);
                }),
                shutdown.clone(),
            )?;
        }
        let agent = http::agent(&config);
        for n in 0..config.workers {
            let ctx = worker::WorkerContext {
                store: store.clone(),
                board: board.clone(),
                agent: agent.clone(),
                config: config.clone(),
                names: worker::WorkerContext::header_names(&config),
                clock: clock.clone(),
                results: record_tx.clone(),
                signals: signals.clone(),
                shutdown: shutdown.clone(),
                busy: busy_workers.clone(),
                stats: stats.clone(),
            };
            threads.push(spawn(&format!("herald-worker-{n}"), move || {
                worker::run(ctx)
            }));
        }
        drop(record_tx);
        let recorder = {
            let (store, board, clock) = (store.clone(), board.clone(), clock.clone());
            let (policy, signals) = (worker::health_policy(&config), signals.clone());
            spawn("herald-recorder", move || {
                let _critical = Critical::new("recorder");
                worker::record(record_rx, store, board, clock, policy, signals)
            })
        };
        let mut dispatcher =
            dispatcher::Dispatcher::new(store.clone(), config.clone(), board.clone(), clock);
        threads.push(spawn("herald-dispatcher", move || {
            let _critical = Critical::new("dispatcher");
            dispatcher.run(signal_rx, &heartbeat)
        }));
        let (pruner_store, pruner_stop, retention) =
            (store.clone(), shutdown.clone(), config.retention);
        threads.push(spawn("herald-pruner", move || {
            pruner::run(pruner_store, retention, pruner_stop)
        }));
        Ok(Engine {
            handle,
            shutdown,
            board,
            busy_workers,
            recorder,
            threads,
            store,
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops claiming, lets in-flight requests finish for up to `bound`, waits for their
    /// records to be written, and gives back what was claimed but never sent.
    pub fn shutdown(self, bound: Duration) {
        self.shutdown.trigger();
        let _ = self.handle.signals.send(Signal::Stop);
        let unsent = self.board.stop();
        let _ = self.store.release(&unsent);
        let deadline = Instant::now() + bound;
        while self.busy_workers.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The recorder ends once every worker has gone and it has written what they passed
        // on. Waiting for that makes a finished request a recorded one, so it is not sent
        // again at the next start. A worker still in a request past the bound keeps the
        // recorder alive; its delivery stays pending and is sent again after the restart.
        let unfinished = self.busy_workers.load(Ordering::SeqCst);
        if unfinished == 0 {
            let recorded_by = Instant::now() + Duration::from_secs(2);
            while !self.recorder.is_finished() && Instant::now() < recorded_by {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        tracing::info!(unsent = unsent.len(), unfinished, "engine stopped");
        drop(self.threads); // threads stuck in a request end with the process
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn engine thread")
}
