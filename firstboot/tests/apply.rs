//! `apply`: files, modes, stamp, idempotence, network config.

mod common;

use std::os::unix::fs::PermissionsExt;

use axoha_firstboot::render::keepalived::NOTIFY_SCRIPT;
use common::{stderr, Root, GOOD_CMDLINE, PUBLIC};

fn mode(root: &Root, rel: &str) -> u32 {
    std::fs::metadata(root.path().join(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn writes_every_file_then_the_stamp() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SUCCESS: configured router-a primary"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&root, "etc/keepalived/keepalived.conf"), 0o640);
    assert_eq!(mode(&root, "etc/axoha/node.toml"), 0o640);
    assert_eq!(root.read("etc/hostname"), "router-a\n");
    let zone = root.read("etc/firewalld/zones/axoha-ha.xml");
    assert!(zone.contains("<interface name=\"ha0\"/>"), "{zone}");
    assert_eq!(
        zone.matches("<protocol value=\"vrrp\"/>").count(),
        2,
        "{zone}"
    );
    assert!(root
        .read("var/lib/axoha/firstboot.done")
        .contains("router-a primary"));
}

/// A node's network basics: its name resolves locally, the VIP zone opens exactly the listed
/// ports, DNS and NTP servers land where the image's resolver and chrony read them, and the
/// default route leaves through vip_if.
#[test]
fn network_basics_and_the_vip_zone() {
    let root = Root::new();
    root.write("usr/lib/axoha/profile", "debian-12\n");
    root.write(
        "proc/cmdline",
        &format!(
            "{GOOD_CMDLINE} axoha.gateway=198.51.100.1 axoha.dns=203.0.113.53,203.0.113.54 \
             axoha.ntp=203.0.113.123,ntp.example.org{PUBLIC}"
        ),
    );
    root.write(
        "etc/axoha/cluster.toml",
        "[firewall]\nports = [\"4317/tcp\", \"514/udp\"]\nssh = true\n",
    );
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root.read("etc/hosts").contains("127.0.1.1\trouter-a\n"));
    let zone = root.read("etc/firewalld/zones/axoha-vip.xml");
    assert!(zone.contains("<interface name=\"pub0\"/>"), "{zone}");
    assert!(zone.contains("<service name=\"ssh\"/>"), "{zone}");
    assert!(
        zone.contains("<port protocol=\"tcp\" port=\"4317\"/>")
            && zone.contains("<port protocol=\"udp\" port=\"514\"/>"),
        "{zone}"
    );
    assert_eq!(zone.matches("<port ").count(), 2, "{zone}");
    assert_eq!(
        root.read("etc/resolv.conf"),
        "# Written by axoha-firstboot from the node's dns metadata.\n\
         nameserver 203.0.113.53\nnameserver 203.0.113.54\n"
    );
    assert_eq!(mode(&root, "etc/resolv.conf"), 0o644);
    let chrony = root.read("etc/chrony/sources.d/axoha.sources");
    assert!(
        chrony.contains("server 203.0.113.123 iburst\nserver ntp.example.org iburst\n"),
        "{chrony}"
    );
    let vip = root.read("etc/systemd/network/51-axoha-vip.network");
    assert!(
        vip.contains("Address=198.51.100.10/24\n")
            && vip.contains("[Route]\nGateway=198.51.100.1\n"),
        "{vip}"
    );
}

/// Without a host name the node gets one derived from its HA address, everywhere alike.
#[test]
fn a_node_without_a_hostname_gets_a_derived_one() {
    let root = Root::new();
    root.write(
        "proc/cmdline",
        &GOOD_CMDLINE.replace(" axoha.hostname=router-a", ""),
    );
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(root.read("etc/hostname"), "axoha-192-0-2-10\n");
    assert!(root
        .read("etc/hosts")
        .contains("127.0.1.1\taxoha-192-0-2-10\n"));
    assert!(stderr(&out).contains("SUCCESS: configured axoha-192-0-2-10 primary"));
    assert!(root
        .read("etc/keepalived/keepalived.conf")
        .contains("router_id axoha-192-0-2-10\n"));
    // No firewall ports listed: the VIP zone opens nothing, not even SSH.
    let zone = root.read("etc/firewalld/zones/axoha-vip.xml");
    assert!(
        !zone.contains("<port") && !zone.contains("<service"),
        "{zone}"
    );
    assert!(!root.path().join("etc/resolv.conf").exists());
    assert!(stderr(&out).contains("no ntp servers"), "{}", stderr(&out));
}

#[test]
fn same_metadata_same_bytes_and_the_stamp_stops_reruns() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    assert!(root.run("apply", &["--no-start"]).status.success());
    let first = root.snapshot();

    // With the stamp, a second run does nothing even if the metadata changed.
    root.write(
        "proc/cmdline",
        &GOOD_CMDLINE.replace("axoha.vrid=51", "axoha.vrid=52"),
    );
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("configured already"));
    let conf = root.read("etc/keepalived/keepalived.conf");
    assert!(conf.contains("virtual_router_id 51"));

    // --force re-runs; the same metadata again gives the same bytes.
    assert!(root
        .run("apply", &["--no-start", "--force"])
        .status
        .success());
    assert!(root
        .read("etc/keepalived/keepalived.conf")
        .contains("virtual_router_id 52"));
    root.write("proc/cmdline", GOOD_CMDLINE);
    let out = root.run("apply", &["--no-start", "--force"]);
    assert!(stderr(&out).contains("unchanged"), "{}", stderr(&out));
    let mut again = root.snapshot();
    let mut first = first;
    for s in [&mut first, &mut again] {
        s.retain(|p, _| !p.ends_with("proc/cmdline"));
    }
    assert_eq!(first, again);
}

