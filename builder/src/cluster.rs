//! The cluster description (`--cluster FILE`) that `seed` and `pxe-config` read: its types,
//! and the rules that span nodes (one primary, no name, MAC or address twice), checked before
//! any node is rendered.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Error, Result};
use serde::Deserialize;

use axoha_firstboot::types::IpNet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub vip: String,
    pub ha_if: String,
    pub vip_if: String,
    pub vrid: u32,
    #[serde(default)]
    pub vrrp_version: Option<u32>,
    /// Network basics every node gets: default route via vip_if, DNS and NTP servers.
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Option<Vec<String>>,
    #[serde(default)]
    pub ntp: Option<Vec<String>>,
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub role: String,
    pub ha_ip: String,
    /// MAC of the node's HA NIC (network-config matches on it; PXE entries are keyed by it).
    pub mac: Mac,
    /// The node's own address on `vip_if`: in network-config, and, when every node has one,
    /// its `public_ip` (the others' become its `public_peers`: VRRP over the VIP network too).
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub public_mac: Option<Mac>,
}

/// An Ethernet address, from `aa:bb:cc:dd:ee:ff` in any case; shown in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Mac([u8; 6]);

impl Mac {
    /// `52-54-00-0a-00-0a`: iPXE's `${net0/mac:hexhyp}`, pxelinux's and GRUB's file names.
    pub fn hexhyp(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl TryFrom<String> for Mac {
    type Error = Error;
    fn try_from(s: String) -> Result<Mac> {
        let parts: Vec<&str> = s.split(':').collect();
        let mut mac = [0u8; 6];
        let ok = s.len() == 17
            && parts.len() == 6
            && parts
                .iter()
                .zip(mac.iter_mut())
                .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
        if !ok {
            bail!("mac {s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)");
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

pub fn load(path: &Path) -> Result<ClusterFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let c: ClusterFile = toml::from_str(&text)
        .with_context(|| format!("{}: invalid cluster description", path.display()))?;
    c.check()
        .with_context(|| format!("{}: invalid cluster description", path.display()))?;
    Ok(c)
}

/// The address of an `ADDR/PREFIX` value, typed (the prefix is checked with the node).
fn address(node: &str, field: &str, value: &str) -> Result<IpAddr> {
    let net: IpNet = value
        .parse()
        .map_err(|e| anyhow::anyhow!("node {node}: {field} = {value:?}: {e}"))?;
    Ok(net.addr())
}

impl ClusterFile {
    /// The rules that span nodes; each error names the field and the value.
    pub fn check(&self) -> Result<()> {
        if self.nodes.is_empty() {
            bail!("nodes: the cluster description lists no node ([[nodes]])");
        }
        if self.nodes.iter().filter(|o| o.role == "primary").count() != 1 {
            bail!("the cluster needs exactly one node with role = \"primary\"");
        }
        let without: Vec<&str> = self
            .nodes
            .iter()
            .filter(|o| o.public_ip.is_none())
            .map(|o| o.name.as_str())
            .collect();
        if !without.is_empty() && without.len() < self.nodes.len() {
            bail!(
                "public_ip is set on some nodes but not on {}: VRRP runs over the VIP network \
                 only when every node has its address there (set it on all nodes, or on none)",
                without.join(", ")
            );
        }
        // Each value once in the whole cluster: (what, value) -> the node that has it.
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        let mut macs: BTreeMap<Mac, (&str, &str)> = BTreeMap::new();
        let mut addrs: BTreeMap<IpAddr, (&str, &str)> = BTreeMap::new();
        for n in &self.nodes {
            if names.insert(&n.name, &n.name).is_some() {
                bail!("nodes: name {:?} is listed twice", n.name);
            }
            let node_macs = [
                Some(("mac", n.mac)),
                n.public_mac.map(|m| ("public_mac", m)),
            ];
            for (field, mac) in node_macs.into_iter().flatten() {
                if let Some((other, other_field)) = macs.insert(mac, (&n.name, field)) {
                    bail!(
                        "node {}: {field} = \"{mac}\" is also {other_field} of node {other} \
                         (MACs compare in any case)",
                        n.name
                    );
                }
            }
            let node_addrs = [
                Some(("ha_ip", &n.ha_ip)),
                n.public_ip.as_ref().map(|p| ("public_ip", p)),
            ];
            for (field, value) in node_addrs.into_iter().flatten() {
                let a = address(&n.name, field, value)?;
                if let Some((other, other_field)) = addrs.insert(a, (&n.name, field)) {
                    bail!(
                        "node {}: {field} = {value:?}: address {a} is also {other_field} of node {other}",
                        n.name
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/cluster.toml");

    fn refused(text: &str) -> String {
        let c: ClusterFile = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => return e.to_string(),
        };
        format!("{:#}", c.check().unwrap_err())
    }

    #[test]
    fn the_example_is_valid() {
        let c: ClusterFile = toml::from_str(EXAMPLE).unwrap();
        c.check().unwrap();
    }

    #[test]
    fn cluster_wide_rules_name_field_and_value() {
        let (first_mac, second_mac) = ("52:54:00:0a:00:0a", "52:54:00:0a:00:0b");
        for (text, want) in [
            (
                EXAMPLE.replace(second_mac, &first_mac.to_uppercase()),
                format!("mac = \"{first_mac}\" is also mac of node"),
            ),
            (
                EXAMPLE.replace("198.51.100.11/24", "198.51.100.10/25"),
                "public_ip = \"198.51.100.10/25\": address 198.51.100.10 is also public_ip".into(),
            ),
            (
                EXAMPLE.replace("192.0.2.11/24", "192.0.2.10/24"),
                "ha_ip = \"192.0.2.10/24\": address 192.0.2.10 is also ha_ip".into(),
            ),
            (
                EXAMPLE.replace("198.51.100.11/24", "192.0.2.10/24"),
                "address 192.0.2.10 is also ha_ip".into(),
            ),
            (
                EXAMPLE.replace("198.51.100.11/24", "198.51.100.999/24"),
                "public_ip = \"198.51.100.999/24\"".into(),
            ),
            (
                EXAMPLE.replace(first_mac, "52:54:00:zz:00:0a"),
                "mac \"52:54:00:zz:00:0a\" is not a MAC address".into(),
            ),
            (
                EXAMPLE.split("\n[[nodes]]").next().unwrap().to_owned() + "nodes = []\n",
                "lists no node".into(),
            ),
        ] {
            let err = refused(&text);
            assert!(err.contains(&want), "{want}: {err}");
        }
    }

    #[test]
    fn a_public_mac_may_not_be_another_nodes_mac() {
        let c: ClusterFile = toml::from_str(EXAMPLE).unwrap();
        let mut c2 = ClusterFile {
            nodes: c.nodes.clone(),
            ..c
        };
        c2.nodes[1].public_mac = Some(c2.nodes[0].mac);
        let err = format!("{:#}", c2.check().unwrap_err());
        assert!(
            err.contains("public_mac") && err.contains("is also mac of node"),
            "{err}"
        );
    }
}
