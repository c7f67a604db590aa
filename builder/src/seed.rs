//! `axoha-image seed`: per-node cloud-init NoCloud seeds from one cluster description.
//!
//! NoCloud: <https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html>.
//! A seed is an ISO 9660 volume labelled `cidata` holding `meta-data` (instance-id,
//! local-hostname and our `axoha:` mapping), `user-data` and `network-config` (version 2).
//! axoha-firstboot reads `meta-data` itself; `network-config` is for images that also run
//! cloud-init (without it, axoha-firstboot configures the HA address on its own).
//!
//! Every node is validated here with axoha-firstboot's own rules, so a seed that would fail
//! on first boot is never written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use axoha_disk::tool::{command, require, run};
use axoha_firstboot::config::NodeConfig;
use axoha_firstboot::metadata::{Key, RawMetadata, Resolved, Source};

/// The cluster description (`--cluster FILE`).
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
    /// MAC of the node's HA NIC (network-config matches on it).
    pub mac: String,
    /// The node's own address on `vip_if`: in network-config, and, when every node has one,
    /// its `public_ip` (the others' become its `public_peers`: VRRP over the VIP network too).
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub public_mac: Option<String>,
}

/// Secrets come from a file or the environment, never from argv (visible in `ps`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub auth_pass: Option<String>,
}

impl Secrets {
    pub fn load(file: Option<&Path>) -> Result<Secrets> {
        let mut s = match file {
            Some(p) => toml::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
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

#[derive(Serialize)]
struct MetaData<'a> {
    #[serde(rename = "instance-id")]
    instance_id: &'a str,
    #[serde(rename = "local-hostname")]
    local_hostname: &'a str,
    axoha: BTreeMap<&'static str, serde_yaml_ng::Value>,
}

fn check_mac(mac: &str, node: &str) -> Result<()> {
    let ok = mac.len() == 17
        && mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        bail!("node {node}: mac {mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)");
    }
    Ok(())
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
    for (key, list) in [(Key::Dns, &c.dns), (Key::Ntp, &c.ntp)] {
        if let Some(list) = list {
            v.insert(key, list.join(","));
        }
    }
    if let Some(p) = &secrets.auth_pass {
        v.insert(Key::AuthPass, p.clone());
    }
    v
}

pub struct SeedFiles {
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
}

/// Validates one node and renders its seed files (pure).
pub fn render(c: &ClusterFile, name: &str, secrets: &Secrets) -> Result<SeedFiles> {
    let n = c
        .nodes
        .iter()
        .find(|n| n.name == name)
        .with_context(|| format!("no node {name:?} in the cluster description"))?;
    if c.nodes.iter().filter(|o| o.name == name).count() > 1 {
        bail!("node {name:?} is listed twice");
    }
    if c.nodes.iter().filter(|o| o.role == "primary").count() != 1 {
        bail!("the cluster needs exactly one node with role = \"primary\"");
    }
    let without: Vec<&str> = c
        .nodes
        .iter()
        .filter(|o| o.public_ip.is_none())
        .map(|o| o.name.as_str())
        .collect();
    if !without.is_empty() && without.len() < c.nodes.len() {
        bail!(
            "public_ip is set on some nodes but not on {}: VRRP runs over the VIP network only \
             when every node has its address there (set it on all nodes, or on none)",
            without.join(", ")
        );
    }
    check_mac(&n.mac, name)?;
    if let Some(m) = &n.public_mac {
        check_mac(m, name)?;
    }
    let values = node_values(c, n, secrets);
    let resolved = Resolved::merge([RawMetadata {
        source: Source::NoCloud,
        values: values.clone(),
    }]);
    let config =
        NodeConfig::from_resolved(&resolved).map_err(|p| anyhow::anyhow!("node {name}: {p}"))?;

    let axoha = values
        .iter()
        .map(|(k, v)| (k.name(), serde_yaml_ng::Value::String(v.clone())))
        .collect();
    let meta = MetaData {
        instance_id: &n.name,
        local_hostname: &n.name,
        axoha,
    };
    let meta_data = serde_yaml_ng::to_string(&meta)?;
    let mut ethernets = serde_yaml_ng::Mapping::new();
    let eth = |mac: &str, set_name: &str, addr: Option<String>| {
        let mut m = serde_yaml_ng::Mapping::new();
        let mut matcher = serde_yaml_ng::Mapping::new();
        matcher.insert("macaddress".into(), mac.to_lowercase().into());
        m.insert("match".into(), matcher.into());
        m.insert("set-name".into(), set_name.into());
        match addr {
            Some(a) => m.insert(
                "addresses".into(),
                vec![serde_yaml_ng::Value::from(a)].into(),
            ),
            None => m.insert("dhcp4".into(), false.into()),
        };
        serde_yaml_ng::Value::Mapping(m)
    };
    ethernets.insert(
        "ha".into(),
        eth(
            &n.mac,
            config.ha_if.as_str(),
            Some(config.ha_ip.to_string()),
        ),
    );
    if let Some(mac) = &n.public_mac {
        let mut public = eth(mac, config.vip_if.as_str(), n.public_ip.clone());
        // For images that run cloud-init too: the same basics first boot writes.
        if let serde_yaml_ng::Value::Mapping(m) = &mut public {
            if let Some(gw) = config.basics.gateway {
                let mut route = serde_yaml_ng::Mapping::new();
                route.insert("to".into(), "default".into());
                route.insert("via".into(), gw.to_string().into());
                route.insert("on-link".into(), true.into());
                m.insert(
                    "routes".into(),
                    vec![serde_yaml_ng::Value::from(route)].into(),
                );
            }
            if let Some(dns) = &config.basics.dns {
                let mut ns = serde_yaml_ng::Mapping::new();
                let addrs: Vec<serde_yaml_ng::Value> =
                    dns.iter().map(|a| a.to_string().into()).collect();
                ns.insert("addresses".into(), addrs.into());
                m.insert("nameservers".into(), ns.into());
            }
        }
        ethernets.insert("public".into(), public);
    }
    let mut net = serde_yaml_ng::Mapping::new();
    net.insert("version".into(), 2.into());
    net.insert("ethernets".into(), ethernets.into());
    Ok(SeedFiles {
        meta_data,
        user_data: "#cloud-config\n{}\n".into(),
        network_config: serde_yaml_ng::to_string(&net)?,
    })
}

pub fn load(path: &Path) -> Result<ClusterFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{}: invalid cluster description", path.display()))
}

