use std::fmt;
use std::str::FromStr;

use super::ValueError;
use crate::log::quote;

/// A DNS name per RFC 1123 (section 2.1): dot-separated labels of 1-63 letters, digits and
/// hyphens, not starting or ending with a hyphen, 253 characters at most, and a last label
/// that is not all digits (RFC 1123 keeps top-level names alphabetic so that a name is never
/// read as a dotted-decimal address: `192.0.2.50` and `12345`, which `inet_aton` takes for
/// 0.0.48.57, are addresses, not names). NTP server names are of this kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsName(String);

impl DnsName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DnsName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 253 {
            return Err(ValueError::new("a host name has 1 to 253 characters"));
        }
        for label in s.split('.') {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(ValueError::new(format!(
                    "label {} is not valid: 1-63 letters, digits or inner hyphens (RFC 1123)",
                    quote(label)
                )));
            }
        }
        let last = s.rsplit('.').next().unwrap_or(s);
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::new(format!(
                "{} is not a host name: its last label {} is all digits, so it reads as an \
                 IP address (RFC 1123 2.1)",
                quote(s),
                quote(last)
            )));
        }
        Ok(DnsName(s.to_owned()))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's own host name: a [`DnsName`] of at most [`Hostname::MAX`] characters, the most
/// the kernel's `sethostname` takes (`HOST_NAME_MAX`, 64) and the most systemd accepts from
/// `/etc/hostname`. A longer name passes RFC 1123 but could not be set, so it is refused
/// with the metadata, before anything is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname(DnsName);

impl Hostname {
    pub const MAX: usize = 64;

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for Hostname {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let name: DnsName = s.parse()?;
        if s.len() > Hostname::MAX {
            return Err(ValueError::new(format!(
                "a node's host name has at most {} characters (the kernel's sethostname limit), \
                 this one has {}",
                Hostname::MAX,
                s.len()
            )));
        }
        Ok(Hostname(name))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_rfc_1123_and_the_kernels_limit() {
        let label63 = "a".repeat(63);
        for ok in [
            "router-a",
            "r",
            "router-a.example.org",
            "1router",
            "router.1a",
            label63.as_str(),
            "axoha-2001-db8--10",
        ] {
            assert!(ok.parse::<Hostname>().is_ok(), "{ok}");
        }
        let label64 = "a".repeat(64);
        let sixty_five = format!("{}.{}", "a".repeat(32), "b".repeat(32));
        for bad in [
            "",
            "192.0.2.50",
            "12345",
            "router.123",
            "-router",
            "router-",
            "router_a",
            "router..a",
            "router.",
            label64.as_str(),
            sixty_five.as_str(),
        ] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
        // A name for DNS may be longer than a node's own name.
        let long = format!("{}.{}.example.org", label63, label63);
        assert!(long.parse::<DnsName>().is_ok());
        assert!(long.parse::<Hostname>().is_err());
        assert!("a".repeat(254).parse::<DnsName>().is_err());
    }
}
