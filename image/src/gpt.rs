//! The partition table: GPT written by `sfdisk` onto a plain (sparse) file, with GUIDs
//! derived from the build seed.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::tool::command;

pub const SECTOR: u64 = 512;
/// 1 MiB alignment, as every partitioning tool does.
pub const ALIGN: u64 = 2048;
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Discoverable Partitions Specification: root partition, x86-64.
pub const ROOT_X86_64_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
/// Discoverable Partitions Specification: /usr partition, x86-64.
pub const USR_X86_64_TYPE: &str = "8484680C-9521-48C6-9C11-B0720656F69E";
/// Discoverable Partitions Specification: /usr verity partition, x86-64.
pub const USR_X86_64_VERITY_TYPE: &str = "77FF5F63-E7B6-4633-ACF4-1565B864C0E6";

pub struct Partition {
    pub name: &'static str,
    pub type_guid: &'static str,
    pub uuid: String,
    pub size_bytes: u64,
}

pub struct Layout {
    pub disk_guid: String,
    pub partitions: Vec<Partition>,
}

/// Where each partition landed, in bytes from the disk's start.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    pub offset: u64,
    pub size: u64,
}

impl Layout {
    /// Total size: partitions aligned from 1 MiB, plus room for the backup GPT.
    pub fn disk_size(&self) -> u64 {
        let mut lba = ALIGN;
        for p in &self.partitions {
            lba += p.size_bytes.div_ceil(SECTOR).div_ceil(ALIGN) * ALIGN;
        }
        (lba + ALIGN) * SECTOR
    }

    /// Writes the GPT into `disk` (which must already have `disk_size()` bytes).
    pub fn write(&self, disk: &Path) -> Result<Vec<Placed>> {
        let mut script = format!(
            "label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: {ALIGN}\n",
            self.disk_guid
        );
        let mut lba = ALIGN;
        let mut placed = Vec::new();
        for p in &self.partitions {
            let sectors = p.size_bytes.div_ceil(SECTOR).div_ceil(ALIGN) * ALIGN;
            script.push_str(&format!(
                "start={lba}, size={sectors}, type={}, uuid={}, name=\"{}\"\n",
                p.type_guid, p.uuid, p.name
            ));
            placed.push(Placed {
                offset: lba * SECTOR,
                size: sectors * SECTOR,
            });
            lba += sectors;
        }
        let mut child = command("sfdisk")
            .args([
                "--quiet",
                "--no-reread",
                "--no-tell-kernel",
                "--wipe",
                "always",
            ])
            .arg(disk)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sfdisk")?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())
            .context("writing the sfdisk script")?;
        let out = child.wait_with_output().context("waiting for sfdisk")?;
        if !out.status.success() {
            bail!("sfdisk failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(placed)
    }
}

/// A partition as found on an existing disk image (read with `sfdisk --json`).
#[derive(Debug, Clone)]
pub struct Found {
    pub name: String,
    pub uuid: String,
    pub type_guid: String,
    pub offset: u64,
    pub size: u64,
}

pub fn read(disk: &Path) -> Result<Vec<Found>> {
    let out = crate::tool::run(command("sfdisk").arg("--json").arg(disk))?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("sfdisk --json output")?;
    let parts = v["partitiontable"]["partitions"]
        .as_array()
        .context("no partitions in the disk image")?;
    Ok(parts
        .iter()
        .map(|p| Found {
            name: p["name"].as_str().unwrap_or("").to_owned(),
            uuid: p["uuid"].as_str().unwrap_or("").to_lowercase(),
            type_guid: p["type"].as_str().unwrap_or("").to_uppercase(),
            offset: p["start"].as_u64().unwrap_or(0) * SECTOR,
            size: p["size"].as_u64().unwrap_or(0) * SECTOR,
        })
        .collect())
}
