//! `axoha-image seed`: per-node metadata ISOs from one cluster description, in either format
//! first boot reads ([`Format`]).
//!
//! NoCloud: <https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html>.
//! A seed is an ISO 9660 volume labelled `cidata` holding `meta-data` (instance-id,
//! local-hostname and our `axoha:` mapping), `user-data` and `network-config` (version 2).
//! axoha-firstboot reads `meta-data` itself; `network-config` is for images that also run
//! cloud-init (without it, axoha-firstboot configures the HA address on its own). The
//! OpenStack config drive (`--format configdrive`) is `config_drive.rs`.
//!
//! Every node is validated here with axoha-firstboot's own rules, so a seed that would fail
//! on first boot is never written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use axoha_disk::tool::{command, require, run};
use axoha_firstboot::config::NodeConfig;
use axoha_firstboot::metadata::{Key, RawMetadata, Resolved, Source};

use crate::cluster::{ClusterFile, Mac, NodeEntry};

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

#[derive(Serialize)]
struct MetaData<'a> {
    #[serde(rename = "instance-id")]
    instance_id: &'a str,
    #[serde(rename = "local-hostname")]
    local_hostname: &'a str,
    axoha: BTreeMap<&'static str, serde_yaml_ng::Value>,
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

/// What `seed` writes for each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// cloud-init NoCloud: an ISO labelled `cidata` (libvirt, Proxmox, QEMU).
    Nocloud,
    /// OpenStack config drive: an ISO labelled `config-2` with openstack/latest/meta_data.json.
    Configdrive,
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

/// Validates one node and renders its ISO's files in `format` (pure).
pub fn render_as(
    format: Format,
    c: &ClusterFile,
    name: &str,
    secrets: &Secrets,
) -> Result<SeedFiles> {
    match format {
        Format::Nocloud => render(c, name, secrets),
        Format::Configdrive => crate::config_drive::render(&node(c, name, secrets)?),
    }
}

/// Validates one node and renders its NoCloud seed files (pure).
pub fn render(c: &ClusterFile, name: &str, secrets: &Secrets) -> Result<SeedFiles> {
    let Node {
        entry: n,
        values,
        config,
    } = node(c, name, secrets)?;

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
    let eth = |mac: &Mac, set_name: &str, addr: Option<String>| {
        let mut m = serde_yaml_ng::Mapping::new();
        let mut matcher = serde_yaml_ng::Mapping::new();
        matcher.insert("macaddress".into(), mac.to_string().into());
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
        secret: values.contains_key(&Key::AuthPass),
        label: "cidata",
        files: vec![
            ("meta-data", meta_data),
            ("user-data", "#cloud-config\n{}\n".into()),
            ("network-config", serde_yaml_ng::to_string(&net)?),
        ],
    })
}

/// Writes `out_dir/NAME.iso` (labelled `files.label`). Everything is made in a private (0700)
/// directory inside `out_dir`, files created with their final mode: a seed with a secret is
/// never readable by others, not even while xorriso writes it. Then it is renamed into place.
pub fn write_iso(files: &SeedFiles, out_dir: &Path, name: &str) -> Result<PathBuf> {
    require(&["xorriso"])?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".axoha-seed-")
        .tempdir_in(out_dir)
        .with_context(|| format!("a private directory in {}", out_dir.display()))?;
    let public = if files.secret { 0o600 } else { 0o644 };
    // The ISO's tree: its files readable by root only on the node when one holds a secret.
    let tree = staging.path().join("tree");
    for (file, text) in &files.files {
        let path = tree.join(file);
        let parent = path.parent().expect("a file in the tree");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        create_with_mode(&path, text.as_bytes(), public)?;
    }
    let tmp = staging.path().join("seed.iso");
    // xorriso creates its output with 0666 & ~umask; made 0600 empty first, it writes into it.
    create_with_mode(&tmp, b"", public)?;
    run(command("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            files.label,
            "-J",
            "-R",
            "-o",
        ])
        .arg(&tmp)
        .arg(&tree))
    .with_context(|| format!("xorriso: writing the {} ISO", files.label))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(public))
            .with_context(|| format!("chmod {}", tmp.display()))?;
    }
    let iso = out_dir.join(format!("{name}.iso"));
    std::fs::rename(&tmp, &iso).with_context(|| format!("publishing {}", iso.display()))?;
    Ok(iso)
}

/// A new file, created with `mode` (O_CREAT's mode, masked only by a stricter umask).
fn create_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
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
        let meta: serde_yaml_ng::Value = serde_yaml_ng::from_str(&files.files[0].1).unwrap();
        assert_eq!(meta["axoha"]["public_ip"], "198.51.100.10/24");
        assert_eq!(meta["axoha"]["public_peers"], "198.51.100.11");
        assert!(files.files[2].1.contains("198.51.100.10/24"));
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
        assert!(!files.files[0].1.contains("public"), "{}", files.files[0].1);
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
        // The cluster-wide rule sees both nodes before firstboot's rule sees one.
        assert!(err.to_string().contains("must be on one subnet"), "{err}");
    }

    #[test]
    fn a_seed_with_a_secret_is_never_readable_by_others() {
        if require(&["xorriso"]).is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "xorriso missing (scripts/install-deps)"
            );
            eprintln!("skipped: xorriso is not installed");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        // v2 has the password (v3 has no authentication at all).
        let c = cluster(&EXAMPLE.replace("vrid = 51", "vrid = 51\nvrrp_version = 2\n"));
        let secrets = Secrets {
            auth_pass: Some("s3cret".into()),
        };
        let files = render(&c, "router-a", &secrets).unwrap();
        assert!(files.secret);
        let out = tempfile::tempdir().unwrap();
        let iso = write_iso(&files, out.path(), "router-a").unwrap();
        let mode = std::fs::metadata(&iso).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{iso:?}");
        let left: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("router-a.iso")],
            "no staging left"
        );
        let plain = render(&c, "router-b", &Secrets::default()).unwrap();
        let iso = write_iso(&plain, out.path(), "router-b").unwrap();
        let mode = std::fs::metadata(&iso).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // The config drive alike, labelled config-2, its tree nested.
        let drives = out.path().join("configdrive");
        let files = render_as(Format::Configdrive, &c, "router-a", &secrets).unwrap();
        assert!(files.secret);
        let iso = write_iso(&files, &drives, "router-a").unwrap();
        let mode = std::fs::metadata(&iso).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{iso:?}");
        let pvd = std::fs::read(&iso).unwrap();
        assert_eq!(
            &pvd[16 * 2048 + 40..16 * 2048 + 48],
            b"config-2",
            "volume id"
        );
        let listed = std::process::Command::new("xorriso")
            .args(["-indev"])
            .arg(&iso)
            .args(["-find", "/openstack", "-type", "f"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains("/openstack/latest/meta_data.json")
                && listed.contains("/openstack/latest/network_data.json"),
            "{listed}"
        );
    }

    #[test]
    fn cluster_rules_apply_before_any_node_is_rendered() {
        let dup = EXAMPLE.replace("52:54:00:0a:00:0b", "52:54:00:0A:00:0A");
        let err = format!(
            "{:#}",
            render(&cluster(&dup), "router-b", &Secrets::default())
                .err()
                .unwrap()
        );
        assert!(err.contains("mac = \"52:54:00:0a:00:0a\""), "{err}");
    }
}
