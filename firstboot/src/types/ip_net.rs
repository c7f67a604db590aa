use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{parse_decimal, usable, ValueError};
use crate::log::quote;

/// An IPv4 or IPv6 address with a prefix length, such as `192.0.2.10/24`.
///
/// The prefix is mandatory: an HA address or a VIP without one would leave the netmask to
/// whichever tool reads it, and keepalived and NetworkManager disagree on the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address as a number and the host-bits mask, for subnet arithmetic.
    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn host_mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }

    /// Whether `addr` is inside this address's subnet (same family).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && Self::bits(addr) & !self.host_mask() == Self::bits(self.addr) & !self.host_mask()
    }

    /// The subnet, e.g. `198.51.100.0/24` for `198.51.100.64/24`.
    pub fn network(&self) -> IpNet {
        Self::network_of(self.addr, self.prefix)
    }

    /// The network `addr/prefix` lies in (`prefix` within the family's width, as every
    /// caller's parser checked).
    pub(crate) fn network_of(addr: IpAddr, prefix: u8) -> IpNet {
        let any = IpNet { addr, prefix };
        let n = Self::bits(addr) & !any.host_mask();
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(n.into()),
        };
        IpNet { addr, prefix }
    }

    /// Whether `addr` is the subnet's network or (IPv4) broadcast address, which no host may
    /// use; /31 and /32 (IPv4) and /127, /128 have neither.
    pub fn is_network_or_broadcast(&self, addr: IpAddr) -> bool {
        let mask = self.host_mask();
        if !self.contains(addr) || mask <= 1 {
            return false;
        }
        let host = Self::bits(addr) & mask;
        host == 0 || (addr.is_ipv4() && host == mask)
    }
}

impl FromStr for IpNet {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| ValueError::new("expected ADDRESS/PREFIX, e.g. 192.0.2.10/24"))?;
        // std's parser refuses leading zeros and other ambiguous spellings, so the address we
        // print is the address the operator wrote.
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| ValueError::new(format!("{} is not an IP address", quote(addr))))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = parse_decimal(prefix)
            .ok()
            .filter(|p| (1..=max).contains(p))
            .ok_or_else(|| {
                ValueError::new(format!("prefix {} is not in 1..={max}", quote(prefix)))
            })?;
        let addr = usable(addr, "node or virtual address")?;
        let net = IpNet {
            addr,
            prefix: prefix as u8,
        };
        if net.is_network_or_broadcast(addr) {
            return Err(ValueError::new(format!(
                "{net}: {addr} is the network or broadcast address of {}, which no host can use",
                net.network()
            )));
        }
        Ok(net)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6() {
        assert_eq!(
            "192.0.2.10/24".parse::<IpNet>().unwrap().to_string(),
            "192.0.2.10/24"
        );
        assert_eq!(
            "2001:db8::1/64".parse::<IpNet>().unwrap().to_string(),
            "2001:db8::1/64"
        );
    }

    #[test]
    fn subnet_arithmetic() {
        let vip: IpNet = "198.51.100.64/25".parse().unwrap();
        assert_eq!(vip.network().to_string(), "198.51.100.0/25");
        assert!(vip.contains("198.51.100.1".parse().unwrap()));
        assert!(!vip.contains("198.51.100.128".parse().unwrap()));
        assert!(!vip.contains("2001:db8::1".parse().unwrap()));
        assert!(vip.is_network_or_broadcast("198.51.100.0".parse().unwrap()));
        assert!(vip.is_network_or_broadcast("198.51.100.127".parse().unwrap()));
        assert!(!vip.is_network_or_broadcast("198.51.100.126".parse().unwrap()));
        let v6: IpNet = "2001:db8::64/64".parse().unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let p31: IpNet = "192.0.2.0/31".parse().unwrap();
        assert!(!p31.is_network_or_broadcast("192.0.2.0".parse().unwrap()));
    }

    #[test]
    fn contains_its_subnet_only() {
        let net: IpNet = "198.51.100.10/25".parse().unwrap();
        assert!(net.contains("198.51.100.64".parse().unwrap()));
        assert!(net.contains("198.51.100.127".parse().unwrap()));
        assert!(!net.contains("198.51.100.128".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let host: IpNet = "198.51.100.10/32".parse().unwrap();
        assert!(!host.contains("198.51.100.11".parse().unwrap()));
        let v6: IpNet = "2001:db8:1::10/64".parse().unwrap();
        assert!(v6.contains("2001:db8:1::64".parse().unwrap()));
        assert!(!v6.contains("2001:db8:2::64".parse().unwrap()));
    }

    #[test]
    fn host_routes_and_point_to_point_links_have_no_network_address() {
        for good in [
            "192.0.2.0/31",
            "192.0.2.1/31",
            "192.0.2.0/32",
            "2001:db8::/127",
        ] {
            assert!(good.parse::<IpNet>().is_ok(), "{good}");
        }
    }

    #[test]
    fn refuses_ambiguous_spellings() {
        for bad in [
            "192.0.2.10",
            "192.0.2.10/",
            "192.0.2.10/33",
            "192.0.2.10/0",
            "192.0.2.10/+24",
            "192.0.2.010/24",
            "0.0.0.0/8",
            "127.0.0.1/8",
            "224.0.0.18/24",
            "192.0.2.0/24",
            "192.0.2.255/24",
            "198.51.100.128/25",
            "2001:db8::/64",
            "255.255.255.255/32",
            "169.254.0.10/16",
            "fe80::10/64",
            "::ffff:192.0.2.10/120",
            "240.0.0.10/8",
            "192.0.2.10/024",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad} should be refused");
        }
    }
}
