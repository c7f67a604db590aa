use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{parse_decimal, ValueError};

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

    /// Whether `other` lies in this address's subnet (same family, same first `prefix` bits).
    pub fn contains(&self, other: &IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            bits >> (width - prefix)
        }
        match (self.addr, other) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a) as u128, u32::from(*b) as u128);
                masked(a, self.prefix, 32) == masked(b, self.prefix, 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(*b));
                masked(a, self.prefix, 128) == masked(b, self.prefix, 128)
            }
            _ => false,
        }
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
            .map_err(|_| ValueError::new(format!("{addr:?} is not an IP address")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = parse_decimal(prefix)
            .ok()
            .filter(|p| (1..=max).contains(p))
            .ok_or_else(|| ValueError::new(format!("prefix {prefix:?} is not in 1..={max}")))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(ValueError::new(format!(
                "{addr} cannot be a node or virtual address (unspecified, loopback or multicast)"
            )));
        }
        Ok(IpNet {
            addr,
            prefix: prefix as u8,
        })
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
    fn contains_its_subnet_only() {
        let net: IpNet = "198.51.100.10/25".parse().unwrap();
        assert!(net.contains(&"198.51.100.64".parse().unwrap()));
        assert!(net.contains(&"198.51.100.127".parse().unwrap()));
        assert!(!net.contains(&"198.51.100.128".parse().unwrap()));
        assert!(!net.contains(&"2001:db8::1".parse().unwrap()));
        let host: IpNet = "198.51.100.10/32".parse().unwrap();
        assert!(!host.contains(&"198.51.100.11".parse().unwrap()));
        let v6: IpNet = "2001:db8:1::10/64".parse().unwrap();
        assert!(v6.contains(&"2001:db8:1::64".parse().unwrap()));
        assert!(!v6.contains(&"2001:db8:2::64".parse().unwrap()));
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
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad} should be refused");
        }
    }
}
