//! Rendering: golden files, source equivalence, precedence and `--explain`.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files after an intended change, then review
//! the diff like any other code change.

mod common;

use common::{stderr, stdout, Root, GOOD_CMDLINE, PUBLIC};

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

/// The rendered keepalived.conf, with the test root's path taken out of the drain files'
/// paths (keepalived reads them under the root): the golden files show a node's paths.
fn render_ok(root: &Root, extra: &[&str]) -> String {
    let out = root.run("render", extra);
    assert!(out.status.success(), "render failed: {}", stderr(&out));
    stdout(&out).replace(&format!("\"{}/", root.path().display()), "\"/")
}

#[test]
fn primary_of_three_with_defaults() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    golden("primary-3node.conf", &render_ok(&root, &[]));
}

/// Two heartbeat paths: a sync group of an HA-link instance and a VIP-network instance.
#[test]
fn primary_of_three_with_two_heartbeat_paths() {
    let root = Root::new();
    root.write("proc/cmdline", &format!("{GOOD_CMDLINE}{PUBLIC}"));
    // With the notify script installed, the group (not each instance) reports its state.
    root.write("usr/libexec/keepalived/axoha-vrrp-notify", "#!/bin/sh\n");
    golden("two-paths-primary-3node.conf", &render_ok(&root, &[]));
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("only heartbeat path"),
        "{}",
        stderr(&out)
    );
    assert!(root
        .read("etc/axoha/node.toml")
        .contains("\"public_peers\" = \"198.51.100.11,198.51.100.12\""));
}

/// Without public_ip/public_peers the node says, once, what a fault of its HA link does.
#[test]
fn a_single_heartbeat_path_is_announced_once() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("only heartbeat path").count(), 1, "{err}");
    assert!(
        err.contains("outage") && err.contains("split brain"),
        "{err}"
    );
}

#[test]
fn secondary_of_two_with_cluster_toml() {
    let root = Root::new();
    root.write(
        "usr/lib/axoha/cluster.toml",
        "ha_if = \"eth0\"\nvip_if = \"eth1\"\nvip = \"198.51.100.64/25\"\nvrid = 51\n\
         [health]\ncommand = \"/usr/local/bin/check-router --quiet\"\ninterval = 2\nfall = 3\n",
    );
    root.write(
        "proc/cmdline",
        "axoha.role=secondary axoha.ha_ip=192.0.2.11/24 axoha.peers=192.0.2.10",
    );
    golden("secondary-2node.conf", &render_ok(&root, &[]));
}

#[test]
fn vrrp_v2_with_password_from_the_seed() {
    let root = Root::new();
    root.write("etc/axoha/cluster.toml", "vrrp_version = 2\n");
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: b\nlocal-hostname: router-b\naxoha:\n  role: secondary\n  ha_ip: 192.0.2.11/24\n  \
         peers: [192.0.2.10]\n  vip: 198.51.100.64/24\n  ha_if: ha0\n  vip_if: pub0\n  vrid: 7\n  \
         auth_pass: s3cret\n",
    );
    golden("v2-auth.conf", &render_ok(&root, &[]));
}

#[test]
fn ipv6_cluster() {
    let root = Root::new();
    root.write(
        "proc/cmdline",
        "axoha.role=primary axoha.ha_ip=2001:db8::10/64 axoha.peers=2001:db8::11 \
         axoha.vip=2001:db8:1::64/64 axoha.ha_if=ha0 axoha.vip_if=pub0 axoha.vrid=9",
    );
    golden("ipv6.conf", &render_ok(&root, &[]));
}

