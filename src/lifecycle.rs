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
    lock: Mutex<()>,
    wake: Condvar,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.inner.set.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock();
        self.inner.wake.notify_all();
    }

    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` or until shutdown, whichever comes first; true if shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        let guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
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

#[cfg(test)]
mod tests {
    use super::{Critical, Shutdown, CRITICAL_EXIT};
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
}
