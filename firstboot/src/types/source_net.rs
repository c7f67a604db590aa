//! `metrics_from`: the networks allowed to scrape the metrics endpoint (firewall sources).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{check_unique, parse_decimal, usable, write_list, IpNet, ValueError};
use crate::log::quote;

/// A source network: `192.0.2.0/24`, or one host (`192.0.2.5`, stored as `/32` or `/128`).
/// Host bits must be zero: `192.0.2.5/24` is refused rather than widened, since it usually
/// means a host was meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceNet {
    addr: IpAddr,
    prefix: u8,
}

impl SourceNet {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Whether this whole network lies inside `net`'s subnet.
    pub fn inside(&self, net: &IpNet) -> bool {
        self.prefix >= net.prefix() && net.contains(self.addr)
    }

    /// The subnet of an interface address, e.g. the HA link's: the default source.
    pub fn subnet_of(net: &IpNet) -> SourceNet {
        let n = net.network();
        SourceNet {
            addr: n.addr(),
            prefix: n.prefix(),
        }
    }
}

impl FromStr for SourceNet {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            ValueError::new(format!(
                "{} is not an IP address (a source is ADDRESS or NETWORK/PREFIX)",
                quote(addr)
            ))
        })?;
        let addr = usable(addr, "metrics source")?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => parse_decimal(p)
                .ok()
                .filter(|p| (1..=u64::from(max)).contains(p))
                .map(|p| p as u8)
                .ok_or_else(|| {
                    ValueError::new(format!("prefix {} is not in 1..={max}", quote(p)))
                })?,
        };
        let net = IpNet::network_of(addr, prefix);
        if net.addr() != addr {
            return Err(ValueError::new(format!(
                "{} has host bits set: the network is {net}, the host {addr}",
                quote(s)
            )));
        }
        Ok(SourceNet { addr, prefix })
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// 1 to 16 source networks, none twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsFrom(Vec<SourceNet>);

impl MetricsFrom {
    pub const MAX: usize = 16;

    pub fn iter(&self) -> impl Iterator<Item = &SourceNet> {
        self.0.iter()
    }

    /// The default: the HA link's subnet only.
    pub fn ha_link(ha_ip: &IpNet) -> MetricsFrom {
        MetricsFrom(vec![SourceNet::subnet_of(ha_ip)])
    }
}

impl FromStr for MetricsFrom {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let items: Vec<&str> = s.split(',').collect();
        if s.is_empty() {
            return Err(ValueError::new(
                "expected at least one source (leave the key out for the HA link's subnet)",
            ));
        }
        if items.len() > Self::MAX {
            return Err(ValueError::new(format!(
                "{} sources; at most {} are allowed",
                items.len(),
                Self::MAX
            )));
        }
        let nets = items
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<SourceNet>, _>>()?;
        check_unique(&nets)?;
        Ok(MetricsFrom(nets))
    }
}

impl fmt::Display for MetricsFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_refuse_by_name() {
        let m: MetricsFrom = "192.0.2.0/24,198.51.100.2".parse().unwrap();
        assert_eq!(m.to_string(), "192.0.2.0/24,198.51.100.2/32");
        let ha: IpNet = "192.0.2.10/24".parse().unwrap();
        assert_eq!(MetricsFrom::ha_link(&ha).to_string(), "192.0.2.0/24");
        let (a, b): (Vec<&SourceNet>, Vec<&SourceNet>) = m.iter().partition(|s| s.inside(&ha));
        assert_eq!((a.len(), b.len()), (1, 1));
        for bad in [
            "",
            "192.0.2.5/24",
            "192.0.2.0/0",
            "127.0.0.1",
            "192.0.2.0/24,192.0.2.0/24",
            "example.org",
            "192.0.2.0/24 ",
        ] {
            assert!(bad.parse::<MetricsFrom>().is_err(), "{bad:?}");
        }
    }
}
