//! `axoha-image seed --format configdrive`: an OpenStack config drive per node
//! (<https://docs.openstack.org/nova/latest/user/config-drive.html>), so the image boots from
//! the same cluster description in QEMU tests as on OpenStack (where Nova writes the drive).
//!
//! An ISO 9660 volume labelled `config-2` holding `openstack/latest/meta_data.json` as Nova
//! writes it: `uuid`, `name`, `hostname`, and `meta`, the server's properties, here our keys
//! as `axoha.KEY` strings (what `openstack server create --property axoha.KEY=VALUE` gives);
//! and `openstack/latest/network_data.json` with the node's links by MAC and their static
//! addresses, for images that also run cloud-init and for `axoha-image boot`, which takes
//! the HA NIC's MAC from it. axoha-firstboot reads `meta_data.json` only.

use std::net::IpAddr;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::description::Mac;
use super::node::{Node, SeedFiles};
use axoha_firstboot::metadata::Key;
use axoha_firstboot::types::IpNet;

/// Both documents' place in the drive.
const META_DATA: &str = "openstack/latest/meta_data.json";
const NETWORK_DATA: &str = "openstack/latest/network_data.json";

/// The drive's files for one validated node (pure).
pub fn render(node: &Node) -> Result<SeedFiles> {
    let n = node.entry;
    let meta: Map<String, Value> = node
        .values
        .iter()
        .map(|(k, v)| (format!("axoha.{k}"), Value::String(v.clone())))
        .collect();
    let meta_data = json!({
        "uuid": uuid_of(&n.name),
        "name": n.name,
        "hostname": n.name,
        "launch_index": 0,
        "availability_zone": "nova",
        "meta": meta,
    });
    let config = &node.config;
    let mut links = vec![link("ha", &n.mac)];
    let mut networks = vec![network("ha", &config.ha_ip)];
    if let Some(mac) = &n.public_mac {
        links.push(link("public", mac));
        if let Some(ip) = &config.public {
            networks.push(network("public", &ip.ip));
        }
    }
    let network_data = json!({ "links": links, "networks": networks, "services": [] });
    Ok(SeedFiles {
        secret: node.values.contains_key(&Key::AuthPass),
        label: "config-2",
        files: vec![
            (META_DATA, serde_json::to_string_pretty(&meta_data)? + "\n"),
            (
                NETWORK_DATA,
                serde_json::to_string_pretty(&network_data)? + "\n",
            ),
        ],
    })
}

fn link(id: &str, mac: &Mac) -> Value {
    json!({ "id": id, "type": "phy", "ethernet_mac_address": mac.to_string() })
}

fn network(link: &str, net: &IpNet) -> Value {
    let (kind, mask) = match net.addr() {
        IpAddr::V4(_) => (
            "ipv4",
            std::net::Ipv4Addr::from(
                u32::MAX
                    .checked_shl(32 - u32::from(net.prefix()))
                    .unwrap_or(0),
            )
            .to_string(),
        ),
        IpAddr::V6(_) => (
            "ipv6",
            std::net::Ipv6Addr::from(
                u128::MAX
                    .checked_shl(128 - u32::from(net.prefix()))
                    .unwrap_or(0),
            )
            .to_string(),
        ),
    };
    json!({
        "id": format!("{link}-net"),
        "link": link,
        "type": kind,
        "ip_address": net.addr().to_string(),
        "netmask": mask,
        "routes": [],
    })
}

/// A stable version-4-shaped UUID from the node's name (Nova's is random; ours must not be,
/// so that two runs write the same drive).
fn uuid_of(name: &str) -> String {
    let h = axoha_disk::hash::sha256_bytes(format!("axoha-config-drive/{name}").as_bytes());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node::{node, Secrets};

    const EXAMPLE: &str = include_str!("../../../examples/cluster.toml");

    #[test]
    fn meta_data_json_reads_back_through_first_boot_with_the_same_values() {
        let c: crate::cluster::description::ClusterFile = toml::from_str(EXAMPLE).unwrap();
        let n = node(&c, "router-a", &Secrets::default()).unwrap();
        let files = render(&n).unwrap();
        assert_eq!(files.label, "config-2");
        assert!(!files.secret);
        let (path, text) = &files.files[0];
        assert_eq!(*path, "openstack/latest/meta_data.json");
        let read = axoha_firstboot::metadata::parse::openstack_meta_data(text).unwrap();
        assert_eq!(read, n.values, "{text}");
        let net: Value = serde_json::from_str(&files.files[1].1).unwrap();
        assert_eq!(
            net["links"][0]["ethernet_mac_address"],
            c.nodes[0].mac.to_string()
        );
        assert_eq!(net["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(uuid_of("router-a").len(), 36);
        assert_ne!(uuid_of("router-a"), uuid_of("router-b"));
    }
}
