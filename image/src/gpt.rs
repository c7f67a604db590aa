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
    /// Total size: partitions aligned from 1 MiB, plus room for the backup GPT. Every step is
    /// checked: a size that does not fit 64 bits is an error, never a wrapped small disk.
    pub fn disk_size(&self) -> Result<u64> {
        let mut lba = ALIGN;
        for p in &self.partitions {
            lba = lba
                .checked_add(aligned_sectors(p)?)
                .with_context(|| overflow(p))?;
        }
        lba.checked_add(ALIGN)
            .and_then(|l| l.checked_mul(SECTOR))
            .context("the disk's size does not fit in 64 bits")
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
            let sectors = aligned_sectors(p)?;
            script.push_str(&format!(
                "start={lba}, size={sectors}, type={}, uuid={}, name=\"{}\"\n",
                p.type_guid, p.uuid, p.name
            ));
            placed.push(Placed {
                offset: lba.checked_mul(SECTOR).with_context(|| overflow(p))?,
                size: sectors.checked_mul(SECTOR).with_context(|| overflow(p))?,
            });
            lba = lba.checked_add(sectors).with_context(|| overflow(p))?;
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

/// A partition as found on an existing disk or disk image (read with `sfdisk --json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its number, 1-based (the end of sfdisk's node name: `/dev/sda4`, `disk.img12`).
    pub number: u32,
    /// Its GPT name; empty when it has none.
    pub name: String,
    /// Its PARTUUID, lower case; empty when sfdisk reports none.
    pub uuid: String,
    /// Its type GUID, upper case.
    pub type_guid: String,
    /// Byte offset and size on the disk.
    pub offset: u64,
    pub size: u64,
}

/// A partition's size in sectors, rounded up to the 1 MiB alignment.
fn aligned_sectors(p: &Partition) -> Result<u64> {
    p.size_bytes
        .div_ceil(SECTOR)
        .div_ceil(ALIGN)
        .checked_mul(ALIGN)
        .with_context(|| overflow(p))
}

fn overflow(p: &Partition) -> String {
    format!(
        "partition {} ({} bytes) does not fit a 64-bit disk size",
        p.name, p.size_bytes
    )
}

/// A partition table as `sfdisk --json` reports it: the one typed reader the builder and
/// the node's updater share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `gpt`, `dos`, ...
    pub label: String,
    pub partitions: Vec<Found>,
}

#[derive(serde::Deserialize)]
struct SfdiskJson {
    partitiontable: RawTable,
}

#[derive(serde::Deserialize)]
struct RawTable {
    label: String,
    #[serde(default = "default_sector")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<RawPartition>,
}

fn default_sector() -> u64 {
    SECTOR
}

#[derive(serde::Deserialize)]
struct RawPartition {
    node: String,
    start: u64,
    size: u64,
    #[serde(rename = "type", default)]
    type_guid: String,
    #[serde(default)]
    uuid: String,
    #[serde(default)]
    name: String,
}

/// The partition number at the end of sfdisk's device node name.
fn number(node: &str) -> Result<u32> {
    let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    node[node.len() - digits..]
        .parse()
        .with_context(|| format!("sfdisk partition node {node:?} does not end in its number"))
}

/// `sfdisk --json` output, typed (pure).
pub fn parse(json: &[u8]) -> Result<Table> {
    let raw: SfdiskJson = serde_json::from_slice(json).context("sfdisk --json output")?;
    let t = raw.partitiontable;
    let partitions = t
        .partitions
        .into_iter()
        .map(|p| {
            let bytes = |sectors: u64, what: &str| {
                sectors.checked_mul(t.sectorsize).with_context(|| {
                    format!("partition {}: {what} {sectors} sectors overflows", p.node)
                })
            };
            Ok(Found {
                number: number(&p.node)?,
                offset: bytes(p.start, "start")?,
                size: bytes(p.size, "size")?,
                name: p.name,
                uuid: p.uuid.to_lowercase(),
                type_guid: p.type_guid.to_uppercase(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Table {
        label: t.label,
        partitions,
    })
}

/// Runs `sfdisk --json DISK` (a block device or an image file).
pub fn read_table(disk: &Path) -> Result<Table> {
    let out = crate::tool::run(command("sfdisk").arg("--json").arg(disk))?;
    parse(&out.stdout).with_context(|| format!("the partition table of {}", disk.display()))
}

/// The partitions of a disk image.
pub fn read(disk: &Path) -> Result<Vec<Found>> {
    Ok(read_table(disk)?.partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sfdisk_json() {
        let json = br#"{"partitiontable": {"label": "gpt", "sectorsize": 512, "partitions": [
            {"node": "/dev/nvme0n1p1", "start": 2048, "size": 524288, "type": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "uuid": "AB-CD", "name": "ESP"},
            {"node": "disk.img12", "start": 4096, "size": 8, "type": "x"}]}}"#;
        let t = parse(json).unwrap();
        assert_eq!(t.label, "gpt");
        assert_eq!(t.partitions[0].number, 1);
        assert_eq!(t.partitions[0].offset, 2048 * 512);
        assert_eq!(t.partitions[0].uuid, "ab-cd");
        assert_eq!(t.partitions[0].type_guid, ESP_TYPE);
        assert_eq!(t.partitions[1].number, 12);
        assert_eq!(t.partitions[1].name, "");
        assert!(parse(br#"{"partitiontable": {"label": "gpt", "partitions": [{"node": "/dev/x", "start": 1, "size": 1}]}}"#).is_err());
        let huge = format!(
            r#"{{"partitiontable": {{"label": "gpt", "partitions": [{{"node": "d1", "start": {}, "size": 1}}]}}}}"#,
            u64::MAX
        );
        assert!(parse(huge.as_bytes()).is_err());
    }
}
