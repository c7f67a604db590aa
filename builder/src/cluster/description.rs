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
    /// Who may scrape every node's metrics endpoint (port 9650): networks or addresses;
    /// default the HA link's subnet. Sources outside it reach the nodes over the VIP side.
    #[serde(default)]
    pub metrics_from: Option<Vec<String>>,
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
        // A NIC's own address is unicast and not zero: network-config would match no NIC
        // (or every NIC that joins the group), and a PXE entry keyed by it is never asked for.
        if mac == [0; 6] {
            bail!("mac {s:?} is the all-zero address, which no NIC has");
        }
        if mac[0] & 1 == 1 {
            let what = if mac == [0xff; 6] {
                "the broadcast address"
            } else {
                "a multicast address (the first octet is odd)"
            };
            bail!("mac {s:?} is {what}, not a NIC's own address");
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
    let text = axoha_firstboot::metadata::parse::without_bom(text);
    let c: ClusterFile = toml::from_str(&text)
        .with_context(|| format!("{}: invalid cluster description", path.display()))?;
    c.check()
        .with_context(|| format!("{}: invalid cluster description", path.display()))?;
    Ok(c)
}

/// An `ADDR/PREFIX` value, typed.
fn net(node: &str, field: &str, value: &str) -> Result<IpNet> {
    value
        .parse()
        .map_err(|e| anyhow::anyhow!("node {node}: {field} = {value:?}: {e}"))
}

/// Every node's `field` on one subnet (VRRP adverts never cross a router): the first node
/// whose subnet differs from the first node's is named with both.
fn one_subnet<'a>(field: &str, nets: impl Iterator<Item = (&'a str, IpNet)>) -> Result<()> {
    let mut first: Option<(&str, IpNet)> = None;
    for (node, n) in nets {
        match first {
            None => first = Some((node, n)),
            Some((f, fnet)) if fnet.network() != n.network() => bail!(
                "node {node}: {field} = \"{n}\" is on subnet {}, node {f}'s {field} on {}: \
                 every node's {field} must be on one subnet",
                n.network(),
                fnet.network()
            ),
            Some(_) => {}
        }
    }
    Ok(())
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
        // Each value once in the whole cluster: (what, value) -> the node that has it. Names
        // compare in any case, as host names do in DNS and /etc/hosts.
        let mut names: BTreeMap<String, &str> = BTreeMap::new();
        let mut macs: BTreeMap<Mac, (&str, &str)> = BTreeMap::new();
        let mut addrs: BTreeMap<IpAddr, (&str, &str)> = BTreeMap::new();
        for n in &self.nodes {
            if let Some(other) = names.insert(n.name.to_ascii_lowercase(), &n.name) {
                bail!(
                    "nodes: name {:?} is listed twice (as {other:?}; names compare in any case)",
                    n.name
                );
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
                let a = net(&n.name, field, value)?.addr();
                if let Some((other, other_field)) = addrs.insert(a, (&n.name, field)) {
                    bail!(
                        "node {}: {field} = {value:?}: address {a} is also {other_field} of node {other}",
                        n.name
                    );
                }
            }
        }
        let ha: Vec<(&str, IpNet)> = self
            .nodes
            .iter()
            .map(|n| Ok((n.name.as_str(), net(&n.name, "ha_ip", &n.ha_ip)?)))
            .collect::<Result<_>>()?;
        one_subnet("ha_ip", ha.into_iter())?;
        let public: Vec<(&str, IpNet)> = self
            .nodes
            .iter()
            .filter_map(|n| Some((n, n.public_ip.as_ref()?)))
            .map(|(n, p)| Ok((n.name.as_str(), net(&n.name, "public_ip", p)?)))
            .collect::<Result<_>>()?;
        if let Some((node, first)) = public.first().copied() {
            let vip: IpNet = self
                .vip
                .parse()
                .map_err(|e| anyhow::anyhow!("vip = {:?}: {e}", self.vip))?;
            if !first.contains(vip.addr()) {
                bail!(
                    "vip = \"{vip}\" is not on node {node}'s public_ip subnet {}: the VIP lives \
                     beside public_ip on vip_if",
                    first.network()
                );
            }
        }
        one_subnet("public_ip", public.into_iter())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/cluster.toml");

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
            (
                EXAMPLE.replace(first_mac, "ff:ff:ff:ff:ff:ff"),
                "is the broadcast address".into(),
            ),
            (
                EXAMPLE.replace(first_mac, "01:00:5e:00:00:12"),
                "is a multicast address".into(),
            ),
            (
                EXAMPLE.replace(first_mac, "33:33:00:00:00:12"),
                "is a multicast address".into(),
            ),
            (
                EXAMPLE.replace(first_mac, "00:00:00:00:00:00"),
                "is the all-zero address".into(),
            ),
            (
                EXAMPLE.replace("\"router-b\"", "\"Router-A\""),
                "name \"Router-A\" is listed twice (as \"router-a\"".into(),
            ),
            (
                EXAMPLE.replace("192.0.2.11/24", "192.0.3.11/24"),
                "ha_ip = \"192.0.3.11/24\" is on subnet 192.0.3.0/24, node router-a's ha_ip on \
                 192.0.2.0/24"
                    .into(),
            ),
            (
                EXAMPLE.replace("192.0.2.11/24", "192.0.2.11/25"),
                "is on subnet 192.0.2.0/25".into(),
            ),
            (
                EXAMPLE.replace("198.51.100.11/24", "203.0.113.11/24"),
                "public_ip = \"203.0.113.11/24\" is on subnet 203.0.113.0/24".into(),
            ),
            (
                EXAMPLE.replace("198.51.100.10/24", "203.0.113.10/24"),
                "is not on node router-a's public_ip subnet 203.0.113.0/24".into(),
            ),
        ] {
            let err = refused(&text);
            assert!(err.contains(&want), "{want}: {err}");
        }
    }

    /// Valid edge cases of the rules above still pass.
    #[test]
    fn valid_edges_pass() {
        for text in [
            // A locally administered unicast MAC, upper case.
            EXAMPLE.replace("52:54:00:0a:00:0a", "02:00:00:00:00:FE"),
            // Names that differ by more than case.
            EXAMPLE.replace("\"router-b\"", "\"Router-B\""),
            // HA addresses in one /25 at its edges; IPv6 HA addresses in one /64.
            EXAMPLE
                .replace("192.0.2.10/24", "192.0.2.1/25")
                .replace("192.0.2.11/24", "192.0.2.126/25"),
            EXAMPLE
                .replace("192.0.2.10/24", "2001:db8::10/64")
                .replace("192.0.2.11/24", "2001:db8::ffff:11/64"),
        ] {
            let c: ClusterFile = toml::from_str(&text).unwrap();
            c.check().unwrap_or_else(|e| panic!("{e:#}\n{text}"));
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, format!("\u{feff}{EXAMPLE}")).unwrap();
        assert_eq!(load(&path).unwrap().nodes.len(), 2);
        // Anywhere else it is a character: here, in a name.
        std::fs::write(
            &path,
            EXAMPLE.replace("\"router-b\"", "\"\u{feff}router-b\""),
        )
        .unwrap();
        let c = load(&path).unwrap();
        let err = match crate::cluster::nocloud::render(&c, "\u{feff}router-b", &Default::default())
        {
            Ok(_) => panic!("a name holding a BOM was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("hostname"), "{err}");
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
