//! The disk's GPT as `sfdisk --json` reports it, and the one change we make to it
//! (`sfdisk --part-uuid`). Parsing is pure; running sfdisk is at the edge.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::slot::Slot;
use crate::usrhash::PartUuid;

#[derive(Deserialize)]
struct SfdiskJson {
    partitiontable: Table,
}

#[derive(Deserialize)]
struct Table {
    label: String,
    #[serde(default = "default_sector")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<RawPartition>,
}

fn default_sector() -> u64 {
    512
}

#[derive(Deserialize)]
struct RawPartition {
    node: String,
    start: u64,
    size: u64,
    uuid: Option<String>,
    name: Option<String>,
}

/// One partition: its number, PARTUUID and byte range on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub uuid: PartUuid,
    pub offset: u64,
    pub bytes: u64,
}

/// The partitions axoha's disk layout names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub esp: Partition,
    pub usr: [Partition; 2],
    pub verity: [Partition; 2],
    pub state: Partition,
}

impl Layout {
    pub fn usr(&self, slot: Slot) -> &Partition {
        &self.usr[slot as usize]
    }

    pub fn verity(&self, slot: Slot) -> &Partition {
        &self.verity[slot as usize]
    }

    /// The slot whose usr partition has `uuid`.
    pub fn slot_of(&self, uuid: PartUuid) -> Option<Slot> {
        [Slot::A, Slot::B]
            .into_iter()
            .find(|s| self.usr(*s).uuid == uuid)
    }
}

/// The partition number at the end of sfdisk's device node name (`/dev/sda4`, `disk.img4`).
fn number(node: &str) -> Result<u32> {
    let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    node[node.len() - digits..]
        .parse()
        .with_context(|| format!("sfdisk partition node {node:?} does not end in its number"))
}

/// The layout from `sfdisk --json` output; every GPT name must be there exactly once.
pub fn parse(json: &[u8], disk: &Path) -> Result<Layout> {
    let parsed: SfdiskJson = serde_json::from_slice(json)
        .with_context(|| format!("reading sfdisk --json output for {}", disk.display()))?;
    let table = parsed.partitiontable;
    if table.label != "gpt" {
        bail!(
            "{} has a {:?} partition table, not GPT",
            disk.display(),
            table.label
        );
    }
    let find = |name: &str| -> Result<Partition> {
        let mut found = table
            .partitions
            .iter()
            .filter(|p| p.name.as_deref() == Some(name));
        let p = found
            .next()
            .with_context(|| format!("{} has no partition named {name:?}", disk.display()))?;
        if found.next().is_some() {
            bail!(
                "{} has more than one partition named {name:?}",
                disk.display()
            );
        }
        let uuid = p
            .uuid
            .as_deref()
            .with_context(|| format!("partition {name:?} of {} has no UUID", disk.display()))?;
        Ok(Partition {
            number: number(&p.node)?,
            uuid: PartUuid::parse(uuid).with_context(|| format!("partition {name:?}"))?,
            offset: p.start * table.sectorsize,
            bytes: p.size * table.sectorsize,
        })
    };
    Ok(Layout {
        esp: find("ESP")?,
        usr: [find(Slot::A.usr_name())?, find(Slot::B.usr_name())?],
        verity: [find(Slot::A.verity_name())?, find(Slot::B.verity_name())?],
        state: find("state")?,
    })
}

/// Runs `sfdisk --json DISK`.
pub fn read(disk: &Path) -> Result<Layout> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .output()
        .context("running sfdisk --json (util-linux)")?;
    if !out.status.success() {
        bail!(
            "sfdisk --json {} failed: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse(&out.stdout, disk)
}

/// Sets partition `number`'s PARTUUID. Works on an image file and on a disk whose other
/// partitions are in use (the kernel keeps its table until the reboot, which is fine: only
/// the next boot looks the new PARTUUIDs up).
pub fn set_partuuid(disk: &Path, number: u32, uuid: PartUuid) -> Result<()> {
    let out = Command::new("sfdisk")
        .arg("--part-uuid")
        .arg(disk)
        .arg(number.to_string())
        .arg(uuid.to_string())
        .output()
        .context("running sfdisk --part-uuid (util-linux)")?;
    if !out.status.success() {
        bail!(
            "sfdisk --part-uuid {} {number} {uuid} failed: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_node_names() {
        assert_eq!(number("/dev/nvme0n1p4").unwrap(), 4);
        assert_eq!(number("disk.img12").unwrap(), 12);
        assert!(number("/dev/x").is_err());
    }
}
