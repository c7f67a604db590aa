//! The EFI system partition: FAT32 made by `mkfs.vfat --invariant` and filled by
//! `mcopy -s -m` from a staged tree whose times are clamped, so its bytes are reproducible.

use std::path::Path;

use anyhow::{Context, Result};

use crate::ext4::{clamp_times, walk};
use crate::tool::{command, run};

pub struct Esp {
    pub volume_id: String,
    pub size_bytes: u64,
    pub epoch: i64,
}

impl Esp {
    /// Builds the ESP holding the contents of `tree` (EFI/, loader/, kernel, initrd) directly
    /// into `disk` at byte `offset`.
    pub fn build(&self, tree: &Path, disk: &Path, offset: u64) -> Result<()> {
        let paths = walk(tree)?;
        clamp_times(tree, &paths, self.epoch)?;
        run(command("mkfs.vfat")
            .args([
                "--invariant",
                "-F",
                "32",
                "-n",
                "ESP",
                "-i",
                &self.volume_id,
            ])
            // One sector per cluster whatever the disk size: mkfs.fat would otherwise size
            // clusters for the whole file, leaving too few for FAT32 and mtools unable to read it.
            .args(["-s", "1"])
            .arg(format!("--offset={}", offset / 512))
            .args(["-h", &(offset / 512).to_string()])
            .arg(disk)
            .arg((self.size_bytes / 1024).to_string()))
        .context("mkfs.vfat (ESP)")?;
        let mut entries: Vec<_> = std::fs::read_dir(tree)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        run(command("mcopy")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .args(["-s", "-m", "-i"])
            .arg(format!("{}@@{offset}", disk.display()))
            .args(&entries)
            .arg("::/"))
        .context("mcopy into the ESP")?;
        Ok(())
    }
}
