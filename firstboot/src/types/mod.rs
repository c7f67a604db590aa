//! Value types for everything that reaches a rendered file.
//!
//! Each type can only hold a value that is safe to print into `keepalived.conf`, a firewalld
//! zone or a network config: parsing is the only way in, and it rejects anything that could add
//! a line, a brace, a quote, a comment or a keyword. Errors are plain reasons; the caller adds the
//! source and the key.

mod address;
mod health;
mod hostname;
mod interface_name;
mod ip_net;
mod numbers;
mod peers;
mod port;
mod role;
mod servers;
mod source_net;
mod vrrp;

pub use address::usable;
pub use health::HealthCommand;
pub use hostname::{DnsName, Hostname};
pub use interface_name::InterfaceName;
pub use ip_net::IpNet;
pub use numbers::{Bounded, Count, Priority, Seconds, Vrid};
pub use peers::Peers;
pub use port::{Flag, Port, Ports, Protocol};
pub use role::Role;
pub use servers::{DnsServers, Gateway, NtpServer, NtpServers};
pub use source_net::{MetricsFrom, SourceNet};
pub use vrrp::{AdvertInt, AuthPass, VrrpVersion};

/// Why a value was rejected; the caller names the key and the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Parses a plain unsigned decimal: digits only, so `+5`, ` 5`, `0x5` and `5.0` are refused,
/// and no leading zero (`051` is 41 to a C parser and 51 to us: refused, not guessed).
pub(crate) fn parse_decimal(s: &str) -> Result<u64, ValueError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new("expected a whole number (digits only)"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(ValueError::new(
            "expected a whole number without leading zeros (no octal)",
        ));
    }
    s.parse()
        .map_err(|_| ValueError::new("expected a whole number"))
}

/// Writes a list the way every source spells one: comma-separated, no spaces.
pub(crate) fn write_list<T: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    items: &[T],
) -> std::fmt::Result {
    let joined: Vec<String> = items.iter().map(ToString::to_string).collect();
    f.write_str(&joined.join(","))
}

/// Refuses the first item that is listed twice.
pub(crate) fn check_unique<T: Ord + std::fmt::Display>(items: &[T]) -> Result<(), ValueError> {
    let mut seen = std::collections::BTreeSet::new();
    match items.iter().find(|i| !seen.insert(*i)) {
        Some(i) => Err(ValueError::new(format!("{i} is listed twice"))),
        None => Ok(()),
    }
}
