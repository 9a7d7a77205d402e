//! The TCP under every agent (`http::build`): ureq's own `TcpConnector` and `TcpTransport`
//! do what a general client needs; a delivery is one small request and one small answer on
//! a kept-alive connection, thousands of times a second, and the bench's profile (README:
//! Performance) showed what that costs with ureq's defaults. This connector keeps ureq's
//! protocol code (request writing, response parsing, the pool) and changes only the socket
//! underneath:
//!
//! - **Name resolution when a connection is opened, not per request.** ureq resolves the
//!   URL's host on every request, before it looks in its pool, and with a timeout set its
//!   resolver does so on a thread spawned for the purpose: one thread (and a DNS lookup for
//!   a name) per delivery even on a reused connection. Direct agents' resolvers defer
//!   (`http::GuardedResolver`), and this connector resolves, through the same SSRF guard,
//!   only when it opens a socket; a reused connection goes to the address that was vetted
//!   when it was opened. An IP literal is parsed, without a thread.
//! - **One write per request.** ureq writes the request head and the body separately; with
//!   `TCP_NODELAY` that is two segments (and two wake-ups at the receiver). Output is held
//!   back until the transport is asked to read (or half its buffer is full), so head and
//!   body leave in one `write`, written once into the buffer and not copied again.
//! - **Timeouts set when they change.** ureq sets `SO_RCVTIMEO`/`SO_SNDTIMEO` to the time
//!   left before every read and write, which changes every time under a total timeout: two
//!   or three `setsockopt` calls per request. Here a new value is set only when it differs
//!   from the one in force by more than `TIMEOUT_SLACK`; a deadline can be missed by that
//!   much at most, which no receiver can tell from its own clock.
//! - **A one-call liveness probe.** The pool probes a connection when it is put back and
//!   when it is taken (ureq: non-blocking on, a read, non-blocking off: three calls each);
//!   here one `recv(MSG_PEEK | MSG_DONTWAIT)`.
//! - **Smaller buffers.** ureq's are 128 KiB in and 128 KiB out, zeroed, per connection;
//!   `INPUT`/`OUTPUT` fit a webhook's request and answer in one call each and grow only for
//!   an answer whose head does not fit.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::ResolvedSocketAddrs;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, ShutdownHandle, Transport,
};
use ureq::Timeout;

use crate::domain::address;

/// What a connection reads into at first; it grows for an answer whose head does not fit.
pub const INPUT: usize = 16 * 1024;
/// What a request is assembled in: head and body of most webhooks in one `write`; a larger
/// body goes out in pieces of this size.
pub const OUTPUT: usize = 32 * 1024;
/// How far a socket timeout may be from the time left before it is set again.
const TIMEOUT_SLACK: Duration = Duration::from_millis(10);
/// Body space ureq needs beside the output buffer (its `MIN_TMP_SIZE`).
const MIN_TMP: usize = 10 * 1024;

/// The SSRF guard's rules for one agent, applied wherever that agent resolves a name: in
/// its resolver (a proxy's host) and in `GuardedTcp` (a target, when connecting).
#[derive(Debug)]
pub struct Guard {
    pub allow_private: bool,
    /// The proxy's host, whose addresses are allowed whatever they are.
    pub proxy_host: Option<String>,
}

impl Guard {
    /// The addresses of `uri`'s host that the guard allows; `HostNotFound` when none (the
    /// same error for a name that does not resolve, `http::HOST_REFUSED`).
    pub fn resolve(
        &self,
        uri: &Uri,
        lookup: impl FnOnce() -> Result<ResolvedSocketAddrs, ureq::Error>,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("?");
        let bare = host.trim_matches(['[', ']']);
        let resolved = match bare.parse::<IpAddr>() {
            // A literal needs no lookup (ureq's would spawn a thread for it).
            Ok(ip) => {
                let mut one = ResolvedSocketAddrs::from_fn(|_| SocketAddr::new(ip, 0));
                one.push(SocketAddr::new(ip, port_of(uri)));
                one
            }
            Err(_) => match lookup() {
                Ok(resolved) => resolved,
                Err(ureq::Error::Timeout(t)) => return Err(ureq::Error::Timeout(t)),
                Err(e) => {
                    tracing::info!(%host, error = %e, "an endpoint's host does not resolve");
                    return Err(ureq::Error::HostNotFound);
                }
            },
        };
        let is_proxy = self
            .proxy_host
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(bare));
        if self.allow_private || is_proxy {
            return Ok(resolved);
        }
        // Filter rather than refuse on the first bad address: a dual-stack name with one
        // private and one public address still delivers, to the public one only.
        let mut allowed = ResolvedSocketAddrs::from_fn(|_| SocketAddr::new([0; 4].into(), 0));
        for addr in resolved.iter() {
            if !address::is_forbidden(addr.ip()) {
                let _ = allowed.try_push(*addr);
            }
        }
        if allowed.is_empty() {
            tracing::warn!(
                %host,
                "an endpoint's host resolves only to loopback, private or reserved addresses: \
                 blocked by the SSRF guard (allow_private_targets / \
                 HERALD_ALLOW_PRIVATE_TARGETS=true allows them)"
            );
            return Err(ureq::Error::HostNotFound);
        }
        Ok(allowed)
    }
}

