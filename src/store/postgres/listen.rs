//! `LISTEN herald_due`: a commit on any replica that makes work due (a publish, a retry, a
//! resumed endpoint) runs `pg_notify('herald_due', '')`, and PostgreSQL hands the
//! notification to every listening replica as the transaction commits. Each replica's
//! dispatcher is thereby woken at once, with no poll interval on the delivery path; its
//! own clock-driven wake-ups (next retry due, at most every second) stay as the fallback,
//! so a lost connection delays work by at most that second while this thread reconnects.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::{Target, WAKE_CHANNEL};
use crate::lifecycle::Shutdown;
use crate::store::Result;

/// How long one wait for notifications lasts before the thread looks at `shutdown`. The
/// postgres client's blocking wait cannot be interrupted by our token, so this bounds how
/// long shutdown waits for this thread.
const WAIT: Duration = Duration::from_millis(500);

/// Connects and listens on a thread of its own; returns once the first LISTEN is in place,
/// so a publish that follows the engine's start is never missed.
pub fn start(target: Target, wake: Box<dyn Fn() + Send>, shutdown: Shutdown) -> Result<()> {
    let client = listen(&target)?;
    std::thread::Builder::new()
        .name("herald-listen".into())
        .spawn(move || run(target, client, wake, shutdown))
        .map_err(|e| crate::store::StoreError::Backend(format!("cannot start a thread: {e}")))?;
    Ok(())
}

/// A connection of its own, outside the pool: LISTEN belongs to a session, and a pooled
/// connection would be handed to other work (and its notifications lost) between waits.
fn listen(target: &Target) -> Result<postgres::Client> {
    let mut client = target.connect()?;
    client.batch_execute(&format!("LISTEN {WAKE_CHANNEL}"))?;
    Ok(client)
}

fn run(target: Target, mut client: postgres::Client, wake: Box<dyn Fn() + Send>, stop: Shutdown) {
    while !stop.is_set() {
        let result = {
            let mut notifications = client.notifications();
            let first = notifications.timeout_iter(WAIT).next();
            match first {
                // Whatever else arrived with it is drained, so one burst is one wake-up.
                Ok(Some(_)) => notifications.iter().count().map(|_| true),
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if let Ok(true) = result {
            wake();
        }
        if result.is_err() || client.is_closed() {
            tracing::warn!("lost the LISTEN connection; reconnecting");
            client = loop {
                // Once a second: the dispatcher's own clock covers the gap, so there is no
                // hurry that would justify hammering a database that is down.
                if stop.sleep(Duration::from_secs(1)) {
                    return;
                }
                match listen(&target) {
                    Ok(c) => break c,
                    Err(e) => tracing::warn!(error = %e, "cannot listen for wake-ups yet"),
                }
            };
            // Work may have come due while the connection was down.
            wake();
        }
    }
}
