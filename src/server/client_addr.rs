//! The address a request comes from, for throttles and logs.
//!
//! Behind a reverse proxy every connection comes from the proxy, so the client is named by
//! `X-Forwarded-For` instead. That header is whatever the sender wrote, so it is believed
//! only from the proxies listed in `trusted_proxies`: from the right, each hop that is a
//! trusted proxy vouches for the one before it, and the first untrusted hop is the client.
//!
//! An IPv6 client is counted by its network, not its address: a host routed a /64 holds
//! 2^64 addresses, so counting each would give it as many connection caps, throttles and
//! body-budget shares. `group` masks an IPv6 address to `ipv6_client_prefix` bits (64 by
//! default); IPv4 addresses are counted one by one.

use std::net::IpAddr;

pub use crate::domain::address::{canonical, Cidr};

/// The client's address: the peer, or — when the peer is a trusted proxy — the last
/// untrusted address of `X-Forwarded-For` (all its values, in order).
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = forwarded_for
        .flat_map(|v| v.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>().ok().map(canonical))
        .collect::<Option<_>>()
        // A malformed chain names nobody: the proxy is the best we know.
        .unwrap_or_default();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    Some(client)
}

/// The client `ip` is counted as: an IPv6 address masked to its first `v6_prefix` bits (the
/// network a host is routed), an IPv4 address as it is.
pub fn group(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// The client a request is counted as by the throttles and the body budget: its address
/// (`of_request`), grouped (`group`).
pub fn client_key(req: &actix_web::HttpRequest, config: &crate::config::Config) -> Option<IpAddr> {
    of_request(req, &config.trusted_proxies).map(|ip| group(ip, config.ipv6_client_prefix))
}

/// `client_ip` for an actix request.
pub fn of_request(req: &actix_web::HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_ip(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("127.0.0.1")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("proxy.local").is_err());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_network() {
        let a = group(ip("2001:db8:1:2:aaaa::1"), 64);
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_eq!(group(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64), a);
        assert_ne!(group(ip("2001:db8:1:3::1"), 64), a, "another /64");
        assert_eq!(group(ip("2001:db8:1:3::1"), 48), ip("2001:db8:1::"));
        assert_eq!(group(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(group(ip("2001:db8::1"), 0), ip("::"));
        // IPv4, also when mapped into IPv6, is one client per address.
        assert_eq!(group(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(group(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(group(ip("::1"), 64), ip("::"));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = |v: &'static str| std::iter::once(v);
        // Untrusted peer: its header is ignored.
        assert_eq!(
            client_ip(Some(ip("198.51.100.9")), xff("203.0.113.1"), &trusted),
            Some(ip("198.51.100.9"))
        );
        // Trusted proxy: the last untrusted hop, not what the client prepended.
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                xff("1.1.1.1, 203.0.113.1, 10.0.0.3"),
                &trusted
            ),
            Some(ip("203.0.113.1"))
        );
        // No header, or a malformed one: the proxy itself.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), std::iter::empty(), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), xff("garbage"), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), xff("203.0.113.1"), &[]),
            Some(ip("10.0.0.2"))
        );
    }
}