#[test]
fn password_makes_keepalived_conf_root_only() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    root.write("etc/axoha/cluster.toml", "vrrp_version = 2\n");
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "axoha:\n  auth_pass: pw\n",
    );
    assert!(root.run("apply", &["--no-start"]).status.success());
    assert_eq!(mode(&root, "etc/keepalived/keepalived.conf"), 0o600);
}

#[test]
fn network_config_follows_the_profile() {
    let debian = Root::new();
    debian.write("proc/cmdline", GOOD_CMDLINE);
    debian.write("usr/lib/axoha/profile", "debian-12\n");
    assert!(debian.run("apply", &["--no-start"]).status.success());
    let networkd = debian.read("etc/systemd/network/50-axoha-ha.network");
    assert!(networkd.contains("Name=ha0\n") && networkd.contains("Address=192.0.2.10/24\n"));
    assert_eq!(
        mode(&debian, "etc/systemd/network/50-axoha-ha.network"),
        0o644
    );

    let alma = Root::new();
    alma.write("proc/cmdline", GOOD_CMDLINE);
    alma.write(
        "etc/os-release",
        "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\n",
    );
    assert!(alma.run("apply", &["--no-start"]).status.success());
    let rel = "etc/NetworkManager/system-connections/axoha-ha.nmconnection";
    let nm = alma.read(rel);
    assert!(nm.contains("interface-name=ha0\n") && nm.contains("address1=192.0.2.10/24\n"));
    assert!(nm.contains("zone=axoha-ha\n"));
    assert_eq!(mode(&alma, rel), 0o600);
    let vip = alma.read("etc/NetworkManager/system-connections/axoha-vip.nmconnection");
    assert!(
        vip.contains("interface-name=pub0\n") && !vip.contains("address1"),
        "{vip}"
    );
}

