//! No connection may sit between requests, or in a half-sent request head, for long.
//!
//! actix bounds the headers of a connection's *first* request (`client_request_timeout`)
//! and a keep-alive gap in which no byte arrives (`keep_alive`), but once the first byte of
//! a later request arrives neither timer runs: after one `GET /healthz`, a client that
//! sends `G` and nothing more held its connection (a file descriptor, a buffer) for as long
//! as it liked, and a few hundred such connections exhausted the process's descriptors.
//!
//! So every connection has a watchdog (`on_connect`, one small local task per connection).
//! A connection is *idle* from when it is accepted, and from when a handler has answered,
//! until the next request's headers are in and its handler starts (`busy`, around every
//! handler). A connection idle for `IDLE_TIMEOUT` is shut down, whatever it was doing:
//! waiting between requests, sending a head, or reading the last answer too slowly. Time
//! spent in a handler is bounded elsewhere (the body deadline, `request_deadline`, and
//! Herald's own timeouts). Closings are logged at most once every `LOG_EVERY_MS`, with how
//! many there were in between.
//!
//! The watchdog holds the connection's raw descriptor, not the stream (actix owns that): it
//! runs on the connection's worker thread, and before shutting the socket down it checks
//! that the connection is still open (`Watch` is dropped with the connection's data) and
//! that the descriptor still names the same two endpoints, so a descriptor number reused
//! by a later connection is never touched.

use std::any::Any;
use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::Extensions;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::server::request_deadline::HEADERS_TIMEOUT;

/// How long actix keeps an idle keep-alive connection in which no byte arrives.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The longest a connection may be idle: the keep-alive wait plus the time for a head.
pub const IDLE_TIMEOUT: Duration =
    Duration::from_secs(KEEP_ALIVE.as_secs() + HEADERS_TIMEOUT.as_secs());
const LOG_EVERY_MS: i64 = 10_000;

struct State {
    /// Handlers running for this connection (pipelined requests are served one by one).
    busy: Cell<u32>,
    idle_since: Cell<Instant>,
    closed: Cell<bool>,
    wake: Notify,
}

/// Left in the connection's data: dropped when actix closes the connection.
pub struct Watch(Rc<State>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.wake.notify_one();
    }
}

/// One handler running; dropping it (the handler answered) makes the connection idle again.
pub struct Busy(Rc<State>);

impl Drop for Busy {
    fn drop(&mut self) {
        let busy = self.0.busy.get().saturating_sub(1);
        self.0.busy.set(busy);
        if busy == 0 {
            self.0.idle_since.set(Instant::now());
            self.0.wake.notify_one();
        }
    }
}

/// Marks the request's connection busy until the returned guard is dropped (`None` for a
/// connection without a watchdog).
pub fn busy(req: &actix_web::HttpRequest) -> Option<Busy> {
    let state = &req.conn_data::<Watch>()?.0;
    state.busy.set(state.busy.get() + 1);
    Some(Busy(state.clone()))
}

/// actix's `on_connect` hook: starts the connection's watchdog.
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let state = Rc::new(State {
        busy: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        closed: Cell::new(false),
        wake: Notify::new(),
    });
    actix_web::rt::spawn(watchdog(state.clone(), stream.as_raw_fd(), peer, local));
    data.insert(Watch(state));
}

async fn watchdog(state: Rc<State>, fd: RawFd, peer: SocketAddr, local: SocketAddr) {
    loop {
        if state.closed.get() {
            return;
        }
        if state.busy.get() > 0 {
            state.wake.notified().await;
            continue;
        }
        let deadline = state.idle_since.get() + IDLE_TIMEOUT;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.wake.notified() => continue,
        }
        let still_idle =
            state.busy.get() == 0 && state.idle_since.get() + IDLE_TIMEOUT <= Instant::now();
        if !state.closed.get() && still_idle {
            shut_down(fd, peer, local);
            return;
        }
    }
}

/// Shuts the socket down (both directions: actix reads the end of stream and drops the
/// connection) if `fd` is still the connection between `peer` and `local`.
fn shut_down(fd: RawFd, peer: SocketAddr, local: SocketAddr) {
    // SAFETY: the borrow lives only for these calls; should `fd` have been closed meanwhile
    // they fail (EBADF), and should it name another socket now the address check stops.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&fd);
    let same = |a: std::io::Result<socket2::SockAddr>, b: SocketAddr| {
        a.ok().and_then(|a| a.as_socket()) == Some(b)
    };
    if same(socket.peer_addr(), peer) && same(socket.local_addr(), local) {
        let _ = socket.shutdown(Shutdown::Both);
        closed_idle(peer);
    }
}

static LAST_LOG_MS: AtomicI64 = AtomicI64::new(0);
static UNLOGGED: AtomicU64 = AtomicU64::new(0);

fn closed_idle(peer: SocketAddr) {
    let count = UNLOGGED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_ms();
    let last = LAST_LOG_MS.load(Ordering::Relaxed);
    if now - last >= LOG_EVERY_MS
        && LAST_LOG_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        UNLOGGED.fetch_sub(count, Ordering::Relaxed);
        tracing::info!(
            peer = %peer.ip(),
            closed = count,
            "connections idle or sending a request head for {} s: closed (logged at most every 10 s)",
            IDLE_TIMEOUT.as_secs()
        );
    }
}
