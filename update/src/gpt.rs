//! The disk's GPT as `sfdisk --json` reports it, and the one change we make to it
//! (`sfdisk --part-uuid`). Parsing is pure; running sfdisk is at the edge.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use axoha_boot_contract::layout::{ESP_NAME, STATE_NAME};
use axoha_disk::gpt::Table;

use crate::slot::Slot;
use crate::usrhash::PartUuid;

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

/// The layout from `sfdisk --json` output (the image crate's typed reader); every GPT name
/// of the boot contract must be there exactly once.
pub fn parse(json: &[u8], disk: &Path) -> Result<Layout> {
    let table = axoha_disk::gpt::parse(json)
        .with_context(|| format!("reading sfdisk --json output for {}", disk.display()))?;
    layout(&table, disk)
}

fn layout(table: &Table, disk: &Path) -> Result<Layout> {
    if table.label != "gpt" {
        bail!(
            "{} has a {:?} partition table, not GPT",
            disk.display(),
            table.label
        );
    }
    let find = |name: &str| -> Result<Partition> {
        let mut found = table.partitions.iter().filter(|p| p.name == name);
        let p = found
            .next()
            .with_context(|| format!("{} has no partition named {name:?}", disk.display()))?;
        if found.next().is_some() {
            bail!(
                "{} has more than one partition named {name:?}",
                disk.display()
            );
        }
        if p.uuid.is_empty() {
            bail!("partition {name:?} of {} has no UUID", disk.display());
        }
        Ok(Partition {
            number: p.number,
            uuid: PartUuid::parse(&p.uuid).with_context(|| format!("partition {name:?}"))?,
            offset: p.offset,
            bytes: p.size,
        })
    };
    Ok(Layout {
        esp: find(ESP_NAME)?,
        usr: [find(Slot::A.usr_name())?, find(Slot::B.usr_name())?],
        verity: [find(Slot::A.verity_name())?, find(Slot::B.verity_name())?],
        state: find(STATE_NAME)?,
    })
}

/// Runs `sfdisk --json DISK`.
pub fn read(disk: &Path) -> Result<Layout> {
    layout(&axoha_disk::gpt::read_table(disk)?, disk)
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
