//! The rendered HA zone is accepted by the real firewalld (`firewall-offline-cmd`), binds the
//! HA interface and holds exactly one VRRP (IP protocol 112) rich rule per peer.

mod common;

use std::path::Path;
use std::process::Command;

use common::{stderr, Root, GOOD_CMDLINE, PUBLIC};

fn offline_cmd(system_config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("firewall-offline-cmd")
        .arg("--system-config")
        .arg(system_config)
        .args(["--default-config", "/usr/lib/firewalld"])
        .args(args)
        .output()
        .expect(
            "firewall-offline-cmd (Debian package firewalld; scripts/install-deps installs it)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A node applied with `cluster_toml`, its firewalld directory ready for the offline command.
fn applied(cluster_toml: &str) -> (Root, std::path::PathBuf) {
    let root = Root::new();
    root.write("proc/cmdline", &format!("{GOOD_CMDLINE}{PUBLIC}"));
    root.write("etc/axoha/cluster.toml", cluster_toml);
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // firewall-offline-cmd needs a firewalld.conf in the directory it is pointed at.
    let etc_firewalld = root.path().join("etc/firewalld");
    std::fs::copy(
        "/usr/lib/firewalld/firewalld.conf",
        etc_firewalld.join("firewalld.conf"),
    )
    .or_else(|_| {
        std::fs::copy(
            "/etc/firewalld/firewalld.conf",
            etc_firewalld.join("firewalld.conf"),
        )
    })
    .expect("a firewalld.conf to copy");
    (root, etc_firewalld)
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn zone_passes_firewalld_check_config() {
    // metrics_from: one host on the HA subnet (HA zone), one elsewhere (VIP zone: asked for).
    let (_root, etc_firewalld) = applied(
        "metrics_from = [\"192.0.2.5\", \"203.0.113.7\"]\n\
         [firewall]\nports = [\"4317/tcp\", \"514/udp\"]\nssh = true\n",
    );
    let (ok, text) = offline_cmd(&etc_firewalld, &["--check-config"]);
    assert!(
        ok && !text.contains("WARNING") && !text.contains("ERROR"),
        "{text}"
    );

    let (ok, rules) = offline_cmd(&etc_firewalld, &["--zone=axoha-ha", "--list-rich-rules"]);
    assert!(ok, "{rules}");
    assert_eq!(
        rules.lines().collect::<Vec<_>>(),
        [
            r#"rule family="ipv4" source address="192.0.2.11" protocol value="vrrp" accept"#,
            r#"rule family="ipv4" source address="192.0.2.12" protocol value="vrrp" accept"#,
            r#"rule family="ipv4" source address="192.0.2.5/32" port port="9650" protocol="tcp" accept"#,
        ]
    );
    let (ok, zone) = offline_cmd(&etc_firewalld, &["--get-zone-of-interface=ha0"]);
    assert!(ok && zone.trim() == "axoha-ha", "{zone}");

    // The VIP interface: exactly the listed ports, SSH, nothing else.
    let (ok, zone) = offline_cmd(&etc_firewalld, &["--get-zone-of-interface=pub0"]);
    assert!(ok && zone.trim() == "axoha-vip", "{zone}");
    let (ok, ports) = offline_cmd(&etc_firewalld, &["--zone=axoha-vip", "--list-ports"]);
    assert!(ok && ports.trim() == "4317/tcp 514/udp", "{ports}");
    let (ok, services) = offline_cmd(&etc_firewalld, &["--zone=axoha-vip", "--list-services"]);
    assert!(ok && services.trim() == "ssh", "{services}");
    let (ok, rules) = offline_cmd(&etc_firewalld, &["--zone=axoha-vip", "--list-rich-rules"]);
    assert!(ok, "{rules}");
    assert_eq!(
        rules.lines().collect::<Vec<_>>(),
        [
            r#"rule family="ipv4" source address="198.51.100.11" protocol value="vrrp" accept"#,
            r#"rule family="ipv4" source address="198.51.100.12" protocol value="vrrp" accept"#,
            r#"rule family="ipv4" source address="203.0.113.7/32" port port="9650" protocol="tcp" accept"#,
        ]
    );
}

/// Without `metrics_from` the endpoint is reachable from the HA subnet only: nothing about it
/// in the VIP zone.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn metrics_default_to_the_ha_subnet_only() {
    let (_root, etc_firewalld) = applied("");
    let (ok, rules) = offline_cmd(&etc_firewalld, &["--zone=axoha-ha", "--list-rich-rules"]);
    assert!(ok, "{rules}");
    assert!(
        rules.lines().any(|l| l
            == r#"rule family="ipv4" source address="192.0.2.0/24" port port="9650" protocol="tcp" accept"#),
        "{rules}"
    );
    let (ok, rules) = offline_cmd(&etc_firewalld, &["--zone=axoha-vip", "--list-rich-rules"]);
    assert!(ok && !rules.contains("9650"), "{rules}");
    let (ok, ports) = offline_cmd(&etc_firewalld, &["--zone=axoha-vip", "--list-ports"]);
    assert!(ok && !ports.contains("9650"), "{ports}");
}
