//! A cap on the connections one client address may hold open at once.
//!
//! Every open connection costs a file descriptor and buffers, so without a cap one address
//! could open thousands and starve everyone else (the systemd unit's `LimitNOFILE` bounds
//! the process, not a client). actix calls `on_connect` once per accepted connection: it
//! counts the connection against its peer address and leaves a `Slot` in the connection's
//! data, which actix drops when the connection closes, giving the slot back. A connection
//! over the cap is shut down at once, before a byte of it is read, and refusals are logged
//! at most once every `LOG_EVERY_MS`, with how many there were in between.
//!
//! Addresses in `trusted_proxies` are exempt: a reverse proxy carries many clients. IPv6
//! peers are counted by network (`client_addr::group`, `ipv6_client_prefix`).

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;

use crate::clock::now_ms;
use crate::server::client_addr::Cidr;

const LOG_EVERY_MS: i64 = 10_000;

/// The open connections per client address.
pub struct ConnectionCap {
    max: usize,
    exempt: Vec<Cidr>,
    v6_prefix: u8,
    open: Mutex<HashMap<IpAddr, usize>>,
    last_log_ms: AtomicI64,
    unlogged: AtomicU64,
}

/// One counted connection; dropping it (the connection closed) frees its place.
pub struct Slot {
    ip: IpAddr,
    cap: Arc<ConnectionCap>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionCap {
    /// `max` connections per address (0: no cap); `exempt` addresses are not counted; IPv6
    /// addresses count by their first `v6_prefix` bits.
    pub fn new(max: usize, exempt: Vec<Cidr>, v6_prefix: u8) -> Arc<ConnectionCap> {
        Arc::new(ConnectionCap {
            max,
            exempt,
            v6_prefix,
            open: Mutex::new(HashMap::new()),
            last_log_ms: AtomicI64::new(0),
            unlogged: AtomicU64::new(0),
        })
    }

    /// Takes a place for a connection from `ip`, or `None` when it already holds `max`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            cap: self.clone(),
        })
    }

    /// actix's `on_connect` hook: counts the connection, or shuts it down when over the cap
    /// (then false).
    pub fn on_connect(self: &Arc<Self>, conn: &dyn Any, data: &mut Extensions) -> bool {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return true;
        };
        let Ok(peer) = stream.peer_addr() else {
            return true;
        };
        let ip = crate::server::client_addr::canonical(peer.ip());
        if self.max == 0 || self.exempt.iter().any(|c| c.contains(ip)) {
            return true;
        }
        let ip = crate::server::client_addr::group(ip, self.v6_prefix);
        match self.acquire(ip) {
            Some(slot) => {
                data.insert(slot);
                true
            }
            None => {
                // Both directions: the client reads an immediate end of stream, and actix
                // reads nothing from it, so the connection is gone after one poll.
                let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Both);
                self.refused(ip);
                false
            }
        }
    }

    fn refused(&self, ip: IpAddr) {
        let count = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now - last >= LOG_EVERY_MS
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unlogged.fetch_sub(count, Ordering::Relaxed);
            tracing::warn!(
                peer = %ip,
                refused = count,
                max = self.max,
                "too many connections from one address: refused (max_connections_per_client; logged at most every 10 s)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_frees_its_place() {
        let cap = ConnectionCap::new(2, Vec::new(), 64);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = cap.acquire(ip).unwrap();
        let _b = cap.acquire(ip).unwrap();
        assert!(cap.acquire(ip).is_none(), "a third from the same address");
        assert!(
            cap.acquire(other).is_some(),
            "another address is not affected"
        );
        drop(a);
        assert!(cap.acquire(ip).is_some());
    }
}
