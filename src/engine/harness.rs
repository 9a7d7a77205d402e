//! An engine a test can step (zero-to-production's `try_execute_task`): the same
//! dispatcher, board, worker and recorder code as the threads run, driven one round at a
//! time on the caller's thread, with a clock the test moves by hand.
//!
//! `step` is one claim round; `send_ready` sends what the board holds (each endpoint's
//! deliveries one after another, as a worker would); `record` writes the outcomes. Nothing
//! happens between calls, so a test can say exactly what was claimed, sent and written.

use std::sync::{mpsc, Arc};

use super::dispatcher::Dispatcher;
use super::recorder::Recorder;
use super::worker::{self, WorkerContext};
use super::{board::Board, Parts, Signal};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::lifecycle::Shutdown;
use crate::store::{AttemptRecord, Store, StoreError};

pub struct Harness {
    pub store: Store,
    pub board: Arc<Board>,
    pub clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    worker: WorkerContext,
    recorder: Recorder,
    signals: mpsc::Receiver<Signal>,
    /// Kept so workers' sends do not fail; the harness records through `record` instead.
    _results: mpsc::Receiver<AttemptRecord>,
    /// Never triggered: a test ends by dropping the harness.
    _shutdown: Shutdown,
}

impl Harness {
    pub fn new(
        store: Store,
        config: Config,
        clock: Arc<ManualClock>,
    ) -> Result<Harness, StoreError> {
        let shutdown = Shutdown::default();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        // The same wiring `Engine::start` uses, so a stepped test exercises the parts the
        // threads run rather than a copy that could drift from them.
        let parts = Parts::wire(store.clone(), Arc::new(config), dyn_clock, &shutdown)?;
        Ok(Harness {
            store,
            board: parts.board,
            clock,
            dispatcher: parts.dispatcher,
            worker: parts.worker,
            recorder: parts.recorder,
            signals: parts.signals,
            _results: parts.records,
            _shutdown: shutdown,
        })
    }

    /// One turn of the dispatcher's loop: lets go what waited for its rate limit, then one
    /// claim round; returns how many deliveries were claimed. The round scans the store
    /// in full first: a test writes to the store (publishes, clock moves, endpoint changes)
    /// without the signals the API and the threads send, and must see what a running
    /// engine would see after them.
    pub fn step(&mut self) -> Result<usize, StoreError> {
        self.board.release_due(self.clock.now_ms());
        self.dispatcher.rescan();
        self.dispatcher.step()
    }

    /// One turn as the running dispatcher takes it: it hears the signals the recorder and
    /// the workers sent since the last turn, then runs one round from its due-time index,
    /// with no full scan of the store beyond the ones it makes by itself (at its first
    /// round, and after a second of the wall clock). A test that publishes says so with
    /// `wake`, as the API does. Returns how many deliveries were claimed.
    pub fn round(&mut self) -> Result<usize, StoreError> {
        self.board.release_due(self.clock.now_ms());
        for signal in self.signals.try_iter() {
            self.dispatcher.hear(signal);
        }
        self.dispatcher.step()
    }

    /// What the API does after a publish (`EngineHandle::wake`), for `round`.
    pub fn wake(&mut self) {
        self.dispatcher.hear(Signal::Wake);
    }

    /// What the API does after a change the index cannot see in new rows (a retry, an
    /// endpoint resumed: `EngineHandle::rescan`), for `round`.
    pub fn rescan(&mut self) {
        self.dispatcher.rescan();
    }

    /// How many endpoints the dispatcher's due-time index lists.
    pub fn due_len(&self) -> usize {
        self.dispatcher.due_len()
    }

    /// Sends everything the board lets go now, and each endpoint's next delivery after it
    /// as a worker would; returns the outcomes, not yet recorded.
    pub fn send_ready(&mut self) -> Vec<AttemptRecord> {
        let mut records = Vec::new();
        while let Some(mut delivery) = self.board.try_next() {
            loop {
                let record = worker::attempt(&self.worker, &delivery);
                let finished = self.board.finish(
                    delivery.endpoint_id,
                    record.gone,
                    record.backoff_until,
                    self.clock.now_ms(),
                );
                // As the worker does: claims dropped behind a 410 go back at once, due again.
                if !finished.dropped.is_empty() {
                    let _ = self.worker.outbox.release(&finished.dropped);
                    self.worker
                        .due
                        .touch(delivery.endpoint_id, self.clock.now_ms());
                }
                records.push(record);
                match finished.next {
                    Some(next) => delivery = next,
                    None => break,
                }
            }
        }
        records
    }

    /// Tells the board what the answers say about their endpoints' capacity, as a worker
    /// does after each request. Left to the tests about the adaptive limit, so the others
    /// can count claims without it moving under them.
    pub fn observe(&self, records: &[AttemptRecord]) {
        for record in records {
            worker::observe(&self.board, record);
        }
    }

    /// Writes outcomes as the recorder does (one transaction, after any the store refused
    /// before); false if the store refused them (they are held, and claiming stalls).
    pub fn record(&mut self, records: Vec<AttemptRecord>) -> bool {
        self.recorder.write(records)
    }

    /// How many outcomes the recorder holds unwritten.
    pub fn unwritten(&self) -> usize {
        self.recorder.unwritten()
    }

    /// A claim round, the requests, and their records; returns the records.
    pub fn run_once(&mut self) -> Result<Vec<AttemptRecord>, StoreError> {
        self.step()?;
        let records = self.send_ready();
        self.record(records.clone());
        Ok(records)
    }

    /// Signals the dispatcher would have received since the last call.
    pub fn signals(&self) -> Vec<Signal> {
        self.signals.try_iter().collect()
    }
}
