//! The node's network basics: its default gateway, DNS servers and NTP servers.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{check_unique, usable, write_list, DnsName, ValueError};
use crate::log::quote;

fn address(s: &str, what: &str) -> Result<IpAddr, ValueError> {
    let addr: IpAddr = s.parse().map_err(|_| {
        ValueError::new(format!(
            "{} is not an IP address (a {what} is a plain address, no prefix)",
            quote(s)
        ))
    })?;
    usable(addr, what)
}

/// The default gateway, a plain unicast address (no prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway(IpAddr);

impl Gateway {
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl FromStr for Gateway {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        address(s, "gateway").map(Gateway)
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// DNS servers: 1 to 3 addresses, the most the C library's resolver uses (`MAXNS`); a fourth
/// would be silently ignored, so it is refused instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsServers(Vec<IpAddr>);

impl DnsServers {
    pub const MAX: usize = 3;

    pub fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.0.iter()
    }
}

impl FromStr for DnsServers {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let items = list(s, DnsServers::MAX, "DNS server")?;
        let servers = items
            .iter()
            .map(|i| address(i, "DNS server"))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&servers)?;
        Ok(DnsServers(servers))
    }
}

impl fmt::Display for DnsServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.0)
    }
}

/// One NTP server: an address or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NtpServer {
    Addr(IpAddr),
    Name(String),
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NtpServer::Addr(a) => a.fmt(f),
            NtpServer::Name(n) => f.write_str(n),
        }
    }
}

/// NTP servers: 1 to 8 addresses or host names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtpServers(Vec<NtpServer>);

impl NtpServers {
    pub const MAX: usize = 8;

    pub fn iter(&self) -> impl Iterator<Item = &NtpServer> {
        self.0.iter()
    }
}

impl FromStr for NtpServers {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let items = list(s, NtpServers::MAX, "NTP server")?;
        let mut servers = Vec::new();
        for item in items {
            // An address-looking item must be a valid address ("192.0.2.300" is a typo, not
            // a host name).
            let looks_numeric =
                item.contains(':') || item.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let server = if looks_numeric {
                NtpServer::Addr(address(item, "NTP server")?)
            } else {
                let name: DnsName = item.parse().map_err(|ValueError(reason)| {
                    ValueError::new(format!(
                        "{} is neither an IP address nor a host name: {reason}",
                        quote(item)
                    ))
                })?;
                NtpServer::Name(name.as_str().to_ascii_lowercase())
            };
            servers.push(server);
        }
        check_unique(&servers)?;
        Ok(NtpServers(servers))
    }
}

impl fmt::Display for NtpServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.0)
    }
}

fn list<'a>(s: &'a str, max: usize, what: &str) -> Result<Vec<&'a str>, ValueError> {
    if s.is_empty() {
        return Err(ValueError::new(format!("at least one {what} is required")));
    }
    let items: Vec<&str> = s.split(',').collect();
    if items.len() > max {
        return Err(ValueError::new(format!(
            "{} {what}s listed; at most {max} are used",
            items.len()
        )));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_values() {
        assert_eq!(
            "198.51.100.1".parse::<Gateway>().unwrap().to_string(),
            "198.51.100.1"
        );
        let dns: DnsServers = "203.0.113.53,2001:db8::53".parse().unwrap();
        assert_eq!(dns.to_string(), "203.0.113.53,2001:db8::53");
        let ntp: NtpServers = "203.0.113.123,NTP.example.org".parse().unwrap();
        assert_eq!(ntp.to_string(), "203.0.113.123,ntp.example.org");
    }

    #[test]
    fn bad_values() {
        for bad in [
            "198.51.100.1/24",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "gw",
            "",
        ] {
            assert!(bad.parse::<Gateway>().is_err(), "gateway {bad}");
        }
        for bad in [
            "",
            "203.0.113.1,203.0.113.1",
            "203.0.113.1,203.0.113.2,203.0.113.3,203.0.113.4",
            "dns.example.org",
            "203.0.113.1 ",
        ] {
            assert!(bad.parse::<DnsServers>().is_err(), "dns {bad}");
        }
        for bad in [
            "",
            "192.0.2.300",
            "ntp..example",
            "-ntp.example",
            "ntp.example;rm",
            "a,a",
            "A.example,a.example",
            "1,2,3,4,5,6,7,8,9",
        ] {
            assert!(bad.parse::<NtpServers>().is_err(), "ntp {bad}");
        }
    }
}
