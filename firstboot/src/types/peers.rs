use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{usable, ValueError};
use crate::log::quote;

/// The other nodes' HA addresses: at least one, no duplicates, plain addresses (no prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers(Vec<IpAddr>);

impl Peers {
    /// The most other nodes a cluster may have. VRRP itself has no limit, but every node
    /// advertises to every peer by unicast several times a second, the secondaries need
    /// distinct priorities spread widely enough for distinct takeover delays
    /// (`config::default_priority`), and a real HA cluster of 9 routers is a mistake.
    pub const MAX: usize = 8;

    pub fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.0.iter()
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        self.0.contains(addr)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Peers {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() {
            return Err(ValueError::new("at least one peer address is required"));
        }
        let items: Vec<&str> = s.split(',').collect();
        if items.len() > Peers::MAX {
            return Err(ValueError::new(format!(
                "{} peers listed; a cluster has at most {} other nodes",
                items.len(),
                Peers::MAX
            )));
        }
        let mut seen = BTreeSet::new();
        let mut peers = Vec::new();
        for item in items {
            let addr: IpAddr = item.parse().map_err(|_| {
                ValueError::new(format!(
                    "{} is not an IP address (peers are plain addresses, comma-separated)",
                    quote(item)
                ))
            })?;
            let addr = usable(addr, "peer address")?;
            if !seen.insert(addr) {
                return Err(ValueError::new(format!("peer {addr} is listed twice")));
            }
            peers.push(addr);
        }
        Ok(Peers(peers))
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::write_list(f, &self.0)
    }
}
