//! A node's update slots as a test sees them over SSH: the running root hash, the boot
//! entries, `axoha-update status`, an apply, and the wait for a new slot's blessing; and
//! bundles unpacked, changed and signed again. Shared by the update test and the image
//! test's signed update.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axoha_update::bundle::{write, Manifest, ManifestBase, Payloads, SignedUki};

use crate::demo::sh;
use crate::vm::{wait_until, Ssh, Vm};

/// The running usr slot's root hash, from the node's kernel command line.
pub fn usrhash(ssh: &Ssh) -> String {
    let cmdline = ssh.ok("cat /proc/cmdline");
    cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("usrhash="))
        .unwrap_or_else(|| panic!("no usrhash= in {cmdline}"))
        .to_owned()
}

/// The boot entries on the node's ESP.
pub fn entries(ssh: &Ssh) -> Vec<String> {
    ssh.ok("sudo -n ls /efi/loader/entries")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `axoha-update status --json` on the node.
pub fn status(ssh: &Ssh) -> serde_json::Value {
    serde_json::from_str(&ssh.ok("sudo -n axoha-update status --json")).unwrap()
}

/// `axoha-update status --check`: exit code and line.
pub fn check(ssh: &Ssh) -> (Option<i32>, String) {
    let out = ssh.run("sudo -n axoha-update status --check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

/// The bundle's usrhash, from its manifest (the first tar member).
pub fn bundle_usrhash(bundle: &Path) -> String {
    let out = sh(Command::new("tar")
        .arg("-xOf")
        .arg(bundle)
        .arg("manifest.json"));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["usrhash"].as_str().unwrap().to_owned()
}

/// Copies `bundle` to the node and applies it (no reboot); the bundle is removed after.
pub fn copy_and_apply(ssh: &Ssh, bundle: &Path, extra: &str) {
    ssh.copy(bundle, "/var/tmp/update.axoha-bundle");
    let apply = format!(
        "sudo -n axoha-update apply /var/tmp/update.axoha-bundle {extra} && rm -f /var/tmp/update.axoha-bundle"
    );
    let mut out = ssh.run(&apply);
    // ssh's own failure (255): the connection through QEMU's user network dropped and took
    // the apply with it (seen once in CI, the node itself fine). An apply killed at any point
    // leaves the running slot alone and may simply run again (update/tests/trust.rs kills it
    // at every step), so it runs once more.
    if out.status.code() == Some(255) {
        eprintln!(
            "apply: the SSH connection dropped ({}); applying again",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        assert!(ssh.wait(Duration::from_secs(180)), "ssh after the drop");
        out = ssh.run(&apply);
    }
    assert!(
        out.status.success(),
        "apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the node's running entry has been blessed (no `+TRIES` left in any entry that
/// names the running slot) and it runs `hash`.
pub fn wait_blessed(ssh: &Ssh, hash: &str, vm: &Vm) {
    let blessed = wait_until(Duration::from_secs(300), || {
        ssh.run("true").status.success()
            && usrhash(ssh) == hash
            && ssh
                .run("sudo -n systemctl is-active --quiet systemd-bless-boot.service")
                .status
                .success()
            && !entries(ssh)
                .iter()
                .any(|e| e.contains('+') && !e.contains("+0"))
    });
    assert!(
        blessed,
        "not blessed on {hash}: entries {:?}\nconsole:\n{}",
        entries(ssh),
        vm.console()
    );
}

/// `bundle`'s members unpacked into `dir` (made afresh), and its manifest.
pub fn unpack(bundle: &Path, dir: &Path) -> Manifest {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(bundle)
        .arg("-C")
        .arg(dir));
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The members in `dir` (as [`unpack`] left them, perhaps changed) written to `out` as a
/// bundle of `m`'s image as version `version`, with `kernel_cmdline` instead of `m`'s when
/// given, and signed with the update key `key`. A signed image's bundle keeps its UKI
/// (`linux.efi`) and the db certificate it names.
pub fn repack(
    dir: &Path,
    m: Manifest,
    version: &str,
    kernel_cmdline: Option<&str>,
    key: &Path,
    out: &Path,
) {
    let base = ManifestBase {
        profile: m.profile,
        name: m.name,
        version: version.to_owned(),
        build_key: m.build_key,
        usrhash: m.usrhash,
        kernel_cmdline: kernel_cmdline.map_or(m.kernel_cmdline, str::to_owned),
    };
    let payloads = Payloads {
        usr_img: dir.join("usr.img"),
        usr_verity: dir.join("usr.verity"),
        vmlinuz: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        uki: m.secure_boot.map(|sb| SignedUki {
            path: dir.join("linux.efi"),
            db_certificate_sha256: sb.db_certificate_sha256,
        }),
    };
    write(out, base, &payloads, key).unwrap();
}