/// A debian-12 image built with `network = "networkmanager"` names its daemon in
/// /usr/lib/axoha/network: that decides over the profile; a word we do not know does not.
#[test]
fn network_config_follows_the_image_s_named_daemon() {
    let nm = Root::new();
    nm.write("proc/cmdline", GOOD_CMDLINE);
    nm.write("usr/lib/axoha/profile", "debian-12\n");
    nm.write("usr/lib/axoha/network", "networkmanager\n");
    assert!(nm.run("apply", &["--no-start"]).status.success());
    let rel = "etc/NetworkManager/system-connections/axoha-ha.nmconnection";
    assert!(nm.read(rel).contains("zone=axoha-ha\n"));
    assert_eq!(mode(&nm, rel), 0o600);
    assert!(!nm.path().join("etc/systemd/network").exists());

    let odd = Root::new();
    odd.write("proc/cmdline", GOOD_CMDLINE);
    odd.write("usr/lib/axoha/profile", "debian-12\n");
    odd.write("usr/lib/axoha/network", "ifupdown\n");
    let out = odd.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names no network daemon we know (\"ifupdown\")"),
        "{}",
        stderr(&out)
    );
    assert!(odd
        .read("etc/systemd/network/50-axoha-ha.network")
        .contains("Name=ha0\n"));
}

/// With a second heartbeat path the VIP link carries public_ip (not required for online, and
/// in the VIP zone, not the HA link's).
#[test]
fn network_config_gives_the_vip_link_public_ip() {
    let cmdline = format!("{GOOD_CMDLINE}{PUBLIC}");
    let debian = Root::new();
    debian.write("proc/cmdline", &cmdline);
    debian.write("usr/lib/axoha/profile", "debian-12\n");
    assert!(debian.run("apply", &["--no-start"]).status.success());
    let networkd = debian.read("etc/systemd/network/51-axoha-vip.network");
    assert!(
        networkd.contains("Name=pub0\n")
            && networkd.contains("Address=198.51.100.10/24\n")
            && networkd.contains("RequiredForOnline=no\n"),
        "{networkd}"
    );
    let alma = Root::new();
    alma.write("proc/cmdline", &cmdline);
    alma.write("usr/lib/axoha/profile", "almalinux-10\n");
    assert!(alma.run("apply", &["--no-start"]).status.success());
    let vip = alma.read("etc/NetworkManager/system-connections/axoha-vip.nmconnection");
    assert!(
        vip.contains("address1=198.51.100.10/24\n") && vip.contains("zone=axoha-vip\n"),
        "{vip}"
    );
}

#[test]
fn network_config_configured_elsewhere_is_left_alone() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    root.write("usr/lib/axoha/profile", "debian-12\n");
    // What cloud-init renders from a NoCloud network-config.
    root.write(
        "etc/systemd/network/10-cloud-init-ha0.network",
        "[Match]\nName=ha0\n\n[Network]\nDHCP=no\n",
    );
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("already configured by"),
        "{}",
        stderr(&out)
    );
    assert!(!root
        .path()
        .join("etc/systemd/network/50-axoha-ha.network")
        .exists());
}

#[test]
fn check_and_bare_invocation() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let out = root.run("check", &[]);
    assert!(out.status.success());
    assert!(common::stdout(&out).starts_with("ok: router-a primary"));
    assert!(!root.path().join("etc").exists(), "check writes nothing");
}

#[test]
fn vrrp_state_changes_reach_the_console_when_the_image_has_the_script() {
    let bare = Root::new();
    bare.write("proc/cmdline", GOOD_CMDLINE);
    assert!(bare.run("apply", &["--no-start"]).status.success());
    assert!(!bare
        .read("etc/keepalived/keepalived.conf")
        .contains("notify"));

    let image = Root::new();
    image.write("proc/cmdline", GOOD_CMDLINE);
    image.write(NOTIFY_SCRIPT.trim_start_matches('/'), "#!/bin/sh\n");
    assert!(image.run("apply", &["--no-start"]).status.success());
    let conf = image.read("etc/keepalived/keepalived.conf");
    assert!(
        conf.contains(&format!("    notify \"{NOTIFY_SCRIPT}\"\n")),
        "{conf}"
    );
}
