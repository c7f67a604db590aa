//! Bad metadata never crashes and never half-writes: every case below must exit 1, name the
//! key (as spelled in its source) in the error, and leave every file under the root as it was.

mod common;

use common::{stderr, Root, GOOD_CMDLINE};

/// A valid `public_ip` and `public_peers` for [`GOOD_CMDLINE`].
const PUBLIC: (&str, &str) = ("198.51.100.10/24", "198.51.100.11,198.51.100.12");

/// Where a case puts its bad input.
enum Input {
    /// Replace (or add) `axoha.KEY=VALUE` on the kernel command line; an empty key removes
    /// nothing and appends VALUE as a raw argument.
    Cmdline(&'static str, &'static str),
    /// Remove `axoha.KEY=...` from the kernel command line.
    CmdlineWithout(&'static str),
    /// `axoha.public_ip=IP axoha.public_peers=PEERS` added to the kernel command line.
    Public(&'static str, &'static str),
    /// `axoha.gateway=VALUE` on a node that has the valid PUBLIC pair.
    Gateway(&'static str),
    ClusterToml(&'static str),
    SeedMetaData(&'static str),
    InstanceData(&'static str),
}

use Input::*;

/// (input, text the error must contain)
const CASES: &[(Input, &str)] = &[
    (Cmdline("role", "master"), "axoha.role = \"master\""),
    (Cmdline("role", ""), "axoha.role"),
    (Cmdline("ha_ip", "192.0.2.10"), "axoha.ha_ip"),
    (Cmdline("ha_ip", "192.0.2.300/24"), "axoha.ha_ip"),
    (Cmdline("ha_ip", "192.0.2.10/33"), "axoha.ha_ip"),
    (Cmdline("ha_ip", "192.0.2.010/24"), "axoha.ha_ip"),
    (Cmdline("ha_ip", "127.0.0.1/8"), "axoha.ha_ip"),
    (Cmdline("peers", ""), "axoha.peers"),
    (Cmdline("peers", "192.0.2.11,,192.0.2.12"), "axoha.peers"),
    (Cmdline("peers", "192.0.2.11,192.0.2.11"), "listed twice"),
    (Cmdline("peers", "192.0.2.10"), "axoha.peers"),
    (Cmdline("peers", "192.0.2.11/24"), "axoha.peers"),
    (Cmdline("vip", "198.51.100.64"), "axoha.vip"),
    (Cmdline("vip", "192.0.2.10/24"), "axoha.vip"),
    (Cmdline("vip", "192.0.2.11/24"), "axoha.vip"),
    (Cmdline("vip", "2001:db8::64/64"), "mix IPv4 and IPv6"),
    (Cmdline("ha_if", "eth0/1"), "axoha.ha_if"),
    (Cmdline("ha_if", "\"ha0 x\""), "axoha.ha_if"),
    (Cmdline("ha_if", "averyveryverylong"), "axoha.ha_if"),
    (Cmdline("ha_if", "ha#0"), "axoha.ha_if"),
    (Cmdline("ha_if", "ha{0"), "axoha.ha_if"),
    (Cmdline("vip_if", "ha0"), "axoha.vip_if"),
    (Cmdline("vrid", "0"), "axoha.vrid"),
    (Cmdline("vrid", "256"), "axoha.vrid"),
    (Cmdline("vrid", "-1"), "axoha.vrid"),
    (Cmdline("vrid", "0x10"), "axoha.vrid"),
    (Cmdline("vrid", "+5"), "axoha.vrid"),
    (Cmdline("priority", "255"), "axoha.priority"),
    (Cmdline("priority", "0"), "axoha.priority"),
    (Cmdline("hostname", "-router"), "axoha.hostname"),
    (Cmdline("hostname", "router_a"), "axoha.hostname"),
    (Cmdline("hostname", "\"router a\""), "axoha.hostname"),
    (Cmdline("vird", "5"), "axoha.vird"),
    (Cmdline("auth_pass", "secret"), "auth_pass"),
    (
        Cmdline("health.command", "/bin/true"),
        "axoha.health.command",
    ),
    (Cmdline("", "axoha.role"), "axoha.role"),
    (CmdlineWithout("role"), "missing role"),
    (CmdlineWithout("vip"), "missing vip"),
    (Cmdline("vrrp_version", "4"), "axoha.vrrp_version"),
    (Cmdline("advert_int", "0"), "axoha.advert_int"),
    (Cmdline("advert_int", "41"), "axoha.advert_int"),
    (
        ClusterToml("vrrp_version = 2\nadvert_int = 0.5\n"),
        "advert_int",
    ),
    (
        ClusterToml("vrrp_version = \"3\\n}\\nvrrp_script x {\"\n"),
        "vrrp_version",
    ),
    (
        ClusterToml("[health]\ncommand = \"/bin/true\\\"\\nfoo\"\n"),
        "health.command",
    ),
    (
        ClusterToml("[health]\ncommand = \"true\"\n"),
        "health.command",
    ),
    (
        ClusterToml("[health]\ncommand = \"/bin/check # comment\"\n"),
        "health.command",
    ),
    (
        ClusterToml("[health]\ncommand = \"/bin/check ! x\"\n"),
        "health.command",
    ),
    (ClusterToml("[health]\ninterval = 0\n"), "health.interval"),
    (ClusterToml("[health]\nfall = 101\n"), "health.fall"),
    (ClusterToml("[health]\nretries = 3\n"), "retries"),
    (ClusterToml("vird = 5\n"), "vird"),
    (ClusterToml("auth_pass = \"x\"\n"), "auth_pass"),
    (ClusterToml("vrid =\n"), "cluster.toml"),
    (
        SeedMetaData("axoha:\n  vrrp_version: 2\n  auth_pass: toolongpw\n"),
        "auth_pass",
    ),
    (SeedMetaData("axoha:\n  auth_pass: abc\n"), "auth_pass"),
    (
        SeedMetaData("axoha:\n  auth_pass: \"a b\"\n  vrrp_version: 2\n"),
        "auth_pass",
    ),
    (SeedMetaData("axoha:\n  rol: primary\n"), "rol"),
    (SeedMetaData("axoha: [1, 2\n"), "meta-data"),
    (
        InstanceData(r#"{"ds":{"meta_data":{"axoha":{"vrrp_version":2,"auth_pass":"a\"b"}}}}"#),
        "auth_pass",
    ),
    (
        InstanceData(r#"{"ds":{"meta_data":{"axoha":{"unknown":1}}}}"#),
        "unknown",
    ),
    (InstanceData(r#"{"ds": "#), "instance data"),
    // Network basics and the VIP zone's ports.
    (Cmdline("gateway", "198.51.100.1"), "needs public_ip"),
    (Gateway("198.51.100.1/24"), "axoha.gateway"),
    (Gateway("203.0.113.1"), "not on this node's network"),
    (Gateway("198.51.100.64"), "not a router"),
    (Gateway("198.51.100.11"), "not a router"),
    (Gateway("198.51.100.10"), "not a router"),
    (Gateway("198.51.100.0"), "network or broadcast"),
    (Gateway("198.51.100.255"), "network or broadcast"),
    (Gateway("2001:db8::1"), "not on this node's network"),
    (Gateway("router"), "axoha.gateway"),
    (Cmdline("dns", "203.0.113.53/32"), "axoha.dns"),
    (Cmdline("dns", "dns.example.org"), "axoha.dns"),
    (Cmdline("dns", "203.0.113.53,203.0.113.53"), "listed twice"),
    (
        Cmdline("dns", "203.0.113.1,203.0.113.2,203.0.113.3,203.0.113.4"),
        "at most 3",
    ),
    (Cmdline("ntp", "192.0.2.300"), "axoha.ntp"),
    (Cmdline("ntp", "ntp.example.org;reboot"), "axoha.ntp"),
    (Cmdline("ntp", ""), "axoha.ntp"),
    (
        Cmdline("firewall.ports", "4317/tcp"),
        "unknown key \"axoha.firewall.ports\"",
    ),
    (
        ClusterToml("[firewall]\nports = [\"4317\"]\n"),
        "firewall.ports",
    ),
    (
        ClusterToml("[firewall]\nports = [\"4317/sctp\"]\n"),
        "firewall.ports",
    ),
    (
        ClusterToml("[firewall]\nports = [\"70000/tcp\"]\n"),
        "firewall.ports",
    ),
    (
        ClusterToml("[firewall]\nports = [\"4317/tcp\", \"4317/tcp\"]\n"),
        "listed twice",
    ),
    (ClusterToml("[firewall]\nssh = \"yes\"\n"), "firewall.ssh"),
    (
        ClusterToml("[firewall]\nports = [4317]\n"),
        "firewall.ports",
    ),
    (ClusterToml("[firewall]\nport = [\"4317/tcp\"]\n"), "port"),
    (SeedMetaData("axoha:\n  ntp: [\"a b\"]\n"), "axoha.ntp"),
    (SeedMetaData("axoha:\n  dns: {x: 1}\n"), "meta-data"),
    // The second heartbeat path (public_ip + public_peers); PUBLIC is a valid pair for GOOD_CMDLINE.
    (
        Cmdline("public_ip", "198.51.100.10/24"),
        "public_peers is not",
    ),
    (
        Cmdline("public_peers", "198.51.100.11,198.51.100.12"),
        "public_ip is not",
    ),
    (
        Public("198.51.100.10", "198.51.100.11,198.51.100.12"),
        "axoha.public_ip",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11"),
        "one address on the VIP network per peer",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11,198.51.100.11"),
        "listed twice",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.10,198.51.100.12"),
        "own address",
    ),
    (
        Public("198.51.100.64/24", "198.51.100.11,198.51.100.12"),
        "the VIP moves",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11,198.51.100.64"),
        "the VIP moves",
    ),
    (
        Public("192.0.2.10/24", "198.51.100.11,198.51.100.12"),
        "repeats an HA address",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11,192.0.2.12"),
        "repeats an HA address",
    ),
    (
        Public("2001:db8::10/64", "2001:db8::11,2001:db8::12"),
        "mix IPv4 and IPv6",
    ),
    (
        Public("203.0.113.10/24", "203.0.113.11,203.0.113.12"),
        "must be in this subnet",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11,203.0.113.12"),
        "must be in this subnet",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11/24,198.51.100.12"),
        "axoha.public_peers",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11 x"),
        "axoha.public_peers",
    ),
    (
        ClusterToml("public_ip = \"198.51.100.10/24\"\npublic_peers = [\"198.51.100.11\"]\n"),
        "public_peers",
    ),
    (
        SeedMetaData(
            "axoha:\n  public_ip: 198.51.100.10/24\n  public_peers: [\"198.51.100.11\", \"x\"]\n",
        ),
        "public_peers",
    ),
    (
        InstanceData(r#"{"ds":{"meta_data":{"axoha":{"public_ip":"198.51.100.10/24"}}}}"#),
        "public_peers is not",
    ),
];

fn cmdline_with(key: &str, value: &str) -> String {
    if key.is_empty() {
        return format!("{GOOD_CMDLINE} {value}");
    }
    let prefix = format!("axoha.{key}=");
    let mut found = false;
    let mut args: Vec<String> = GOOD_CMDLINE
        .split_whitespace()
        .map(|a| {
            if a.starts_with(&prefix) {
                found = true;
                format!("{prefix}{value}")
            } else {
                a.to_owned()
            }
        })
        .collect();
    if !found {
        args.push(format!("{prefix}{value}"));
    }
    args.join(" ")
}

fn setup(input: &Input) -> Root {
    let root = Root::new();
    // A previous configuration that a failed run must leave alone.
    root.write("etc/keepalived/keepalived.conf", "# previous config\n");
    let cmdline = match input {
        Cmdline(k, v) => cmdline_with(k, v),
        CmdlineWithout(k) => GOOD_CMDLINE
            .split_whitespace()
            .filter(|a| !a.starts_with(&format!("axoha.{k}=")))
            .collect::<Vec<_>>()
            .join(" "),
        Public(ip, peers) => {
            format!("{GOOD_CMDLINE} axoha.public_ip={ip} axoha.public_peers={peers}")
        }
        Gateway(gw) => format!(
            "{GOOD_CMDLINE} axoha.public_ip={} axoha.public_peers={} axoha.gateway={gw}",
            PUBLIC.0, PUBLIC.1
        ),
        _ => GOOD_CMDLINE.to_owned(),
    };
    root.write("proc/cmdline", &cmdline);
    match input {
        ClusterToml(t) => {
            root.write("etc/axoha/cluster.toml", t);
        }
        SeedMetaData(t) => {
            root.write("var/lib/cloud/seed/nocloud/meta-data", t);
        }
        InstanceData(t) => {
            root.write("run/cloud-init/instance-data.json", t);
        }
        _ => {}
    }
    root
}

#[test]
fn every_bad_input_is_refused_by_name_and_changes_nothing() {
    assert!(CASES.len() >= 40, "the table keeps at least 40 cases");
    let mut failures = Vec::new();
    for (i, (input, expect)) in CASES.iter().enumerate() {
        let root = setup(input);
        let before = root.snapshot();
        let out = root.run("apply", &["--no-start"]);
        let err = stderr(&out);
        let after = root.snapshot();
        if out.status.code() != Some(1) {
            failures.push(format!(
                "case {i}: exit {:?}, want 1; stderr: {err}",
                out.status.code()
            ));
        }
        if !err.contains(expect) {
            failures.push(format!("case {i}: stderr lacks {expect:?}: {err}"));
        }
        if !err.contains("FAILED") {
            failures.push(format!("case {i}: no FAILED console line: {err}"));
        }
        if before != after {
            failures.push(format!("case {i}: the root changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_input_of_the_table_is_accepted() {
    // Guards the table: its cases fail because of their one change, not the base input.
    let root = setup(&Cmdline("role", "primary"));
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(
        root.read("etc/keepalived/keepalived.conf"),
        "# previous config\n"
    );
    let root = setup(&Public(PUBLIC.0, PUBLIC.1));
    let out = root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
