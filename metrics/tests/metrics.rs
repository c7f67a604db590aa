//! `axoha-metrics`: one scrape says what `axoha-update status` and the notify script's
//! records say, in a format `promtool check metrics` accepts; the server answers while slow
//! clients hold connections open, refuses at once when full, and times the slow ones out.
//! Everything on 127.0.0.1; the node is a test root (no live sources are read).

// The updater's test node: a disk image, an ESP and a root, as `axoha-update status` reads
// them.
#[path = "../../update/tests/common/node.rs"]
mod node;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::{ok, Node};

/// router-a of a pair, all on its root's kernel command line (firstboot's sources).
const CMDLINE: &str = "BOOT_IMAGE=/vmlinuz ro console=ttyS0 axoha.role=primary \
    axoha.ha_ip=192.0.2.10/24 axoha.peers=192.0.2.11 axoha.vip=198.51.100.64/24 \
    axoha.ha_if=ha0 axoha.vip_if=pub0 axoha.vrid=51 axoha.hostname=router-a\n";

/// A configured node whose keepalived went BACKUP then MASTER (three transitions counted),
/// and whose last update kept one /etc file; the notify script's directory beside the root.
fn configured() -> (Node, PathBuf) {
    let node = Node::new();
    let w = |rel: &str, text: &str| {
        let p = node.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("proc/cmdline", CMDLINE);
    w("var/lib/axoha/firstboot.done", "done\n");
    w("var/lib/axoha/etc-kept", "/etc/chrony/chrony.conf\n");
    let run = node.dir.path().join("run-axoha");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(
        run.join("transitions"),
        "2026-11-26T10:00:00.000Z axoha BACKUP 254\n\
         2026-11-26T10:00:04.500Z axoha MASTER 254\n",
    )
    .unwrap();
    std::fs::write(run.join("counts"), "axoha 3\n").unwrap();
    (node, run)
}

/// `axoha-metrics ARGS` on this node, not yet started.
fn metrics(node: &Node, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axoha-metrics"));
    cmd.args(node.node_args()).args(args);
    cmd
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

#[test]
fn one_scrape_says_what_status_says() {
    let (node, run) = configured();
    let text = ok(&metrics(&node, &["--run-dir", run.to_str().unwrap()])
        .output()
        .unwrap());
    promtool_check(&text);
    has(&text, "axoha_first_boot_done 1");
    has(
        &text,
        r#"axoha_node_info{node="router-a",role="primary",vip="198.51.100.64/24"} 1"#,
    );
    has(
        &text,
        r#"axoha_vrrp_state{state="MASTER",vrrp_instance="axoha"} 1"#,
    );
    has(
        &text,
        r#"axoha_vrrp_state{state="BACKUP",vrrp_instance="axoha"} 0"#,
    );
    has(
        &text,
        r#"axoha_vrrp_transitions_total{vrrp_instance="axoha"} 3"#,
    );
    has(
        &text,
        r#"axoha_vrrp_last_transition_timestamp_seconds{vrrp_instance="axoha"} 1795687204.5"#,
    );
    has(&text, "axoha_etc_kept_files 1");
    has(&text, "axoha_update_rolled_back 0");
    has(&text, r#"axoha_update_outcome{outcome="ok"} 1"#);
    has(&text, r#"axoha_read_ok{part="update"} 1"#);
    // The image as `axoha-update status --json` says it (the same function, serialized).
    let status =
        serde_json::to_value(axoha_update::status::gather(&node.paths()).unwrap()).unwrap();
    has(
        &text,
        &format!(
            r#"axoha_image_info{{build_key="{}",name="{}",slot="{}",version="{}"}} 1"#,
            status["running_build_key"].as_str().unwrap(),
            status["running_name"].as_str().unwrap(),
            status["running_slot"].as_str().unwrap(),
            status["running_version"].as_str().unwrap(),
        ),
    );
    assert_eq!(
        status["etc_kept"],
        serde_json::json!(["/etc/chrony/chrony.conf"])
    );
    // The banner: the same facts for the console.
    let banner = ok(&metrics(
        &node,
        &["--print-banner", "--run-dir", run.to_str().unwrap()],
    )
    .output()
    .unwrap());
    assert!(
        banner.contains("router-a (primary), VRRP MASTER")
            && banner.contains("edge 1.0 (slot a); update: ok")
            && banner.contains("metrics: http://192.0.2.10:9650/metrics (from 192.0.2.0/24)"),
        "{banner}"
    );
}

/// The server, killed (by its PID) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn slow_clients_hold_up_nobody() {
    let (node, run) = configured();
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _server = Server(
        metrics(
            &node,
            &[
                "--serve",
                "--listen",
                &addr.to_string(),
                "--run-dir",
                run.to_str().unwrap(),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let up = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(up.elapsed() < Duration::from_secs(20), "server not up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Seven clients that connect and say nothing hold seven of the eight workers...
    let idle: Vec<TcpStream> = (0..7).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let answer = get(addr);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("axoha_first_boot_done 1"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // ...and with more open than the workers and the queue take, the next one hears 503 at once.
    let more: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let answer = get(addr);
    assert!(
        answer.starts_with("HTTP/1.1 503 "),
        "after {:?}: {answer}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The silent ones are cut off after the timeout (408), and scrapes are answered again.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cut = String::new();
    let _ = first.read_to_string(&mut cut);
    assert!(cut.starts_with("HTTP/1.1 408 "), "{cut}");
    drop(more);
    let back = Instant::now();
    loop {
        let answer = get(addr);
        if answer.starts_with("HTTP/1.1 200 OK\r\n") {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(20), "{answer}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// docs/alerts.rules.yml is valid and its alerts fire on docs/alerts.test.yml's recorded
/// series when they should, and not before.
#[test]
fn alert_rules_pass_promtool() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    for args in [
        &["check", "rules", "alerts.rules.yml"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&docs)
            .output()
            .expect("promtool (Debian package prometheus; scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
