//! Address rules: which addresses an endpoint may never reach, and networks as the
//! configuration lists them.
//!
//! Endpoint URLs come from users, and Herald runs inside someone's network. Unless
//! `allow_private_targets` is set, a delivery must not reach loopback, private, link-local
//! (including the 169.254.169.254 cloud metadata service), CGNAT, multicast or reserved
//! addresses. The rules are pure and applied twice: on the URL's literal host when an
//! endpoint is created (`EndpointUrl::parse`, via `check_host`), and by the engine's
//! resolver on every address a name resolves to at connect time (`engine::http`, via
//! `is_forbidden`), because a DNS answer can change after create.
//!
//! `Cidr` is an address or a network (`trusted_proxies`, `throttle_exempt`); the HTTP
//! server's guards match clients against it (`server::client_addr`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when a delivery must not connect to `ip`.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

// A deny list, not an allow list of "global" ranges: std's `is_global` is unstable, and
// every range below is one a request from inside a network could reach something with.
fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                               // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))   // benchmarking
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    // ::ffff:a.b.c.d is connected to as the IPv4 address on a dual-stack socket, so it
    // must be judged by the IPv4 rules or ::ffff:127.0.0.1 would reach loopback.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address that must pass the
    // v4 rules.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return is_forbidden_v4(v4_from(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return is_forbidden_v4(v4_from(seg[1], seg[2]));
    }
    seg[0..6] == [0, 0, 0, 0, 0, 0] // ::/96, incl. ::1, :: and IPv4-compatible ::a.b.c.d
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // deprecated site-local
        || seg[0] == 0x2001 && seg[1] == 0x0db8 // documentation
}

fn v4_from(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::from(((high as u32) << 16) | low as u32)
}

/// The create-time check of a URL host (already stripped of `[]`): literal addresses and
/// names that always mean this machine or the metadata service. Other names are checked
/// when the worker resolves them.
pub fn check_host(host: &str) -> Result<(), String> {
    // A zone id (fe80::1%eth0) picks an interface on this machine: there is no public
    // address that needs one.
    if host.contains('%') {
        return Err("addresses with a zone id are not allowed".into());
    }
    // "localhost." and "127.0.0.1." resolve like their undotted forms; strip the root dot so
    // neither spelling slips past the comparisons below.
    let host = host.strip_suffix('.').unwrap_or(host);
    let literal = host
        .parse::<IpAddr>()
        .ok()
        .or_else(|| parse_inet_aton(host).map(IpAddr::V4));
    if let Some(ip) = literal {
        return if is_forbidden(ip) {
            Err(format!(
                "{ip} is a loopback, private, link-local or reserved address"
            ))
        } else {
            Ok(())
        };
    }
    // Names are only a first line of defence (a public name can point at 10.0.0.1); these
    // are the ones that are local by definition, refused early so the user hears why.
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let local = name == "localhost"
        || name.ends_with(".localhost")
        || name == "metadata.google.internal"
        || name.ends_with(".internal")
        || name.ends_with(".local");
    if local {
        return Err(format!("{host} names a local or internal host"));
    }
    Ok(())
}

/// Reads the IPv4 spellings that resolvers accept besides dotted quads (`2130706433`,
/// `0x7f.1`, `0177.0.0.1`, `127.1`), so they cannot slip past the create-time check.
fn parse_inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host
        .split('.')
        .map(|p| {
            if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(&p[1..], 8).ok()
            } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()?;
    // inet_aton's rule: the last part fills all the bytes the earlier parts left, so
    // "127.1" is 127.0.0.1 and a lone number is the whole 32-bit address.
    let (last, init) = parts.split_last()?;
    if init.len() > 3 || init.iter().any(|p| *p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - init.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let high = init.iter().fold(0u64, |acc, p| (acc << 8) | p) << last_bits;
    Some(Ipv4Addr::from((high | last) as u32))
}

/// An address or a network (`10.0.0.0/8`, `::1`), as the configuration lists them
/// (`trusted_proxies`, `throttle_exempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(v: &str) -> Result<Cidr, String> {
        let bad = || format!("`{v}` is not an IP address or a network like 10.0.0.0/8");
        let (addr, prefix) = match v.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (v, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u32::from(net) as u128,
                u32::from(ip) as u128,
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (a >> shift) == (b >> shift)
}

/// `::ffff:192.0.2.1` is the IPv4 client it wraps.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(is_forbidden(a.parse().unwrap()), "{a} should be forbidden");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "2002:808:808::",
        ] {
            assert!(!is_forbidden(a.parse().unwrap()), "{a} should be allowed");
        }
    }

    #[test]
    fn host_names() {
        assert!(check_host("localhost").is_err());
        assert!(check_host("api.localhost").is_err());
        assert!(check_host("metadata.google.internal").is_err());
        assert!(check_host("example.com").is_ok());
        assert!(check_host("127.0.0.1").is_err());
        for odd in [
            "2130706433",
            "0x7f.0.0.1",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "127.0.0.1.",
            "0",
            "fe80::1%eth0",
            "::127.0.0.1",
        ] {
            assert!(check_host(odd).is_err(), "{odd}");
        }
        assert_eq!(parse_inet_aton("8.8.8.8"), Some(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(parse_inet_aton("cafe.be"), None);
        assert!(check_host("cafe.be").is_ok());
        assert!(check_host("1.1.1.1").is_ok());
    }
}
