//! One node of the cluster description, with the values first boot will resolve for it and
//! validated by first boot's own rules (`NodeConfig`): what every per-node output (NoCloud
//! seed, config drive, PXE entry) is made from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use axoha_firstboot::config::NodeConfig;
use axoha_firstboot::metadata::{Key, RawMetadata, Resolved, Source};

use super::description::{ClusterFile, NodeEntry};

/// Secrets come from a file or the environment, never from argv (visible in `ps`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub auth_pass: Option<String>,
}

impl Secrets {
    pub fn load(file: Option<&Path>) -> Result<Secrets> {
        let mut s = match file {
            Some(p) => toml::from_str(&axoha_firstboot::metadata::parse::without_bom(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            ))
            .with_context(|| format!("{}: invalid secrets file", p.display()))?,
            None => Secrets::default(),
        };
        if s.auth_pass.is_none() {
            s.auth_pass = std::env::var("AXOHA_AUTH_PASS")
                .ok()
                .filter(|v| !v.is_empty());
        }
        Ok(s)
    }
}

/// The `axoha` values of one node, as first boot will resolve them.
pub fn node_values(c: &ClusterFile, n: &NodeEntry, secrets: &Secrets) -> BTreeMap<Key, String> {
    let others = || c.nodes.iter().filter(|o| o.name != n.name);
    let addr = |a: &str| a.split('/').next().unwrap_or(a).to_owned();
    let peers: Vec<String> = others().map(|o| addr(&o.ha_ip)).collect();
    let mut v = BTreeMap::from([
        (Key::Role, n.role.clone()),
        (Key::HaIp, n.ha_ip.clone()),
        (Key::Peers, peers.join(",")),
        (Key::Vip, c.vip.clone()),
        (Key::HaIf, c.ha_if.clone()),
        (Key::VipIf, c.vip_if.clone()),
        (Key::Vrid, c.vrid.to_string()),
        (Key::Hostname, n.name.clone()),
    ]);
    // The second heartbeat path needs every node's address; `render` refuses a partial set.
    let public_peers: Option<Vec<String>> =
        others().map(|o| o.public_ip.as_deref().map(addr)).collect();
    if let (Some(ip), Some(public_peers)) = (&n.public_ip, public_peers) {
        v.insert(Key::PublicIp, ip.clone());
        v.insert(Key::PublicPeers, public_peers.join(","));
    }
    if let Some(ver) = c.vrrp_version {
        v.insert(Key::VrrpVersion, ver.to_string());
    }
    if let Some(gw) = &c.gateway {
        v.insert(Key::Gateway, gw.clone());
    }
    for (key, list) in [
        (Key::Dns, &c.dns),
        (Key::Ntp, &c.ntp),
        (Key::MetricsFrom, &c.metrics_from),
    ] {
        if let Some(list) = list {
            v.insert(key, list.join(","));
        }
    }
    if let Some(p) = &secrets.auth_pass {
        v.insert(Key::AuthPass, p.clone());
    }
    v
}

/// The files of one node's ISO: its volume label and (path in the ISO, contents) pairs.
pub struct SeedFiles {
    /// The seed carries a secret (the VRRP password): only its owner may read it.
    pub secret: bool,
    pub label: &'static str,
    pub files: Vec<(&'static str, String)>,
}

/// One node, validated with first boot's own rules.
pub struct Node<'a> {
    pub entry: &'a NodeEntry,
    pub values: BTreeMap<Key, String>,
    pub config: NodeConfig,
}

/// Finds and validates one node of the cluster (pure).
pub fn node<'a>(c: &'a ClusterFile, name: &str, secrets: &Secrets) -> Result<Node<'a>> {
    c.check()?;
    let n = c
        .nodes
        .iter()
        .find(|n| n.name == name)
        .with_context(|| format!("no node {name:?} in the cluster description"))?;
    let values = node_values(c, n, secrets);
    let resolved = Resolved::merge([RawMetadata {
        source: Source::NoCloud,
        values: values.clone(),
    }]);
    let config =
        NodeConfig::from_resolved(&resolved).map_err(|p| anyhow::anyhow!("node {name}: {p}"))?;
    Ok(Node {
        entry: n,
        values,
        config,
    })
}
