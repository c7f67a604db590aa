//! The OpenStack metadata service as first boot meets it: `meta_data.json` served from
//! 169.254.169.254 by Python's http.server in a namespace of its own (like Neutron's metadata
//! namespace, which owns that address on the instance's network), and `axoha-firstboot` run in
//! a node namespace whose only link leads there. Neither namespace has a route out, and only
//! documentation addresses besides the link-local service address.
//!
//! Asserted: the node is configured from the service, and later runs read what it gave from
//! the node (not the network); a document that is too large, of the
//! wrong kinds, or carries a secret is refused by name with nothing written; a 404 or a port
//! nobody answers on is taken as no service after the bounded wait (the missing keys named);
//! and a node whose config drive answered never asks the service (the server logs no request).
//! A fresh node (link down, no address), as first boot finds it: it sets the link up, leases
//! an address from dnsmasq (with Neutron's option 121 route to the service), reads the
//! document and gives the address and route back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use axoha_tests::netns::{veth, Namespace};

const SERVICE: &str = "169.254.169.254";
const DOC: &str = "openstack/latest/meta_data.json";

/// A Nova-shaped document for a secondary whose every key comes from `meta`.
const GOOD: &str = r#"{"uuid": "0a1b2c3d-0000-4000-8000-000000000002", "name": "Router B",
  "hostname": "router-b", "launch_index": 0, "availability_zone": "nova",
  "public_keys": {"ops": "ssh-ed25519 AAAA ops"},
  "meta": {"axoha.role": "secondary", "axoha.ha_ip": "192.0.2.11/24",
           "axoha.peers": "192.0.2.10", "axoha.vip": "198.51.100.64/24",
           "axoha.ha_if": "eth0", "axoha.vip_if": "eth1", "axoha.vrid": "51",
           "axoha.health.fall": "3", "heat_stack_id": "not ours"}}"#;

/// The service's namespace and the node's, joined by one veth; the servers' processes.
struct Net {
    node: Namespace,
    service: Namespace,
    /// Each server with its log file (http.server first).
    servers: Vec<(Child, PathBuf)>,
}

