//! How Herald's long-lived threads start, stop and fail.
//!
//! One `Shutdown` token reaches every thread (mini-redis's pattern): SIGTERM sets it, the
//! dispatcher stops claiming, sleepers wake up, and `run` waits for in-flight requests
//! within a bound. A thread the process cannot live without (the writer, the dispatcher,
//! the recorder) holds a `Critical` guard: if that thread panics, the guard logs why and
//! ends the process with a non-zero status, so a supervisor (the systemd unit restarts on
//! failure) starts a healthy one, instead of a zombie answering 202 for events it would
//! never deliver. Nothing is lost by exiting: everything acknowledged is in the database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Exit status when a critical thread died (EX_SOFTWARE).
pub const CRITICAL_EXIT: i32 = 70;

/// Exit status after the database failed to fsync (EX_IOERR).
pub const FSYNC_EXIT: i32 = 74;

/// How long a fail-stopped process stays up answering 503 before it exits: long enough for
/// a load balancer's health check and the log to see why, short enough that nothing else
/// happens meanwhile.
const FAIL_STOP_GRACE: Duration = Duration::from_millis(500);

/// Ends the process soon with `FSYNC_EXIT`, once (PostgreSQL's `data_sync_retry = off`).
/// After a failed fsync the kernel may have dropped dirty pages that SQLite believes
/// written, so no later commit can be trusted; the caller has already stopped every write
/// (they answer 503 meanwhile). A supervisor restarts Herald, and SQLite's recovery reads
/// what the WAL really holds.
pub fn fail_stop(why: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::error!(
            why,
            "fail-stop: refusing every write and exiting so the service can be restarted"
        );
        eprintln!("herald: {why}; exiting (status {FSYNC_EXIT}) so the service restarts");
        let spawned = std::thread::Builder::new()
            .name("herald-fail-stop".into())
            .spawn(|| {
                std::thread::sleep(FAIL_STOP_GRACE);
                std::process::exit(FSYNC_EXIT);
            });
        if spawned.is_err() {
            std::process::exit(FSYNC_EXIT);
        }
    });
}

/// Ends the process if its thread unwinds past it.
pub struct Critical {
    name: &'static str,
}

impl Critical {
    pub fn new(name: &'static str) -> Critical {
        Critical { name }
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                thread = self.name,
                "a critical thread panicked; exiting so the service can be restarted"
            );
            eprintln!("herald: the {} thread panicked; exiting", self.name);
            std::process::exit(CRITICAL_EXIT);
        }
    }
}

/// The one shutdown signal: cheap to clone, set once, seen by every thread.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    set: AtomicBool,
    /// What to run at the trigger: how a thread that waits on something of its own (the
    /// board's condition variable, the dispatcher's channel) hears of it.
    hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    wake: Condvar,
}

impl Shutdown {
    /// Sets the token, wakes every sleeper, and runs the hooks (once).
    pub fn trigger(&self) {
        let hooks = {
            let mut hooks = self.inner.hooks.lock().unwrap_or_else(|e| e.into_inner());
            self.inner.set.store(true, Ordering::SeqCst);
            std::mem::take(&mut *hooks)
        };
        self.inner.wake.notify_all();
        for hook in hooks {
            hook();
        }
    }

    /// Runs `hook` at the trigger (at once if it came already).
    pub fn on_trigger(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = self.inner.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_set() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }

    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` or until shutdown, whichever comes first; true if shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        let guard = self.inner.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_set() {
            return true;
        }
        let _ = self
            .inner
            .wake
            .wait_timeout_while(guard, d, |_| !self.is_set());
        self.is_set()
    }
}

/// A count of threads at work (workers in a request), that shutdown can wait to reach zero.
#[derive(Default)]
pub struct Tally {
    busy: Mutex<usize>,
    idle: Condvar,
}

/// One thread at work, until dropped.
pub struct AtWork<'a>(&'a Tally);

impl Tally {
    pub fn enter(&self) -> AtWork<'_> {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        AtWork(self)
    }

    /// Waits until none is at work, or `bound` has passed; how many still are.
    pub fn wait_idle(&self, bound: Duration) -> usize {
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let (busy, _) = self
            .idle
            .wait_timeout_while(busy, bound, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *busy
    }
}

impl Drop for AtWork<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|e| e.into_inner());
        *busy -= 1;
        if *busy == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Critical, Shutdown, Tally, CRITICAL_EXIT};
    use std::time::{Duration, Instant};

    /// Runs itself as a child process in which a critical thread panics: the child must
    /// end with status 70 at once, not linger as a zombie that still answers requests.
    #[test]
    fn a_panicking_critical_thread_ends_the_process() {
        const NAME: &str = "lifecycle::tests::a_panicking_critical_thread_ends_the_process";
        if std::env::var_os("HERALD_CRITICAL_CHILD").is_some() {
            let t = std::thread::spawn(|| {
                let _critical = Critical::new("test");
                panic!("a bug in a critical thread");
            });
            let _ = t.join();
            std::thread::sleep(Duration::from_secs(10));
            std::process::exit(0); // only if the guard did nothing
        }
        let started = Instant::now();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1"])
            .env("HERALD_CRITICAL_CHILD", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(CRITICAL_EXIT));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "it exited at once"
        );
    }

    #[test]
    fn a_sleeper_wakes_at_shutdown_not_at_its_timeout() {
        let shutdown = Shutdown::default();
        let sleeper = shutdown.clone();
        let started = Instant::now();
        let t = std::thread::spawn(move || sleeper.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        shutdown.trigger();
        assert!(t.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            shutdown.sleep(Duration::from_secs(30)),
            "already set: no wait"
        );
    }

    #[test]
    fn hooks_run_once_at_the_trigger_or_at_once_after_it() {
        let shutdown = Shutdown::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let early = tx.clone();
        shutdown.on_trigger(move || early.send("before").unwrap());
        assert!(rx.try_recv().is_err(), "not yet");
        shutdown.trigger();
        shutdown.trigger();
        shutdown.on_trigger(move || tx.send("after").unwrap());
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["before", "after"]);
    }

    #[test]
    fn a_tally_is_waited_for_until_idle_or_the_bound() {
        let tally = std::sync::Arc::new(Tally::default());
        let worker = tally.clone();
        let (started, go) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _at_work = worker.enter();
            started.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        });
        go.recv().unwrap();
        assert_eq!(
            tally.wait_idle(Duration::from_millis(1)),
            1,
            "still at work"
        );
        assert_eq!(tally.wait_idle(Duration::from_secs(5)), 0);
        t.join().unwrap();
    }
}