/// The same node described three ways gives the same keepalived.conf.
#[test]
fn seed_and_instance_data_equal_the_kernel_command_line() {
    let from_cmdline = Root::new();
    from_cmdline.write("proc/cmdline", GOOD_CMDLINE);

    let meta = "instance-id: node-a\nlocal-hostname: router-a\naxoha:\n  role: primary\n  \
                ha_ip: 192.0.2.10/24\n  peers:\n    - 192.0.2.11\n    - 192.0.2.12\n  \
                vip: 198.51.100.64/24\n  ha_if: ha0\n  vip_if: pub0\n  vrid: 51\n";
    let seed_dir = tempfile::tempdir().unwrap();
    std::fs::write(seed_dir.path().join("meta-data"), meta).unwrap();
    let from_seed = Root::new();

    let from_instance = Root::new();
    let json = r#"{"v1":{"local_hostname":"router-a"},"ds":{"meta_data":{"instance-id":"node-a",
        "local-hostname":"router-a","axoha":{"role":"primary","ha_ip":"192.0.2.10/24",
        "peers":"192.0.2.11,192.0.2.12","vip":"198.51.100.64/24","ha_if":"ha0","vip_if":"pub0",
        "vrid":51}}}}"#;
    let instance = from_instance.write("run/cloud-init/instance-data.json", json);

    let a = render_ok(&from_cmdline, &[]);
    let b = render_ok(&from_seed, &["--seed", seed_dir.path().to_str().unwrap()]);
    let c = render_ok(
        &from_instance,
        &["--instance-data", instance.to_str().unwrap()],
    );
    assert_eq!(a, b, "NoCloud seed differs from the kernel command line");
    assert_eq!(a, c, "instance data differs from the kernel command line");
    assert!(a.contains("router_id router-a"));
}

#[test]
fn explain_names_the_source_of_each_value() {
    let root = Root::new();
    root.write("usr/lib/axoha/cluster.toml", "vrid = 1\nadvert_int = 0.5\n");
    root.write("etc/axoha/cluster.toml", "vrid = 2\n");
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "axoha:\n  vrid: 3\n  role: secondary\n",
    );
    root.write(
        "proc/cmdline",
        GOOD_CMDLINE.replace(" axoha.vrid=51", "").as_str(),
    );
    let out = render_ok(&root, &["--explain"]);
    assert!(out.contains("# vrid = 3  <- NoCloud seed"), "{out}");
    assert!(
        out.contains("# role = primary  <- kernel command line"),
        "{out}"
    );
    assert!(
        out.contains("# advert_int = 0.5  <- /usr/lib/axoha/cluster.toml"),
        "{out}"
    );
    assert!(out.contains("virtual_router_id 3\n"), "{out}");
}

#[test]
fn the_esp_node_file_is_a_source_below_the_command_line() {
    // A Secure Boot node: the signed command line has no metadata, the ESP's node file has it
    // (one argument a line, as the installer writes it).
    let root = Root::new();
    let node: String = GOOD_CMDLINE
        .split_whitespace()
        .filter(|a| a.starts_with("axoha."))
        .map(|a| format!("{a}\n"))
        .collect();
    root.write(
        "efi/axoha/node.conf",
        &node.replace("axoha.vrid=51", "axoha.vrid=7"),
    );
    root.write("proc/cmdline", "console=ttyS0 axoha.vrid=51\n");
    let out = render_ok(&root, &["--explain"]);
    assert!(
        out.contains("# role = primary  <- ESP node file /efi/axoha/node.conf"),
        "{out}"
    );
    assert!(
        out.contains("# vrid = 51  <- kernel command line"),
        "the command line is above the node file: {out}"
    );
    // Validated like the command line: a typo or a secret is refused, naming the file.
    for (bad, why) in [
        ("axoha.rol=primary\n", "axoha.rol"),
        ("axoha.auth_pass=secret\n", "auth_pass"),
    ] {
        root.write("efi/axoha/node.conf", &format!("{node}{bad}"));
        let o = root.run("render", &[]);
        assert!(!o.status.success(), "{bad}");
        let err = stderr(&o);
        assert!(
            err.contains("node file") && err.contains(why),
            "{bad}: {err}"
        );
    }
}

#[test]
fn secrets_are_redacted_from_explain_and_node_toml() {
    let root = Root::new();
    root.write("etc/axoha/cluster.toml", "vrrp_version = 2\n");
    root.write("proc/cmdline", GOOD_CMDLINE);
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "axoha:\n  auth_pass: pw12\n",
    );
    let explained = render_ok(&root, &["--explain"]);
    assert!(
        explained.contains("# auth_pass = <redacted>"),
        "{explained}"
    );
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("pw12"),
        "the password reached the log"
    );
    assert!(!root.read("etc/axoha/node.toml").contains("pw12"));
    assert!(root
        .read("etc/keepalived/keepalived.conf")
        .contains("auth_pass pw12\n"));
}
