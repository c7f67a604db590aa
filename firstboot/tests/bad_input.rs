//! Bad metadata never crashes and never half-writes: every case below must exit 1, name the
//! key (as spelled in its source) in the error, and leave every file under the root, and in
//! a directory outside it that links point to, as it was.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

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
    /// An OpenStack config drive's `openstack/latest/meta_data.json`.
    ConfigDrive(&'static str),
    /// Arranges the root (given a directory outside it, with a valid `meta-data` and
    /// `cluster.toml` in it) on top of the previous config and the good command line.
    Prepared(fn(&Root, &Path)),
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
    // An IPv4 node's links speak IPv4 only: an IPv6 server is refused, not dropped.
    (Cmdline("dns", "203.0.113.53,2001:db8::53"), "2001:db8::53 is not IPv4"),
    (Cmdline("ntp", "ntp.example.org,2001:db8::123"), "2001:db8::123 is not IPv4"),
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
    // Nothing escapes the root: links to files and directories outside it are resolved
    // inside it (absolute, relative, `..` past the top), so what is outside is never read.
    (Prepared(seed_file_links_outside), "symbolic link"),
    (Prepared(seed_dir_links_outside), "missing role"),
    (Prepared(seed_dir_links_up_and_out), "missing role"),
    (Prepared(cluster_toml_links_outside), "symbolic link"),
    (Prepared(etc_axoha_links_outside), "missing role"),
    (Prepared(instance_data_links_outside), "missing role"),
    (Prepared(cmdline_links_outside), "symbolic link"),
    // Bounded input: regular files only, size caps, nesting depth, UTF-8 where we read.
    (Prepared(seed_is_a_fifo), "not a regular file"),
    (Prepared(seed_is_a_directory), "not a regular file"),
    (Prepared(seed_too_large), "larger than 65536 bytes"),
    (Prepared(cmdline_too_large), "larger than 4096 bytes"),
    (Prepared(seed_not_utf8), "not UTF-8"),
    (Prepared(cmdline_axoha_arg_not_utf8), "not UTF-8"),
    (Prepared(seed_nested_deep_in_ignored_key), "nested"),
    (Prepared(seed_nested_deep_block_style), "nested"),
    (Prepared(instance_data_nested_deep), "nested"),
    (Prepared(cluster_toml_nested_deep), "nested"),
    (Prepared(config_drive_not_utf8), "not UTF-8"),
    (Prepared(config_drive_too_large), "larger than 65536 bytes"),
    (Prepared(config_drive_nested_deep), "nested"),
    (Prepared(config_drive_links_outside), "missing role"),
    // OpenStack config drive: `meta` holds strings, typed like every other source.
    (ConfigDrive(r#"{"meta": {"axoha.vird": "5"}}"#), "axoha.vird"),
    (
        ConfigDrive(r#"{"meta": {"axoha_role": "primary"}}"#),
        "unknown key \"axoha_role\"",
    ),
    (
        ConfigDrive(r#"{"meta": {"axoha.vrid": 51.0}}"#),
        "axoha.vrid: expected an integer",
    ),
    (
        ConfigDrive(r#"{"meta": {"axoha.priority": "0200"}}"#),
        "axoha.priority (meta)",
    ),
    (ConfigDrive(r#"{"meta": {"axoha.peers": [1]}}"#), "axoha.peers"),
    (ConfigDrive(r#"{"meta": ["axoha.role"]}"#), "meta: expected a map"),
    (ConfigDrive(r#"{"hostname": "Router A"}"#), "hostname"),
    (ConfigDrive(r#"{"name": 7}"#), "name: expected a string"),
    (ConfigDrive(r#"{"meta": "#), "config drive"),
    (ConfigDrive("[]"), "expected a JSON object"),
    (
        ConfigDrive(r#"{"meta": {"axoha.vrrp_version": "2", "axoha.auth_pass": "a b"}}"#),
        "auth_pass",
    ),
    // Strict kinds, every source alike.
    (SeedMetaData("axoha:\n  vrid: 51.0\n"), "vrid: expected an integer"),
    (ClusterToml("vrid = 51.0\n"), "vrid: expected an integer"),
    (
        InstanceData(r#"{"ds":{"meta_data":{"axoha":{"vrid":51.0}}}}"#),
        "vrid: expected an integer",
    ),
    (SeedMetaData("axoha:\n  vrid: [51]\n"), "vrid"),
    (SeedMetaData("axoha:\n  vrid: true\n"), "vrid"),
    (SeedMetaData("axoha:\n  priority: \"0200\"\n"), "axoha.priority"),
    (SeedMetaData("axoha:\n  priority: 0200\n"), "axoha.priority"),
    (ClusterToml("[health]\nfall = \"03\"\n"), "health.fall"),
    (SeedMetaData("axoha:\n  priority: 0xc8\n"), "priority"),
    (SeedMetaData("axoha:\n  priority: 0o310\n"), "priority"),
    (SeedMetaData("axoha:\n  priority: +200\n"), "priority"),
    (ClusterToml("[health]\nfall = 0o3\n"), "health.fall"),
    (ClusterToml("[health]\nrise = 0x3\n"), "health.rise"),
    (ClusterToml("[health]\nrise = 1_0\n"), "health.rise"),
    (ClusterToml("advert_int = 2e-1\n"), "advert_int"),
    (SeedMetaData("axoha:\n  priority: {a: 1}\n"), "priority"),
    (ClusterToml("[health]\nfall = true\n"), "health.fall"),
    (ClusterToml("[health]\ninterval = 1.5\n"), "health.interval"),
    (ClusterToml("vrrp_version = [3]\n"), "vrrp_version"),
    (SeedMetaData("axoha:\n  firewall:\n    ssh: 1\n"), "firewall.ssh"),
    (SeedMetaData("axoha:\n  hostname: [router-a]\n"), "hostname"),
    (SeedMetaData("axoha:\n  role: 1\n"), "role"),
    (SeedMetaData("axoha:\n  peers: [192.0.2.11, 1]\n"), "peers"),
    (
        SeedMetaData("axoha:\n  peers: [\"192.0.2.11,192.0.2.12\"]\n"),
        "peers",
    ),
    (ClusterToml("advert_int = true\n"), "advert_int"),
    (ClusterToml("advert_int = 0.001\n"), "advert_int"),
    (Cmdline("vrid", "051"), "axoha.vrid"),
    (Cmdline("priority", "0200"), "axoha.priority"),
    (Cmdline("vrid", "51.0"), "axoha.vrid"),
    // Addresses no node, VIP or peer can have.
    (Cmdline("vip", "198.51.100.0/24"), "network or broadcast"),
    (Cmdline("vip", "198.51.100.255/24"), "network or broadcast"),
    (Cmdline("ha_ip", "192.0.2.0/24"), "axoha.ha_ip"),
    (Cmdline("ha_ip", "169.254.0.10/16"), "link-local"),
    (Cmdline("ha_ip", "fe80::10/64"), "link-local"),
    (Cmdline("vip", "240.0.0.64/24"), "reserved"),
    (Cmdline("vip", "255.255.255.255/32"), "axoha.vip"),
    (Cmdline("peers", "255.255.255.255"), "limited broadcast"),
    (Cmdline("peers", "192.0.2.11,169.254.1.1"), "link-local"),
    (Cmdline("peers", "::ffff:192.0.2.11"), "written as IPv6"),
    (Cmdline("vip", "::ffff:198.51.100.64/120"), "written as IPv6"),
    (Cmdline("peers", "192.0.2.11,192.0.2.255"), "network or broadcast"),
    (Cmdline("peers", "192.0.2.0,192.0.2.12"), "network or broadcast"),
    (
        Cmdline(
            "peers",
            "192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14,192.0.2.15,192.0.2.16,192.0.2.17,192.0.2.18,192.0.2.19",
        ),
        "at most 8",
    ),
    (
        Public("198.51.100.10/24", "198.51.100.11,198.51.100.255"),
        "network or broadcast",
    ),
    (Gateway("255.255.255.255"), "axoha.gateway"),
    (Gateway("169.254.0.1"), "link-local"),
    (Cmdline("dns", "::ffff:203.0.113.53"), "axoha.dns"),
    // Topology that cannot work: VRRP adverts never cross a router.
    (Cmdline("peers", "192.0.2.11,198.51.100.12"), "outside the HA subnet 192.0.2.0/24 of axoha.ha_ip"),
    (Cmdline("peers", "192.0.3.11"), "outside the HA subnet 192.0.2.0/24 of axoha.ha_ip"),
    (Cmdline("ha_ip", "192.0.2.10/30"), "outside the HA subnet 192.0.2.8/30"),
    (Prepared(ipv6_peer_outside), "outside the HA subnet 2001:db8:0:1::/64"),
    // Names: RFC 1123 labels, not an address, settable by sethostname (64 bytes).
    (Cmdline("hostname", SEVENTY_ONE), "axoha.hostname"),
    (Cmdline("hostname", "192.0.2.50"), "axoha.hostname"),
    (Cmdline("hostname", "12345"), "all digits"),
    (Cmdline("hostname", "router.example.123"), "all digits"),
    (Cmdline("hostname", SIXTY_FIVE_DOTTED), "sethostname"),
    (Cmdline("hostname", "a..b"), "axoha.hostname"),
    (Cmdline("hostname", "router."), "axoha.hostname"),
    (Prepared(local_hostname_is_an_address), "hostname"),
    (Cmdline("ntp", "ntp.example.123"), "axoha.ntp"),
    // A byte order mark is dropped at the start only; elsewhere it is a character.
    (
        SeedMetaData("axoha:\n  ntp: \"\u{feff}ntp.example.org\"\n"),
        "axoha.ntp",
    ),
];

/// 71 characters in one label.
const SEVENTY_ONE: &str = "router-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Valid labels, 65 characters in all: one more than the kernel sets.
const SIXTY_FIVE_DOTTED: &str =
    "router-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbb.org";

/// (input, text the error must contain, text it must never contain): what reaches the
/// console and the journal. Values are cut, escaped, and a secret is never shown.
const NEVER_SHOWN: &[(Input, &str, &str)] = &[
    (
        SeedMetaData("axoha:\n  vrrp_version: 2\n  auth_pass: \"hunter2 secret\"\n"),
        "auth_pass (meta-data) = <redacted>",
        "hunter2",
    ),
    (
        SeedMetaData("axoha:\n  vrrp_version: 2\n  auth_pass: \"hunter2isTooLong\"\n"),
        "<redacted>",
        "hunter2",
    ),
    (
        InstanceData(
            r#"{"ds":{"meta_data":{"axoha":{"vrrp_version":2,"auth_pass":"hunter2\u001b"}}}}"#,
        ),
        "<redacted>",
        "hunter2",
    ),
    (Cmdline("auth_pass", "hunter2"), "auth_pass", "hunter2"),
    (
        ConfigDrive(r#"{"meta": {"axoha.vrrp_version": "2", "axoha.auth_pass": "hunter2 x"}}"#),
        "<redacted>",
        "hunter2",
    ),
    (
        Cmdline("hostname", "evil\u{1b}[2K\u{1b}[1Grouter"),
        "axoha.hostname",
        "\u{1b}",
    ),
    (
        Cmdline("role", "x\rFAKE: SUCCESS: configured"),
        "axoha.role",
        "\r",
    ),
    (
        SeedMetaData("axoha:\n  ntp: \"a\\rb\\u2028c\\u202ed\\x9be\"\n"),
        "axoha.ntp",
        "\u{202e}",
    ),
    (
        SeedMetaData("axoha:\n  \"ro\\e[31mle\": primary\n"),
        "meta-data",
        "\u{1b}",
    ),
    (Cmdline("\u{1b}[31mvrid", "5"), "unknown key", "\u{1b}"),
    (Prepared(long_ntp_server), "…", SEVENTY_XS),
    (
        ClusterToml("vrid = 5\nnote = \"the password is hunter2\n"),
        "line 2",
        "hunter2",
    ),
];

/// More of a value than a message may quote.
const SEVENTY_XS: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

const OUTSIDE_SEED: &str =
    "instance-id: outside\naxoha:\n  role: primary\n  vrrp_version: 2\n  auth_pass: outside1\n";

/// The good command line without `axoha.role`: a case that finds no role has read nothing
/// from outside the root.
fn cmdline_without_role(root: &Root) {
    root.write(
        "proc/cmdline",
        &GOOD_CMDLINE.replace(" axoha.role=primary", ""),
    );
}

fn mkdirs(root: &Root, rel: &str) {
    std::fs::create_dir_all(root.path().join(rel)).unwrap();
}

fn seed_file_links_outside(root: &Root, outside: &Path) {
    mkdirs(root, "var/lib/cloud/seed/nocloud");
    symlink(
        outside.join("meta-data"),
        root.path().join("var/lib/cloud/seed/nocloud/meta-data"),
    )
    .unwrap();
}

fn seed_dir_links_outside(root: &Root, outside: &Path) {
    cmdline_without_role(root);
    mkdirs(root, "var/lib/cloud/seed");
    symlink(outside, root.path().join("var/lib/cloud/seed/nocloud")).unwrap();
}

fn seed_dir_links_up_and_out(root: &Root, outside: &Path) {
    cmdline_without_role(root);
    mkdirs(root, "var/lib/cloud/seed");
    let up = "../".repeat(root.path().components().count() + 4);
    symlink(
        format!("{up}{}", outside.display()),
        root.path().join("var/lib/cloud/seed/nocloud"),
    )
    .unwrap();
}

fn cluster_toml_links_outside(root: &Root, outside: &Path) {
    mkdirs(root, "etc/axoha");
    symlink(
        outside.join("cluster.toml"),
        root.path().join("etc/axoha/cluster.toml"),
    )
    .unwrap();
}

fn etc_axoha_links_outside(root: &Root, outside: &Path) {
    cmdline_without_role(root);
    symlink(outside, root.path().join("etc/axoha")).unwrap();
}

fn instance_data_links_outside(root: &Root, outside: &Path) {
    cmdline_without_role(root);
    mkdirs(root, "run");
    let up = "../".repeat(root.path().components().count() + 4);
    symlink(
        format!("{up}{}", outside.display()),
        root.path().join("run/cloud-init"),
    )
    .unwrap();
}

fn cmdline_links_outside(root: &Root, outside: &Path) {
    std::fs::write(outside.join("cmdline"), GOOD_CMDLINE).unwrap();
    std::fs::remove_file(root.path().join("proc/cmdline")).unwrap();
    symlink(outside.join("cmdline"), root.path().join("proc/cmdline")).unwrap();
}

fn ipv6_peer_outside(root: &Root, _: &Path) {
    root.write(
        "proc/cmdline",
        "axoha.role=primary axoha.ha_ip=2001:db8:0:1::10/64 axoha.peers=2001:db8:0:2::11 \
         axoha.vip=2001:db8:0:3::64/64 axoha.ha_if=ha0 axoha.vip_if=pub0 axoha.vrid=51",
    );
}

/// NoCloud's `local-hostname` names the node when the command line does not.
fn local_hostname_is_an_address(root: &Root, _: &Path) {
    root.write(
        "proc/cmdline",
        &GOOD_CMDLINE.replace(" axoha.hostname=router-a", ""),
    );
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: x\nlocal-hostname: 192.0.2.50\n",
    );
}

fn seed_is_a_fifo(root: &Root, _: &Path) {
    mkdirs(root, "var/lib/cloud/seed/nocloud");
    nix::unistd::mkfifo(
        &root.path().join("var/lib/cloud/seed/nocloud/meta-data"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
}

fn seed_is_a_directory(root: &Root, _: &Path) {
    mkdirs(root, "var/lib/cloud/seed/nocloud/meta-data");
}

fn seed_too_large(root: &Root, _: &Path) {
    let comment = format!("# {}\n", "x".repeat(1000));
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        &format!("instance-id: x\n{}", comment.repeat(70)),
    );
}

fn cmdline_too_large(root: &Root, _: &Path) {
    root.write(
        "proc/cmdline",
        &format!("{GOOD_CMDLINE} {}", "quiet ".repeat(700)),
    );
}

fn seed_not_utf8(root: &Root, _: &Path) {
    let path = root.write("var/lib/cloud/seed/nocloud/meta-data", "");
    std::fs::write(path, b"instance-id: x\xff\n").unwrap();
}

fn cmdline_axoha_arg_not_utf8(root: &Root, _: &Path) {
    let mut bytes = GOOD_CMDLINE.as_bytes().to_vec();
    bytes.extend_from_slice(b" axoha.hostname=r\xffa");
    std::fs::write(root.path().join("proc/cmdline"), bytes).unwrap();
}

fn seed_nested_deep_in_ignored_key(root: &Root, _: &Path) {
    let n = 20_000;
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        &format!(
            "instance-id: x\nignored: {}{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
    );
}

fn seed_nested_deep_block_style(root: &Root, _: &Path) {
    let mut text = String::from("instance-id: x\n");
    for depth in 0..60 {
        text.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
    }
    text.push_str(&format!("{}leaf: 1\n", " ".repeat(60)));
    root.write("var/lib/cloud/seed/nocloud/meta-data", &text);
}

fn instance_data_nested_deep(root: &Root, _: &Path) {
    let n = 20_000;
    root.write(
        "run/cloud-init/instance-data.json",
        &format!(r#"{{"v1":{}{},"ds":{{}}}}"#, "[".repeat(n), "]".repeat(n)),
    );
}

fn cluster_toml_nested_deep(root: &Root, _: &Path) {
    let n = 5_000;
    root.write(
        "etc/axoha/cluster.toml",
        &format!(
            "vrid = 5\n# x\n[health]\nfall = {}1{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
    );
}

const CONFIG_DRIVE: &str = "var/lib/cloud/seed/config_drive/openstack/latest/meta_data.json";

fn config_drive_not_utf8(root: &Root, _: &Path) {
    let path = root.write(CONFIG_DRIVE, "");
    std::fs::write(path, b"{\"meta\": {\"axoha.hostname\": \"r\xff\"}}").unwrap();
}

fn config_drive_too_large(root: &Root, _: &Path) {
    root.write(
        CONFIG_DRIVE,
        &format!(r#"{{"random_seed": "{}"}}"#, "x".repeat(70_000)),
    );
}

fn config_drive_nested_deep(root: &Root, _: &Path) {
    let n = 20_000;
    root.write(
        CONFIG_DRIVE,
        &format!(r#"{{"devices": {}{}}}"#, "[".repeat(n), "]".repeat(n)),
    );
}

fn config_drive_links_outside(root: &Root, outside: &Path) {
    cmdline_without_role(root);
    std::fs::create_dir_all(outside.join("openstack/latest")).unwrap();
    std::fs::write(
        outside.join("openstack/latest/meta_data.json"),
        r#"{"meta": {"axoha.role": "primary"}}"#,
    )
    .unwrap();
    mkdirs(root, "var/lib/cloud/seed/config_drive");
    symlink(
        outside.join("openstack"),
        root.path()
            .join("var/lib/cloud/seed/config_drive/openstack"),
    )
    .unwrap();
}

fn long_ntp_server(root: &Root, _: &Path) {
    root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        &format!("axoha:\n  ntp: \"{}_\"\n", "x".repeat(5000)),
    );
}

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

/// A root with the case's input, and a directory outside it.
struct Case {
    root: Root,
    outside: tempfile::TempDir,
}

fn setup(input: &Input) -> Case {
    let root = Root::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("meta-data"), OUTSIDE_SEED).unwrap();
    std::fs::write(outside.path().join("cluster.toml"), "role = \"primary\"\n").unwrap();
    std::fs::write(
        outside.path().join("instance-data.json"),
        r#"{"ds":{"meta_data":{"axoha":{"role":"primary"}}}}"#,
    )
    .unwrap();
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
        ConfigDrive(t) => {
            root.write(CONFIG_DRIVE, t);
        }
        Prepared(prepare) => prepare(&root, outside.path()),
        _ => {}
    }
    Case { root, outside }
}

/// Runs one case; `never` is text the output must not contain.
fn check(i: usize, input: &Input, expect: &str, never: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    let Case { root, outside } = setup(input);
    let outside = Root { dir: outside };
    let before = (root.snapshot(), outside.snapshot());
    let started = std::time::Instant::now();
    let out = root.run("apply", &["--no-start"]);
    let err = stderr(&out);
    let after = (root.snapshot(), outside.snapshot());
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
    if let Some(never) = never {
        if err.contains(never) || common::stdout(&out).contains(never) {
            failures.push(format!("case {i}: the output shows {never:?}: {err:?}"));
        }
    }
    // Only the console's own characters: no escape, carriage return or bidi override.
    if let Some(c) = err
        .chars()
        .find(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
    {
        failures.push(format!("case {i}: stderr holds {c:?}: {err:?}"));
    }
    if err.lines().count() > 2 {
        failures.push(format!("case {i}: more than two lines: {err:?}"));
    }
    if started.elapsed() > std::time::Duration::from_secs(5) {
        failures.push(format!("case {i}: took {:?}", started.elapsed()));
    }
    if before.0 != after.0 {
        failures.push(format!("case {i}: the root changed"));
    }
    if before.1 != after.1 {
        failures.push(format!("case {i}: the directory outside the root changed"));
    }
    failures
}

#[test]
fn every_bad_input_is_refused_by_name_and_changes_nothing() {
    assert!(CASES.len() >= 40, "the table keeps at least 40 cases");
    let failures: Vec<String> = CASES
        .iter()
        .enumerate()
        .flat_map(|(i, (input, expect))| check(i, input, expect, None))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nothing_secret_or_unsafe_reaches_the_console() {
    let failures: Vec<String> = NEVER_SHOWN
        .iter()
        .enumerate()
        .flat_map(|(i, (input, expect, never))| check(i, input, expect, Some(never)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_input_of_the_table_is_accepted() {
    // Guards the table: its cases fail because of their one change, not the base input.
    let case = setup(&Cmdline("role", "primary"));
    let out = case.root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(
        case.root.read("etc/keepalived/keepalived.conf"),
        "# previous config\n"
    );
    let case = setup(&Public(PUBLIC.0, PUBLIC.1));
    let out = case.root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Valid inputs at the edges of the rules above must still pass.
#[test]
fn valid_edge_cases_are_accepted() {
    let label63 = format!("r{}", "a".repeat(62));
    let sixty_four = format!("{}.{}.org", "a".repeat(30), "b".repeat(29));
    assert_eq!(sixty_four.len(), 64);
    for hostname in [label63.as_str(), &sixty_four, "1router.example.org", "r"] {
        let case = setup(&Cmdline("hostname", "x"));
        case.root.write(
            "proc/cmdline",
            &GOOD_CMDLINE.replace(
                "axoha.hostname=router-a",
                &format!("axoha.hostname={hostname}"),
            ),
        );
        let out = case.root.run("apply", &["--no-start"]);
        assert!(out.status.success(), "{hostname}: {}", stderr(&out));
        assert_eq!(case.root.read("etc/hostname"), format!("{hostname}\n"));
    }
    for input in [
        Cmdline("peers", "192.0.2.254"),
        Cmdline("ha_ip", "192.0.2.10/25"),
        Cmdline("ntp", "ntp1.example.org,2.pool.example.net"),
    ] {
        let case = setup(&input);
        let out = case.root.run("apply", &["--no-start"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // IPv6 peers inside ha_ip's /64, and a seed that starts with a byte order mark.
    let case = setup(&Cmdline("role", "primary"));
    case.root.write(
        "proc/cmdline",
        "axoha.ha_ip=2001:db8:0:1::10/64 axoha.peers=2001:db8:0:1::11,2001:db8:0:1:ffff::12 \
         axoha.vip=2001:db8:0:3::64/64 axoha.ha_if=ha0 axoha.vip_if=pub0 axoha.vrid=51",
    );
    case.root.write(
        "var/lib/cloud/seed/nocloud/meta-data",
        "\u{feff}instance-id: x\nlocal-hostname: router-v6\naxoha:\n  role: primary\n",
    );
    let out = case.root.run("apply", &["--no-start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(case.root.read("etc/hostname"), "router-v6\n");
}
