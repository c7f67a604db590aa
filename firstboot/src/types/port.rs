use std::fmt;
use std::str::FromStr;

use super::{check_unique, parse_decimal, write_list, ValueError};
use crate::log::quote;

/// A transport protocol a firewall port is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One listening port of AxoRouter, written `PORT/tcp` or `PORT/udp` (firewalld's spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

impl FromStr for Port {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (number, protocol) = s.split_once('/').ok_or_else(|| {
            ValueError::new(format!(
                "{}: expected PORT/tcp or PORT/udp, e.g. 4317/tcp",
                quote(s)
            ))
        })?;
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => {
                return Err(ValueError::new(format!(
                    "{}: the protocol is tcp or udp (VRRP is not a port: axoha opens it itself)",
                    quote(s)
                )))
            }
        };
        // No leading zeros: the port we print is the port the operator wrote.
        let number = parse_decimal(number)
            .ok()
            .filter(|n| (1..=65535).contains(n) && !number.starts_with('0'))
            .ok_or_else(|| {
                ValueError::new(format!("{}: the port is a number in 1..=65535", quote(s)))
            })?;
        Ok(Port {
            number: number as u16,
            protocol,
        })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol)
    }
}

/// The ports opened on the VIP interface: no duplicates, at most [`Ports::MAX`]; empty is
/// allowed (written as an empty list) and opens nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports(Vec<Port>);

impl Ports {
    /// A service with more listeners than this is a configuration mistake, not a router.
    pub const MAX: usize = 64;

    pub fn iter(&self) -> impl Iterator<Item = &Port> {
        self.0.iter()
    }
}

impl FromStr for Ports {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() {
            return Ok(Ports::default());
        }
        let items: Vec<&str> = s.split(',').collect();
        if items.len() > Ports::MAX {
            return Err(ValueError::new(format!(
                "{} ports listed; at most {} are allowed",
                items.len(),
                Ports::MAX
            )));
        }
        let ports = items
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<Port>, _>>()?;
        check_unique(&ports)?;
        Ok(Ports(ports))
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.0)
    }
}

/// `true` or `false`, nothing else (no `yes`, `1`, `on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "true" => Ok(Flag(true)),
            "false" => Ok(Flag(false)),
            _ => Err(ValueError::new("expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_and_print_as_written() {
        let p: Ports = "4317/tcp,514/udp,514/tcp".parse().unwrap();
        assert_eq!(p.to_string(), "4317/tcp,514/udp,514/tcp");
        assert_eq!("".parse::<Ports>().unwrap(), Ports::default());
    }

    #[test]
    fn bad_ports_are_refused() {
        for bad in [
            "4317",
            "4317/sctp",
            "0/tcp",
            "65536/tcp",
            "04317/tcp",
            "+1/tcp",
            "4317/TCP",
            "4317/tcp,4317/tcp",
            "1-2/tcp",
            " 22/tcp",
            "22/tcp,",
            "112/vrrp",
        ] {
            assert!(bad.parse::<Ports>().is_err(), "{bad} must be refused");
        }
        let many: Vec<String> = (1..=65).map(|n| format!("{n}/tcp")).collect();
        assert!(many.join(",").parse::<Ports>().is_err());
    }

    #[test]
    fn flags_are_true_or_false_only() {
        assert_eq!("true".parse::<Flag>().unwrap(), Flag(true));
        for bad in ["yes", "1", "True", ""] {
            assert!(bad.parse::<Flag>().is_err());
        }
    }
}
