//! The delivery engine: from the outbox table to the receivers' doors.
//!
//! The path of a delivery:
//! 1. A publish commits an event and its pending delivery rows, then calls
//!    `EngineHandle::wake`, so the dispatcher looks at the outbox at once — delivery latency
//!    does not depend on a polling interval.
//! 2. The dispatcher (`dispatcher.rs`) claims due deliveries under a lease, respecting a
//!    per-endpoint in-flight cap so one slow endpoint cannot hold every worker, and hands
//!    them to the worker pool. It still wakes on its own for retries that come due.
//! 3. A worker (`worker.rs`) signs and sends one request (`http.rs`, with the SSRF guard in
//!    the resolver), decides the next step (`retry.rs`), and passes the outcome on.
//! 4. The recorder (`worker.rs`) writes outcomes in batches through the store's writer,
//!    one transaction for many attempts.
//! 5. The pruner (`pruner.rs`) trims history older than `retention` in small batches.
//!
//! Crash safety: a delivery is only final once its attempt is recorded. Anything claimed but
//! not recorded keeps its lease until it expires, or until the next start releases it, and
//! is sent again with the same `webhook-id` (at-least-once).

pub mod dispatcher;
pub mod http;
mod pruner;
pub mod retry;
pub mod ssrf;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{outbox, Store};

/// Messages to the dispatcher.
pub enum Signal {
    /// New work may be due (a publish, a retry, a resumed endpoint).
    Wake,
    /// A worker finished a request for this endpoint: one in-flight slot is free. `gone`:
    /// the endpoint answered 410, so what is queued for it is dropped instead of sent.
    Done {
        endpoint: i64,
        gone: bool,
    },
    /// The recorder has written a 410 of this endpoint (so the store has it disabled).
    GoneRecorded(i64),
    Stop,
}

/// Counters for /metrics.
#[derive(Default)]
pub struct EngineStats {
    pub attempts: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed_attempts: AtomicU64,
}

/// What the API holds: a way to wake the dispatcher and to ask whether it is alive.
#[derive(Clone)]
pub struct EngineHandle {
    signals: mpsc::Sender<Signal>,
    heartbeat: Arc<AtomicI64>,
    pub stats: Arc<EngineStats>,
}

impl EngineHandle {
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
    stopping: Arc<AtomicBool>,
    busy_workers: Arc<AtomicUsize>,
    recorder: JoinHandle<()>,
    threads: Vec<JoinHandle<()>>,
    store: Store,
}

impl Engine {
    pub fn start(store: Store, config: Arc<Config>) -> Result<Engine, crate::store::StoreError> {
        // One Herald process owns the outbox file: whatever was leased before this start
        // belonged to a process that is gone, so it is due again now.
        let released = store.write_blocking(outbox::release_leases)?;
        if released > 0 {
            tracing::warn!(
                released,
                "re-queued deliveries left in flight by the previous run"
            );
        }
        let (signals, signal_rx) = mpsc::channel();
        let (work_tx, work_rx) = mpsc::channel();
        let (record_tx, record_rx) = mpsc::channel();
        let heartbeat = Arc::new(AtomicI64::new(now_ms()));
        let stats = Arc::new(EngineStats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let busy_workers = Arc::new(AtomicUsize::new(0));
        let handle = EngineHandle {
            signals: signals.clone(),
            heartbeat: heartbeat.clone(),
            stats: stats.clone(),
        };
        let mut threads = Vec::new();
        let work_rx = Arc::new(Mutex::new(work_rx));
        let agent = http::agent(&config);
        for n in 0..config.workers {
            let ctx = worker::WorkerContext {
                work: work_rx.clone(),
                agent: agent.clone(),
                config: config.clone(),
                results: record_tx.clone(),
                signals: signals.clone(),
                stopping: stopping.clone(),
                busy: busy_workers.clone(),
                stats: stats.clone(),
            };
            threads.push(spawn(&format!("herald-worker-{n}"), move || {
                worker::run(ctx)
            }));
        }
        drop(record_tx);
        let recorder_store = store.clone();
        let disable_after = config.disable_after;
        let recorder_signals = signals.clone();
        let recorder = spawn("herald-recorder", move || {
            worker::record(record_rx, recorder_store, disable_after, recorder_signals)
        });
        let mut dispatcher = dispatcher::Dispatcher::new(store.clone(), config.clone(), work_tx);
        threads.push(spawn("herald-dispatcher", move || {
            dispatcher.run(signal_rx, &heartbeat)
        }));
        let pruner_store = store.clone();
        let pruner_stop = stopping.clone();
        let retention = config.retention;
        threads.push(spawn("herald-pruner", move || {
            pruner::run(pruner_store, retention, pruner_stop)
        }));
        Ok(Engine {
            handle,
            stopping,
            busy_workers,
            recorder,
            threads,
            store,
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops claiming, lets in-flight requests finish for up to `bound`, then gives every
    /// lease back so the next start sends what did not finish.
    pub fn shutdown(self, bound: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.handle.signals.send(Signal::Stop);
        let deadline = Instant::now() + bound;
        while self.busy_workers.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The recorder ends once every worker has gone (the dispatcher's exit closed their
        // queue) and it has written what they passed on. Waiting for that, not for a guessed
        // moment, makes a finished request a recorded one, so it is not sent again at the
        // next start. A worker still in a request past the bound keeps the recorder alive;
        // its delivery is released below and sent again.
        if self.busy_workers.load(Ordering::SeqCst) == 0 {
            let recorded_by = Instant::now() + Duration::from_secs(2);
            while !self.recorder.is_finished() && Instant::now() < recorded_by {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let unfinished = self.busy_workers.load(Ordering::SeqCst);
        match self.store.write_blocking(outbox::release_leases) {
            Ok(n) => tracing::info!(released = n, unfinished, "engine stopped"),
            Err(e) => tracing::error!(error = %e, "could not release leases at shutdown"),
        }
        drop(self.threads); // threads stuck in a request end with the process
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn engine thread")
}