impl Drop for Net {
    fn drop(&mut self) {
        // Ours, by PID (`ip netns exec` execs the server, so this is the server itself).
        for (child, _) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The node with `192.0.2.20/24` and Neutron's host route to the service (what its DHCP
/// would have given it), or, `fresh`, with its link down and no address at all.
fn net(tag: &str, docs: &Path, fresh: bool) -> Net {
    axoha_tests::require_root().unwrap();
    let node = Namespace::create(tag, "node").unwrap();
    let service = Namespace::create(tag, "mds").unwrap();
    veth(&node, "eth0", &service, "mds0").unwrap();
    if fresh {
        node.ip(&["link", "set", "eth0", "down"]).unwrap();
    } else {
        node.ip(&["addr", "add", "192.0.2.20/24", "dev", "eth0"])
            .unwrap();
        // No default route: nothing leaves these two namespaces.
        node.ip(&["route", "add", &format!("{SERVICE}/32"), "via", "192.0.2.1"])
            .unwrap();
    }
    service
        .ip(&["addr", "add", "192.0.2.1/24", "dev", "mds0"])
        .unwrap();
    service
        .ip(&["addr", "add", &format!("{SERVICE}/32"), "dev", "mds0"])
        .unwrap();
    let mut net = Net {
        node,
        service,
        servers: Vec::new(),
    };
    let mut http = net.service.exec("python3");
    http.args(["-u", "-m", "http.server", "--bind", SERVICE, "--directory"])
        .arg(docs)
        .arg("80");
    net.start(http, &docs.with_extension("http.log"), "Serving HTTP");
    net
}

impl Net {
    fn start(&mut self, mut cmd: std::process::Command, log: &Path, ready: &str) {
        let out = File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.servers.push((child, log.to_owned()));
        let (child, _) = self.servers.last_mut().unwrap();
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains(ready) {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{cmd:?} exited ({status}): {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{cmd:?} did not say {ready:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// dnsmasq as Neutron's DHCP agent: addresses on the node's network and option 121's
    /// host route to the service via the metadata port (192.0.2.1).
    fn start_dhcp(&mut self, work: &Path) {
        let mut cmd = self.service.exec("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--interface=mds0",
            "--bind-interfaces",
            "--dhcp-range=192.0.2.50,192.0.2.59,255.255.255.0,2m",
            "--dhcp-option=option:classless-static-route,169.254.169.254/32,192.0.2.1",
            "--log-facility=-",
            "--log-dhcp",
        ])
        .arg(format!(
            "--dhcp-leasefile={}",
            work.join("leases").display()
        ))
        .arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()));
        self.start(cmd, &work.join("dnsmasq.log"), "DHCP, IP range");
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.servers[i].1).unwrap_or_default()
    }

    fn server_log(&self) -> String {
        self.log(0)
    }

    /// `axoha-firstboot SUB --root ROOT --cmdline (empty) --metadata-url URL ...` in the node.
    fn firstboot(&self, root: &Path, sub: &str, path: &str, extra: &[&str]) -> Output {
        let bin = axoha_tests::firstboot::binary().unwrap();
        let cmdline = root.join("cmdline");
        std::fs::write(&cmdline, "BOOT_IMAGE=/vmlinuz ro console=ttyS0\n").unwrap();
        self.node
            .exec(bin.to_str().unwrap())
            .arg(sub)
            .arg("--root")
            .arg(root)
            .arg("--cmdline")
            .arg(&cmdline)
            .arg("--metadata-url")
            .arg(format!("http://{SERVICE}{path}"))
            .args(extra)
            .output()
            .unwrap()
    }
}

fn write(dir: &Path, rel: &str, contents: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir`, to show nothing was written.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn first_boot_reads_the_metadata_service_and_refuses_bad_answers_by_name() {
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    write(&docs, &format!("good/{DOC}"), GOOD.as_bytes());
    let huge = format!(r#"{{"random_seed": "{}"}}"#, "x".repeat(100_000));
    let bad: [(&str, String, &str); 6] = [
        ("huge", huge, "larger than 65536 bytes"),
        (
            "kinds",
            r#"{"meta": {"axoha.vrid": [51]}}"#.into(),
            "axoha.vrid: expected an integer, not a list",
        ),
        (
            "unknown",
            r#"{"meta": {"axoha.vird": "51"}}"#.into(),
            "unknown key \"axoha.vird\"",
        ),
        (
            "secret",
            r#"{"meta": {"axoha.vrrp_version": "2", "axoha.auth_pass": "hunter2"}}"#.into(),
            "auth_pass is not accepted",
        ),
        (
            "typed",
            GOOD.replace("\"51\"", "\"0x33\""),
            "axoha.vrid (meta) = \"0x33\"",
        ),
        (
            "json",
            r#"{"meta": {"axoha.role": "#.into(),
            "metadata service",
        ),
    ];
    for (name, doc, _) in &bad {
        write(&docs, &format!("{name}/{DOC}"), doc.as_bytes());
    }
    write(&docs, &format!("binary/{DOC}"), b"{\"name\": \"r\xff\"}");
    let net = net("mds", &docs, false);

    // A good document configures the node; every value says where it came from.
    let root = work.path().join("good-root");
    std::fs::create_dir(&root).unwrap();
    let out = net.firstboot(&root, "apply", &format!("/good/{DOC}"), &["--no-start"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("axoha.role (meta) = \"secondary\" from OpenStack metadata service"),
        "{log}"
    );
    assert!(
        log.contains("SUCCESS: configured router-b secondary"),
        "{log}"
    );
    let conf = std::fs::read_to_string(root.join("etc/keepalived/keepalived.conf")).unwrap();
    assert!(conf.contains("router_id router-b"), "{conf}");
    assert!(conf.contains("fall 3"), "{conf}");
    assert!(
        net.server_log()
            .contains(&format!("\"GET /good/{DOC} HTTP/1.0\" 200")),
        "{}",
        net.server_log()
    );

    // What the service gave is kept: later runs (status, watch, apply --force) read it, not
    // the network.
    let kept = std::fs::read_to_string(root.join("var/lib/axoha/metadata-service.json")).unwrap();
    assert!(kept.contains("\"axoha.role\": \"secondary\""), "{kept}");
    let asked = net.server_log().matches("GET ").count();
    let out = net.firstboot(&root, "render", &format!("/absent/{DOC}"), &["--explain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("role = secondary  <- OpenStack metadata service"),
        "{log}"
    );
    assert_eq!(
        net.server_log().matches("GET ").count(),
        asked,
        "{}",
        net.server_log()
    );

    // Bad answers: refused by name, exit 1, nothing written.
    let mut cases: Vec<(String, &str)> = bad
        .iter()
        .map(|(n, _, why)| (n.to_string(), *why))
        .collect();
    cases.push(("binary".into(), "not UTF-8"));
    for (name, why) in cases {
        let root = work.path().join(format!("{name}-root"));
        std::fs::create_dir(&root).unwrap();
        let out = net.firstboot(&root, "apply", &format!("/{name}/{DOC}"), &["--no-start"]);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {log}");
        assert!(log.contains(why), "{name}: want {why:?} in {log}");
        assert!(
            !log.contains("hunter2"),
            "{name}: a secret was shown: {log}"
        );
        assert_eq!(files(&root), vec![root.join("cmdline")], "{name}: {log}");
    }

    // No document (404) and no server (nothing listens on port 81): no service, after the
    // bounded wait, and the missing keys are named as on any other boot.
    for (name, path, waited) in [
        ("absent", format!("/absent/{DOC}"), "404"),
        ("refused", format!(":81/{DOC}"), "no answer after"),
    ] {
        let root = work.path().join(format!("{name}-root"));
        std::fs::create_dir(&root).unwrap();
        let started = Instant::now();
        let out = net.firstboot(&root, "check", &path, &["--metadata-wait", "2"]);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {log}");
        assert!(
            log.contains(waited) && log.contains("missing role"),
            "{name}: {log}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: bounded wait"
        );
    }

    // A node whose config drive answered never asks the service.
    let root = work.path().join("drive-root");
    write(
        &root,
        &format!("var/lib/cloud/seed/config_drive/{DOC}"),
        GOOD.replace("router-b", "router-c").as_bytes(),
    );
    let before = net.server_log().matches("GET ").count();
    let out = net.firstboot(&root, "render", "/good/never-asked", &["--explain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("role = secondary  <- OpenStack config drive"),
        "{log}"
    );
    assert_eq!(
        net.server_log().matches("GET ").count(),
        before,
        "the service was asked although the config drive answered: {}",
        net.server_log()
    );
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn a_fresh_node_leases_an_address_for_the_service_and_gives_it_back() {
    let work = tempfile::tempdir().unwrap();
    let docs = work.path().join("docs");
    write(&docs, DOC, GOOD.as_bytes());
    let mut net = net("mdl", &docs, true);
    net.start_dhcp(work.path());
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = net.firstboot(
        &root,
        "apply",
        &format!("/{DOC}"),
        &["--no-start", "--metadata-links"],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}\n{}", net.log(1));
    assert!(
        log.contains("DHCP lease 192.0.2.5") && log.contains("via 192.0.2.1"),
        "{log}"
    );
    assert!(log.contains("from OpenStack metadata service"), "{log}");
    assert!(
        net.log(1).contains("DHCPACK(mds0) 192.0.2.5"),
        "{}",
        net.log(1)
    );
    // The link stays up for the network configuration; the lease and its route are gone.
    let link = net.node.ip(&["-o", "link", "show", "eth0"]).unwrap();
    assert!(link.contains(",UP"), "{link}");
    let addrs = net
        .node
        .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(addrs.trim().is_empty(), "the lease was left: {addrs}");
    let routes = net
        .node
        .ip(&["-4", "route", "show", "table", "all"])
        .unwrap();
    assert!(!routes.contains(SERVICE), "the route was left: {routes}");
}
