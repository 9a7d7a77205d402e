//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, so one
//! unlucky publish waits for a whole checkpoint. The writer connection has it turned off
//! (`wal_autocheckpoint = 0`); this thread runs a PASSIVE checkpoint on its own connection
//! every `INTERVAL`, which copies what it can without blocking the writer or readers. Once
//! readers let go, the writer starts the WAL over from the top, and `journal_size_limit`
//! (in `connection.rs`) trims the file back, so it stays small.

use std::path::Path;
use std::time::Duration;

use super::connection;
use crate::lifecycle::Shutdown;
use crate::store::Result;

/// Twice a second: often enough that the WAL never grows far past `journal_size_limit`
/// under a sustained publish rate, and a PASSIVE checkpoint with nothing to copy is nearly
/// free.
const INTERVAL: Duration = Duration::from_millis(500);

/// Stops the thread when the store is dropped: the store outlives the engine (the recorder
/// writes while the engine stops), so its threads end with it, not with the process's token.
pub struct Checkpointer {
    stop: Shutdown,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer> {
        let conn = connection::open_plain(path)?;
        let stop = Shutdown::default();
        let token = stop.clone();
        std::thread::Builder::new()
            .name("herald-checkpoint".into())
            .spawn(move || {
                // A failed or partial checkpoint is harmless (the WAL just stays longer,
                // every commit in it is still durable), so it is logged at debug only.
                while !token.sleep(INTERVAL) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "passive checkpoint");
                    }
                }
            })
            .map_err(|e| crate::store::StoreError::Open(format!("checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
