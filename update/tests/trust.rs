//! What an operator can trust of `apply` and `status` on a node emulated in files: older
//! bundles, other appliances and known-bad /usr are refused (each by name, nothing written)
//! unless forced; failures are remembered and reported with an exit code; stale ESP
//! temporaries are removed and a full ESP is refused before any slot byte; a second apply
//! says what it waits for; an apply killed at any step leaves the running entry and slot
//! alone and the next apply succeeds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use axoha_root::RootDir;
use common::*;

/// A refusal naming `expect`, with the disk and the ESP byte-identical.
fn refused(node: &Node, args: &[&str], expect: &str) {
    let before = node.snapshot();
    let out = node.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(expect),
        "{args:?}: expected {expect:?} in:\n{stderr}"
    );
    assert!(
        before == node.snapshot(),
        "{args:?}: the disk or the ESP changed"
    );
}

fn status(node: &Node) -> serde_json::Value {
    serde_json::from_str(&ok(&node.run(&["status", "--json"]))).unwrap()
}

fn check(node: &Node) -> (i32, String) {
    let out = node.run(&["status", "--check"]);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn rename_entry(node: &Node, from: &str, to: &str) {
    let dir = node.esp.join("loader/entries");
    std::fs::rename(dir.join(from), dir.join(to)).unwrap();
}

/// The node rebooted into `usrhash` running image `version`, its entry `from` blessed as
/// `to`.
fn booted_blessed(node: &Node, usrhash: &str, version: &str, from: &str, to: &str) {
    rename_entry(node, from, to);
    node.set_running(usrhash);
    node.set_image("edge", version);
}

#[test]
fn versions_have_an_order_and_a_floor() {
    let node = Node::new();
    let s = status(&node);
    assert_eq!(s["running_version"], "1.0");
    assert_eq!(s["running_name"], "edge");
    assert_eq!(s["running_build_key"], "f".repeat(64));
    assert_eq!(s["outcome"], "ok");
    assert_eq!(check(&node).0, 0);

    let older = node.bundle_of(&hash("b2"), "edge", "0.9");
    refused(
        &node,
        &["apply", older.to_str().unwrap()],
        "bundle edge 0.9 is older than the running edge 1.0 (--allow-downgrade",
    );
    let other = node.bundle_of(&hash("b2"), "core", "5");
    refused(
        &node,
        &["apply", other.to_str().unwrap()],
        "bundle core 5 is for appliance \"core\"; this node runs \"edge\" (--allow-other-name",
    );
    let v3 = node.bundle_of(&hash("b2"), "edge", "3.0");
    ok(&node.run(&["apply", v3.to_str().unwrap()]));
    let s = status(&node);
    assert_eq!(s["other_version"], "edge 3.0");
    assert_eq!(s["floor"], "1.0");
    assert_eq!(s["outcome"], "pending");
    let (code, line) = check(&node);
    assert_eq!(code, 4, "{line}");
    assert!(line.starts_with("update edge 3.0 (usrhash b2b2b2b2b2b2…) waits for a reboot (axoha-2+3.conf, 3 tries left)"), "{line}");

    // Slot b (3.0) booted and blessed: `record` at boot raises the floor to 3.0.
    booted_blessed(&node, &hash("b2"), "3.0", "axoha-2+3.conf", "axoha-2.conf");
    let out = ok(&node.run(&["record"]));
    assert!(
        out.contains("running edge 3.0 (usrhash b2b2b2b2b2b2…) on slot b, blessed"),
        "{out}"
    );
    assert_eq!(status(&node)["floor"], "3.0");
    assert_eq!(status(&node)["other_version"], "edge 1.0");
    // Booted back into slot a (1.0) by hand at the boot menu: 2.0 is newer than what runs
    // but older than the floor.
    node.set_running(&hash("a1"));
    node.set_image("edge", "1.0");
    let v2 = node.bundle_of(&hash("c3"), "edge", "2.0");
    refused(
        &node,
        &["apply", v2.to_str().unwrap()],
        "bundle edge 2.0 is older than this node's floor 3.0",
    );
    let out = ok(&node.run(&["apply", v2.to_str().unwrap(), "--allow-downgrade"]));
    assert!(out.contains("slot b written"), "{out}");
    // Blessed on 2.0, the deliberate way back: the floor follows it down.
    booted_blessed(&node, &hash("c3"), "2.0", "axoha-3+3.conf", "axoha-3.conf");
    ok(&node.run(&["record"]));
    assert_eq!(status(&node)["floor"], "2.0");
    // The other appliance, forced.
    let other = node.bundle_of(&hash("d4"), "core", "5");
    ok(&node.run(&["apply", other.to_str().unwrap(), "--allow-other-name"]));

    // A rebuild of the running version (only the build metadata after `+` differs) is no
    // downgrade.
    let rebuilt = Node::new();
    rebuilt.set_image("edge", "0.1.0+aaaaaaaaaaaa");
    let bundle = rebuilt.bundle_of(&hash("b2"), "edge", "0.1.0+bbbbbbbbbbbb");
    ok(&rebuilt.run(&["apply", bundle.to_str().unwrap()]));
}

#[test]
fn a_failed_update_is_remembered_reported_and_refused() {
    let node = Node::new();
    let bundle = node.bundle(&hash("b2"));
    ok(&node.run(&["apply", bundle.to_str().unwrap()]));
    // Three boots of slot b failed; systemd-boot fell back to slot a.
    rename_entry(&node, "axoha-2+3.conf", "axoha-2+0-3.conf");
    let (code, line) = check(&node);
    assert_eq!(code, 3, "{line}");
    let failed = "update edge 2.0 (usrhash b2b2b2b2b2b2…) failed 3 times (axoha-2+0-3.conf); running edge 1.0 (usrhash a1a1a1a1a1a1…) on slot a";
    assert_eq!(line, failed);
    let out = ok(&node.run(&["record"]));
    assert!(
        out.contains("the update to edge 2.0 (usrhash b2b2b2b2b2b2…) failed 3 times and used up its boot tries; the node fell back to edge 1.0"),
        "{out}"
    );
    // Said once in the persistent log, however often it is recorded.
    ok(&node.run(&["record"]));
    let log = std::fs::read_to_string(node.root.join("var/log/axoha-update.log")).unwrap();
    assert_eq!(log.matches("update edge 2.0").count(), 1, "{log}");
    let human = ok(&node.run(&["status"]));
    assert!(human.starts_with(failed), "{human}");
    assert!(human.contains("failed:  edge 2.0"), "{human}");

    refused(
        &node,
        &["apply", bundle.to_str().unwrap()],
        "failed on this node before: its entry axoha-2+0-3.conf used up 3 boot tries and the node fell back (--retry-failed",
    );
    // Another update: the failure is history (still remembered), the new one pending.
    let next = node.bundle_of(&hash("c3"), "edge", "2.1");
    ok(&node.run(&["apply", next.to_str().unwrap()]));
    assert_eq!(check(&node).0, 4);
    assert_eq!(status(&node)["failed"][0]["entry"], "axoha-2+0-3.conf");
    // Retried deliberately.
    let out = ok(&node.run(&["apply", bundle.to_str().unwrap(), "--retry-failed"]));
    assert!(out.contains("axoha-4+3.conf"), "{out}");
}

/// A tmpfs of `bytes` mounted over a directory for the test's lifetime.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(dir: &std::path::Path, bytes: u64) -> Mounted {
        sh(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("axoha-test-esp")
            .arg(dir));
        Mounted(dir.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn esp_temporaries_are_removed_and_a_full_esp_refused_first() {
    let node = Node::new();
    let stale = [
        "axoha/b/.initrd.img.axoha-new-4242-0123456789abcdef",
        "axoha/a/.vmlinuz.axoha-new-1-fedcba9876543210",
        "loader/entries/.axoha-2+3.conf.axoha-new-77-00000000000000aa",
    ];
    std::fs::create_dir_all(node.esp.join("axoha/b")).unwrap();
    for s in stale {
        std::fs::write(node.esp.join(s), vec![0; 40_000]).unwrap();
    }
    std::fs::write(node.esp.join("axoha/b/.keep"), b"not ours").unwrap();
    let bundle = node.bundle(&hash("b2"));
    let out = ok(&node.run(&["apply", bundle.to_str().unwrap()]));
    for s in stale {
        assert!(!node.esp.join(s).exists(), "{s} left:\n{out}");
        assert!(
            out.contains(&format!("{s} (left by an interrupted apply)")),
            "{out}"
        );
    }
    assert!(node.esp.join("axoha/b/.keep").exists());

    // An ESP with one free 4 KiB page: the kernel and initrd need three more (and the entry).
    let full = Node::new();
    let saved = full.dir.path().join("esp-files");
    sh(Command::new("cp").arg("-a").arg(&full.esp).arg(&saved));
    let _esp = Mounted::tmpfs(&full.esp, 4 * 4096);
    sh(Command::new("cp")
        .arg("-a")
        .arg(saved.join("."))
        .arg(&full.esp));
    let bundle = full.bundle(&hash("b2"));
    let usr_b = partition(&full.disk, "usr-b");
    refused(
        &full,
        &["apply", bundle.to_str().unwrap()],
        &format!(
            "the ESP ({}) has 4096 bytes free (0 more once slot b's old kernel, initrd and UKI are removed); the new kernel, initrd and entry need 16384",
            full.esp.display()
        ),
    );
    assert_eq!(partition(&full.disk, "usr-b"), usr_b);
}

#[test]
fn a_second_apply_says_what_it_waits_for() {
    let node = Node::new();
    let root = RootDir::open(&node.root).unwrap();
    let lock = match root.try_lock("run/lock/axoha-update.lock").unwrap() {
        Ok(lock) => lock,
        Err(holder) => panic!("locked by {holder}"),
    };
    lock.note("PID 1: apply first.axoha-bundle").unwrap();
    let bundle = node.bundle(&hash("b2"));
    let mut child = node
        .command(&["apply", bundle.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for the update lock")
            && line.contains("(held by PID 1: apply first.axoha-bundle)"),
        "{line}"
    );
    // Nothing written while it waits.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!node.esp.join("loader/entries/axoha-2+3.conf").exists());
    drop(lock);
    assert!(child.wait().unwrap().success());
    assert!(node.esp.join("loader/entries/axoha-2+3.conf").exists());
}

/// `axoha-update ARGS` on the node, killed (SIGKILL, by strace) as it enters its `n`th
/// `syscall`; whether it was killed.
fn killed_at(node: &Node, syscall: &str, n: usize, args: &[&str]) -> bool {
    let out = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal=KILL:when={n}"))
        .arg(env!("CARGO_BIN_EXE_axoha-update"))
        .args(node.node_args())
        .args(args)
        .output()
        .unwrap();
    // strace exits with the tracee's status; killed: 128 + 9.
    !out.status.success()
}

#[test]
fn apply_killed_at_every_step() {
    let mut points = 0;
    for syscall in ["unlinkat", "renameat", "renameat2", "fsync", "write"] {
        for n in 1.. {
            assert!(
                n < 500,
                "{syscall}: still killed at #{n}: is strace working?"
            );
            let node = Node::new();
            let entry = std::fs::read(node.esp.join("loader/entries/axoha-1.conf")).unwrap();
            let (a_off, a_len, _) = partition(&node.disk, "usr-a");
            let slot_a = read_at(&node.disk, a_off, a_len as usize);
            let bundle = node.bundle(&hash("b2"));
            if !killed_at(&node, syscall, n, &["apply", bundle.to_str().unwrap()]) {
                break;
            }
            points += 1;
            let at = format!("killed at {syscall} #{n}");
            assert_eq!(
                std::fs::read(node.esp.join("loader/entries/axoha-1.conf")).unwrap(),
                entry,
                "{at}: the running entry changed"
            );
            assert_eq!(
                read_at(&node.disk, a_off, a_len as usize),
                slot_a,
                "{at}: slot a changed"
            );
            // The next apply cleans up after it and succeeds.
            let out = node.run(&["apply", bundle.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{at}: the next apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let names: Vec<String> = walk_names(&node.esp);
            assert!(
                !names.iter().any(|n| n.contains(".axoha-new-")),
                "{at}: temporaries left: {names:?}"
            );
        }
    }
    assert!(points > 20, "only {points} kill points");
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&e.path()));
        }
        out.push(e.path().display().to_string());
    }
    out
}
