//! A node's NoCloud seed files:
//! <https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html>. A seed is
//! an ISO 9660 volume labelled `cidata` holding `meta-data` (instance-id, local-hostname and
//! our `axoha:` mapping), `user-data` and `network-config` (version 2). axoha-firstboot reads
//! `meta-data` itself; `network-config` is for images that also run cloud-init (without it,
//! axoha-firstboot configures the HA address on its own).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use axoha_firstboot::metadata::Key;

use super::description::{ClusterFile, Mac};
use super::node::{node, Node, Secrets, SeedFiles};

#[derive(Serialize)]
struct MetaData<'a> {
    #[serde(rename = "instance-id")]
    instance_id: &'a str,
    #[serde(rename = "local-hostname")]
    local_hostname: &'a str,
    axoha: BTreeMap<&'static str, serde_yaml_ng::Value>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::node::node_values;
    use crate::cluster::seed::{render_as, write_iso, Format};
    use axoha_disk::tool::require;

    fn cluster(text: &str) -> ClusterFile {
        toml::from_str(text).unwrap()
    }

    const EXAMPLE: &str = include_str!("../../../examples/cluster.toml");

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