/// Writes `out_dir/NAME.iso` (a `cidata` ISO), via a temporary name.
pub fn write_iso(files: &SeedFiles, out_dir: &Path, name: &str) -> Result<PathBuf> {
    require(&["xorriso"])?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let staging = tempfile::tempdir()?;
    for (file, text, mode) in [
        ("meta-data", &files.meta_data, 0o600),
        ("user-data", &files.user_data, 0o644),
        ("network-config", &files.network_config, 0o644),
    ] {
        let p = staging.path().join(file);
        std::fs::write(&p, text)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    let iso = out_dir.join(format!("{name}.iso"));
    let tmp = out_dir.join(format!(".{name}.iso.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let result = run(command("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o"])
        .arg(&tmp)
        .arg(staging.path().join("meta-data"))
        .arg(staging.path().join("user-data"))
        .arg(staging.path().join("network-config")));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).context("xorriso: writing the seed ISO");
    }
    if files.meta_data.contains("auth_pass") {
        // The seed carries the VRRP password: only its owner may read it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &iso)?;
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(text: &str) -> ClusterFile {
        toml::from_str(text).unwrap()
    }

    const EXAMPLE: &str = include_str!("../../examples/cluster.toml");

    #[test]
    fn public_ips_of_every_node_become_the_second_heartbeat_path() {
        let c = cluster(EXAMPLE);
        let files = render(&c, "router-a", &Secrets::default()).unwrap();
        let meta: serde_yaml_ng::Value = serde_yaml_ng::from_str(&files.meta_data).unwrap();
        assert_eq!(meta["axoha"]["public_ip"], "198.51.100.10/24");
        assert_eq!(meta["axoha"]["public_peers"], "198.51.100.11");
        assert!(files.network_config.contains("198.51.100.10/24"));
        let b = node_values(&c, &c.nodes[1], &Secrets::default());
        assert_eq!(b[&Key::PublicPeers], "198.51.100.10");
    }

    #[test]
    fn public_ip_on_some_nodes_only_is_refused() {
        let partial = EXAMPLE.replacen("public_ip = \"198.51.100.11/24\"", "", 1);
        let err = render(&cluster(&partial), "router-a", &Secrets::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not on router-b"), "{err}");
        let none = EXAMPLE
            .lines()
            // No public path: no gateway either (it needs an address on vip_if).
            .filter(|l| !l.starts_with("public_") && !l.starts_with("gateway"))
            .collect::<Vec<_>>()
            .join("\n");
        let files = render(&cluster(&none), "router-a", &Secrets::default()).unwrap();
        assert!(!files.meta_data.contains("public"), "{}", files.meta_data);
        let err = render(
            &cluster(&none.replace("vrid = 51", "vrid = 51\ngateway = \"198.51.100.1\"")),
            "router-a",
            &Secrets::default(),
        )
        .err()
        .expect("a gateway without public_ip is refused");
        assert!(err.to_string().contains("needs public_ip"), "{err}");
    }

    #[test]
    fn public_addresses_follow_firstboot_rules() {
        let outside = EXAMPLE.replace("198.51.100.11/24", "203.0.113.11/24");
        let err = render(&cluster(&outside), "router-a", &Secrets::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("must be in this subnet"), "{err}");
    }
}
