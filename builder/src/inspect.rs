//! `axoha-image inspect IMAGE`: reads the image's own manifest out of slot A's /usr squashfs
//! (unsquashfs at the partition's offset) and the enabled units out of the state partition
//! (debugfs), without mounting anything.

use std::path::Path;

use anyhow::{Context, Result};

use axoha_disk::gpt::{self, ROOT_X86_64_TYPE, USR_X86_64_TYPE};
use axoha_disk::{ext4, qcow2, squashfs};

use crate::manifest::Manifest;

/// The raw bytes of a disk image: qcow2 is converted to a temporary sparse raw first.
pub struct RawView {
    _tmp: Option<tempfile::TempDir>,
    pub path: std::path::PathBuf,
}

pub fn raw_view(image: &Path) -> Result<RawView> {
    let is_qcow2 = std::fs::read(image)
        .map(|b| b.starts_with(b"QFI\xfb"))
        .with_context(|| format!("reading {}", image.display()))?;
    if !is_qcow2 {
        return Ok(RawView {
            _tmp: None,
            path: image.to_owned(),
        });
    }
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("disk.raw");
    qcow2::to_raw(image, &path)?;
    Ok(RawView {
        _tmp: Some(tmp),
        path,
    })
}

/// The state partition (ext4, `/`): the x86-64 root type, the disk's last partition.
pub fn state_offset(raw: &Path) -> Result<u64> {
    gpt::read(raw)?
        .into_iter()
        .find(|p| p.type_guid == ROOT_X86_64_TYPE)
        .map(|p| p.offset)
        .context("no state partition (x86-64 root type) in the image")
}

/// Slot A's /usr partition (squashfs), by its GPT name.
pub fn usr_a_offset(raw: &Path) -> Result<u64> {
    gpt::read(raw)?
        .into_iter()
        .find(|p| p.type_guid == USR_X86_64_TYPE && p.name == "usr-a")
        .map(|p| p.offset)
        .context("no usr-a partition in the image (not an image of this axoha-image?)")
}

pub fn inspect(image: &Path) -> Result<String> {
    let raw = raw_view(image)?;
    let offset = state_offset(&raw.path)?;
    let json = squashfs::read_file(
        &raw.path,
        usr_a_offset(&raw.path)?,
        "/lib/axoha/manifest.json",
    )?;
    let m: Manifest =
        serde_json::from_slice(&json).context("the image's /usr/lib/axoha/manifest.json")?;
    let wants = ext4::debugfs(
        &raw.path,
        offset,
        "ls /etc/systemd/system/multi-user.target.wants",
    )?;
    let mut out = format!(
        "image: {}\nname: {}{}\nprofile: {}\n",
        image.display(),
        m.name,
        if m.demo {
            " (DEMO: stand-in AxoRouter)"
        } else {
            ""
        },
        m.profile
    );
    let inputs = &m.inputs;
    if let Some(level) = inputs["cpu_level"].as_str() {
        out.push_str(&format!("cpu: {level} or later\n"));
    }
    out.push_str(&format!(
        "axorouter: {} {}\nsource_date_epoch: {}\nbuild_key: {}\n",
        inputs["axorouter"]["name"].as_str().unwrap_or("?"),
        inputs["axorouter"]["version"].as_str().unwrap_or("?"),
        inputs["source_date_epoch"],
        inputs["build_key"].as_str().unwrap_or("?")
    ));
    out.push_str(&match inputs.get("secure_boot") {
        Some(sb) if sb["signed"] == true => format!(
            "secure boot: signed for db certificate {} (sha256 {})\n\
             secure boot key enrolment from the ESP: {}\n",
            sb["db_certificate_subject"].as_str().unwrap_or("?"),
            sb["db_certificate_sha256"].as_str().unwrap_or("?"),
            match sb["enrol"].as_str().unwrap_or("off") {
                "manual" => "manual (systemd-boot's menu offers it in Setup Mode)",
                "force" => "force (systemd-boot enrols the set in Setup Mode)",
                _ => "off",
            }
        ),
        _ => "secure boot: unsigned (boots with Secure Boot off)\n".to_owned(),
    });
    for wanted in [
        "keepalived",
        "firewalld",
        "systemd",
        "linux-image-amd64",
        "kernel",
        "axorouter",
    ] {
        if let Some(p) = m.packages.iter().find(|p| p.name == wanted) {
            out.push_str(&format!("package: {} {}\n", p.name, p.version));
        }
    }
    out.push_str(&format!("packages: {} installed\n", m.packages.len()));
    let mut units: Vec<&str> = wants
        .split_whitespace()
        .filter(|w| w.ends_with(".service") || w.ends_with(".target"))
        .collect();
    units.sort();
    units.dedup();
    out.push_str(&format!(
        "enabled (multi-user.target.wants): {}\n",
        units.join(" ")
    ));
    Ok(out)
}