fn port_of(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        })
}

/// Opens TCP connections (module comment): resolves through the guard when ureq left the
/// addresses to it, connects, and hands back a `Tcp`.
#[derive(Debug)]
pub struct GuardedTcp {
    pub guard: Arc<Guard>,
}

impl<In: Transport> Connector<In> for GuardedTcp {
    type Out = Either<In, Tcp>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(transport) = chained {
            // A CONNECT tunnel already made the connection.
            return Ok(Some(Either::A(transport)));
        }
        let deadline = details
            .timeout
            .not_zero()
            .map(|after| Instant::now() + *after);
        let addrs = if details.addrs.is_empty() {
            // A direct agent's resolver deferred the lookup to here (module comment).
            let resolve = NextTimeout {
                reason: Timeout::Resolve,
                ..details.timeout
            };
            self.guard
                .resolve(details.uri, || lookup(details.uri, resolve))?
        } else {
            details.addrs.clone()
        };
        let stream = connect_any(&addrs, deadline, details.timeout.reason)?;
        stream.set_nodelay(true)?;
        let transport = Tcp::new(stream);
        let handle: Weak<dyn ShutdownHandle> = Arc::downgrade(&transport.stream) as _;
        (details.register_shutdown)(handle)?;
        Ok(Some(Either::B(transport)))
    }
}

/// A name's addresses, within the time left: on a thread, as ureq's resolver does, since
/// `getaddrinfo` takes no timeout. Only when a connection is opened.
fn lookup(uri: &Uri, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
    let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
    let name = format!("{}:{}", host, port_of(uri));
    let found = match timeout.not_zero() {
        None => name.to_socket_addrs(),
        Some(after) => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name("herald-resolve".into())
                .spawn(move || tx.send(name.to_socket_addrs()).ok())
                .map_err(ureq::Error::Io)?;
            match rx.recv_timeout(*after) {
                Ok(found) => found,
                Err(_) => return Err(ureq::Error::Timeout(timeout.reason)),
            }
        }
    }
    .map_err(|_| ureq::Error::HostNotFound)?;
    let mut addrs = ResolvedSocketAddrs::from_fn(|_| SocketAddr::new([0; 4].into(), 0));
    for addr in found {
        if addrs.try_push(addr).is_err() {
            break;
        }
    }
    match addrs.is_empty() {
        true => Err(ureq::Error::HostNotFound),
        false => Ok(addrs),
    }
}

/// The first of `addrs` that accepts, each given a share of the time left (as ureq does:
/// half of it to the first, a quarter to the next…); a refusal moves on at once.
fn connect_any(
    addrs: &ResolvedSocketAddrs,
    deadline: Option<Instant>,
    reason: Timeout,
) -> Result<TcpStream, ureq::Error> {
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let attempt = match deadline {
            None => TcpStream::connect(addr),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(reason));
                }
                let share = match addrs.len() - i {
                    1 => left,
                    _ => (left / 2).max(Duration::from_millis(10)),
                };
                TcpStream::connect_timeout(addr, share)
            }
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                last = Some(ureq::Error::Timeout(reason));
            }
            Err(e) => last = Some(ureq::Error::Io(e)),
        }
    }
    Err(last.unwrap_or(ureq::Error::ConnectionFailed))
}

