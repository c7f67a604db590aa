//! Applying a node config to a root: the I/O edge.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::log;
use crate::render::network::{self, NetworkBackend};
use crate::render::{RenderedFile, STAMP};
use crate::write::{write_files, Outcome};
use axoha_root::{Last, RootDir, METADATA_MAX};

/// A text file of the image (links followed inside the root); `None` for anything we cannot
/// read as text: missing, a link to /dev/null masking a unit, a directory, too large.
fn image_text(root: &RootDir, rel: &str) -> Option<String> {
    root.read(rel, METADATA_MAX, Last::Follow)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Which network configuration the image uses.
///
/// The builder names it in `/usr/lib/axoha/network` (a debian-12 image may run either
/// daemon); an image made before that file existed has the profile name in
/// `/usr/lib/axoha/profile`; without either (an image not made by us, a test root)
/// `/etc/os-release` decides; else we write no network config.
pub fn network_backend(root: &RootDir) -> Option<NetworkBackend> {
    let text = |rel: &str| image_text(root, rel);
    if let Some(named) = text(network::BACKEND_FILE) {
        match NetworkBackend::from_name(named.trim()) {
            Some(backend) => return Some(backend),
            None => log::warn(&format!(
                "/{} names no network daemon we know ({}); going by the profile",
                network::BACKEND_FILE,
                log::quote(named.trim())
            )),
        }
    }
    if let Some(profile) = text("usr/lib/axoha/profile") {
        let profile = profile.trim();
        if profile.starts_with("debian") {
            return Some(NetworkBackend::Networkd);
        }
        if profile.starts_with("almalinux") || profile.starts_with("rhel") {
            return Some(NetworkBackend::NetworkManager);
        }
    }
    let os_release = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| text(p))?;
    let ids: Vec<&str> = os_release
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .flat_map(|v| v.trim_matches('"').split_whitespace())
        .collect();
    if ids
        .iter()
        .any(|id| matches!(*id, "rhel" | "fedora" | "centos" | "almalinux"))
    {
        Some(NetworkBackend::NetworkManager)
    } else if ids.contains(&"debian") {
        Some(NetworkBackend::Networkd)
    } else {
        None
    }
}

/// A network config for `ha_if` that someone else wrote (cloud-init's network-config,
/// the operator), which we must not fight with a second one.
pub fn configured_elsewhere(root: &RootDir, ha_if: &str) -> Option<PathBuf> {
    let ours = network::all_paths();
    let text = |rel: &str| image_text(root, rel);
    let dirs = [
        ("etc/systemd/network", format!("Name={ha_if}")),
        ("run/systemd/network", format!("Name={ha_if}")),
        (
            "etc/NetworkManager/system-connections",
            format!("interface-name={ha_if}"),
        ),
        ("etc/network/interfaces.d", format!("iface {ha_if} ")),
    ];
    for (dir, needle) in dirs {
        for name in root.list(dir).unwrap_or_default() {
            let rel = format!("{dir}/{name}");
            if ours.contains(&rel.as_str()) {
                continue;
            }
            let mentions = text(&rel).is_some_and(|t| {
                t.lines()
                    .any(|l| l.trim() == needle.trim() || l.starts_with(&needle))
            });
            if mentions {
                return Some(root.shown(&rel));
            }
        }
    }
    let interfaces = "etc/network/interfaces";
    text(interfaces)
        .is_some_and(|t| {
            t.lines()
                .any(|l| l.trim_start().starts_with(&format!("iface {ha_if} ")))
        })
        .then(|| root.shown(interfaces))
}

/// Writes the files, relabels them where SELinux is on, then writes the stamp.
///
/// The stamp is what lets keepalived and axorouter start (their drop-ins have
/// `ConditionPathExists=` on it): it is written only after every other file is in place.
pub fn apply_files(root: &RootDir, files: &[RenderedFile], stamp: &str) -> Result<()> {
    let outcomes = write_files(root, files)?;
    let mut written = Vec::new();
    for o in &outcomes {
        match o {
            Outcome::Written(p) => {
                log::info(&format!("wrote {}", p.display()));
                written.push(p.clone());
            }
            Outcome::Unchanged(p) => log::info(&format!("unchanged {}", p.display())),
        }
    }
    if root.path() == Path::new("/") && !written.is_empty() && selinux_enabled() {
        relabel(&written)?;
    }
    // Last: the stamp says "everything above is in place".
    write_files(
        root,
        &[RenderedFile {
            path: STAMP.into(),
            contents: stamp.into(),
            mode: 0o644,
        }],
    )?;
    Ok(())
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Files made by rename carry the label of their temporary; give them their policy label.
fn relabel(paths: &[PathBuf]) -> Result<()> {
    let status = Command::new("restorecon")
        .arg("-F")
        .args(paths)
        .status()
        .context("running restorecon")?;
    if !status.success() {
        bail!("restorecon failed ({status}) on {paths:?}");
    }
    log::info("relabelled written files (SELinux is enabled)");
    Ok(())
}

pub const SERVICES: [&str; 2] = ["keepalived.service", "axorouter.service"];

/// Restarts keepalived and AxoRouter after a manual re-run and reports whether they came up.
/// (At boot systemd starts them after our unit; see `commands::apply`.)
/// Writes the VIP interface's ARP settings (`render::sysctl`) to /proc/sys now: on the first
/// boot systemd-sysctl ran before the file existed. Kernel state, not a file under the root,
/// so a plain write.
pub fn apply_sysctl(config: &crate::config::NodeConfig) -> Result<()> {
    for (key, value) in crate::render::sysctl::settings(config) {
        let path = Path::new("/proc/sys").join(&key);
        std::fs::write(&path, value)
            .with_context(|| format!("setting {} to {value}", path.display()))?;
    }
    Ok(())
}

pub fn start_services() -> Result<()> {
    let status = Command::new("systemctl")
        .arg("restart")
        .args(SERVICES)
        .status()
        .context("running systemctl to start keepalived and axorouter")?;
    if !status.success() {
        bail!(
            "systemctl could not start {} ({status}); see journalctl -u keepalived -u axorouter",
            SERVICES.join(" and ")
        );
    }
    for unit in SERVICES {
        let active = Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .is_ok_and(|s| s.success());
        if !active {
            bail!("{unit} is not active after start; see journalctl -u {unit}");
        }
    }
    Ok(())
}
