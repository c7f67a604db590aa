//! Which IP addresses a node, a VIP, a peer or a server may have: one rule for every key.

use std::net::{IpAddr, Ipv4Addr};

use super::ValueError;

/// Why `addr` can be no node's, VIP's or server's address, if it cannot.
///
/// Besides unspecified, loopback and multicast: IPv4 "this network" (0/8), link-local
/// (169.254/16, fe80::/10: not routed, and meaningless without an interface), reserved
/// 240/4 with the limited broadcast 255.255.255.255 in it, and IPv4 written as IPv6
/// (`::ffff:a.b.c.d`, `::a.b.c.d`), which would slip an IPv4 address past the family checks.
fn unusable(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("an unspecified (0.0.0.0/8) address")
            } else if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4 == Ipv4Addr::BROADCAST {
                Some("the limited broadcast address")
            } else if a >= 240 {
                Some("a reserved (240.0.0.0/4) address")
            } else if a == 169 && b == 254 {
                Some("a link-local (169.254.0.0/16) address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if v6.segments()[0] & 0xffc0 == 0xfe80 {
                Some("a link-local (fe80::/10) address")
            } else if v6.to_ipv4().is_some() {
                Some("an IPv4 address written as IPv6 (::ffff:a.b.c.d or ::a.b.c.d)")
            } else {
                None
            }
        }
    }
}

/// `addr` if it can be the address of a node, a VIP, a router or a server (`what`).
pub fn usable(addr: IpAddr, what: &str) -> Result<IpAddr, ValueError> {
    match unusable(addr) {
        None => Ok(addr),
        Some(why) => Err(ValueError::new(format!(
            "{addr} cannot be a {what}: it is {why}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_special_range() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "224.0.0.18",
            "255.255.255.255",
            "240.0.0.1",
            "169.254.1.1",
            "::",
            "::1",
            "ff02::12",
            "fe80::1",
            "febf::1",
            "::ffff:192.0.2.10",
            "::192.0.2.10",
        ] {
            let addr: IpAddr = bad.parse().unwrap();
            assert!(usable(addr, "peer").is_err(), "{bad}");
        }
        for good in [
            "192.0.2.10",
            "10.0.0.1",
            "2001:db8::1",
            "fec0::1",
            "fd00::1",
        ] {
            assert!(usable(good.parse().unwrap(), "peer").is_ok(), "{good}");
        }
    }
}