/// One TCP connection with its buffers (module comment).
pub struct Tcp {
    /// Shared (weakly) with the agent's shutdown handle.
    stream: Arc<TcpStream>,
    buffers: Corked,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl std::fmt::Debug for Tcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tcp")
            .field("peer", &self.stream.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Tcp {
    fn new(stream: TcpStream) -> Tcp {
        Tcp {
            stream: Arc::new(stream),
            buffers: Corked::default(),
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Writes what is held back.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.buffers.pending == 0 {
            return Ok(());
        }
        let timeout = timeout.for_write();
        let set = set_when_changed(&mut self.write_timeout, timeout, |t| {
            self.stream.set_write_timeout(t)
        })?;
        let out = &self.buffers.output[..self.buffers.pending];
        let written = (&*self.stream).write_all(out);
        self.buffers.pending = 0;
        written.map_err(|e| io_error(e, set.reason))
    }
}

/// Sets a socket timeout to what is left unless the one in force is within
/// `TIMEOUT_SLACK` of it; an exhausted budget is the timeout error.
fn set_when_changed(
    current: &mut Option<Duration>,
    timeout: NextTimeout,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> Result<NextTimeout, ureq::Error> {
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    let wanted = timeout.not_zero().map(|t| *t);
    let close_enough = match (*current, wanted) {
        (None, None) => true,
        (Some(a), Some(b)) => a.abs_diff(b) <= TIMEOUT_SLACK,
        _ => false,
    };
    if !close_enough {
        set(wanted)?;
        *current = wanted;
    }
    Ok(timeout)
}

fn io_error(e: io::Error, reason: Timeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for Tcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Held back until the next read (the answer cannot come before the request is
        // out), unless the buffer is half full: ureq then gets room for the rest.
        self.buffers.pending += amount;
        if self.buffers.pending >= OUTPUT / 2 {
            self.flush(timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        let timeout = timeout.for_read();
        let set = set_when_changed(&mut self.read_timeout, timeout, |t| {
            self.stream.set_read_timeout(t)
        })?;
        let buf = self.buffers.input_append_buf();
        let read = loop {
            match (&*self.stream).read(buf) {
                // A signal (Linux does not restart socket reads that have a timeout).
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = read.map_err(|e| io_error(e, set.reason))?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Nothing may be waiting on an idle connection: bytes are garbage, EOF is a close.
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match socket2::SockRef::from(&*self.stream)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

/// Input and output buffers, allocated on first use; output written since the last flush
/// is `pending`, and ureq is handed the room after it.
#[derive(Default)]
struct Corked {
    input: Vec<u8>,
    /// Unconsumed input is `input[start..end]`.
    start: usize,
    end: usize,
    /// Whether the last consume used anything (ureq's "progress", see `can_use_input`).
    progress: bool,
    output: Vec<u8>,
    pending: usize,
}

impl Corked {
    fn allocate(&mut self) {
        if self.output.is_empty() {
            self.output = vec![0; OUTPUT];
        }
        if self.input.is_empty() {
            self.input = vec![0; INPUT];
        }
    }

    /// Free input room of at least `min` bytes, moving unconsumed input to the front and
    /// growing the buffer only when that is not enough.
    fn make_room(&mut self, min: usize) {
        self.allocate();
        if self.input.len() - self.end >= min {
            return;
        }
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.input.len() - self.end < min {
            let grown = (self.end + min).max(self.input.len() + INPUT);
            self.input.resize(grown, 0);
        }
    }
}

impl Buffers for Corked {
    fn output(&mut self) -> &mut [u8] {
        self.allocate();
        &mut self.output[self.pending..]
    }

    fn input(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.make_room(1);
        &mut self.input[self.end..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.end += amount;
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.start += amount;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.make_room(MIN_TMP);
        (
            &mut self.input[self.end..],
            &mut self.output[self.pending..],
        )
    }

    fn can_use_input(&self) -> bool {
        self.start < self.end && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unconsumed input survives making room, and room is made without growing when
    /// moving it to the front is enough.
    #[test]
    fn input_keeps_what_is_unconsumed() {
        let mut b = Corked::default();
        let room = b.input_append_buf();
        assert_eq!(room.len(), INPUT);
        room[..4].copy_from_slice(b"abcd");
        b.input_appended(4);
        b.input_consume(1);
        assert_eq!(b.input(), b"bcd");
        assert!(b.can_use_input());
        b.end = INPUT; // full
        b.input[INPUT - 1] = b'z';
        let room = b.input_append_buf().len();
        assert_eq!(room, 1, "moved down by the one consumed byte");
        assert_eq!(&b.input()[..3], b"bcd");
        assert_eq!(b.input().last(), Some(&b'z'));
        b.input_consume(b.end - b.start);
        assert_eq!(b.input(), b"");
        assert!(!b.can_use_input());
    }

    /// Held-back output is not handed out again.
    #[test]
    fn output_after_pending() {
        let mut b = Corked::default();
        assert_eq!(b.output().len(), OUTPUT);
        b.pending = 100;
        assert_eq!(b.output().len(), OUTPUT - 100);
        let (tmp, out) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP);
        assert_eq!(out.len(), OUTPUT - 100);
    }

    /// A timeout within the slack of the one in force sets nothing; an exhausted one is
    /// the timeout error.
    #[test]
    fn timeouts_are_set_when_they_change() {
        let at = |ms: u64| NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_millis(ms),
            reason: Timeout::Global,
            ..NextTimeout::default()
        };
        let mut current = None;
        let mut sets = 0;
        for ms in [30_000, 29_999, 29_995, 29_000] {
            set_when_changed(&mut current, at(ms), |_| {
                sets += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(sets, 2);
        assert_eq!(current, Some(Duration::from_millis(29_000)));
        assert!(matches!(
            set_when_changed(&mut current, at(0), |_| Ok(())),
            Err(ureq::Error::Timeout(Timeout::Global))
        ));
    }
}
