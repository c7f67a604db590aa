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
    /// Builds `out` holding the contents of `tree` (EFI/, loader/, kernel, initrd).
    pub fn build(&self, tree: &Path, out: &Path) -> Result<()> {
        let paths = walk(tree)?;
        clamp_times(tree, &paths, self.epoch)?;
        let _ = std::fs::remove_file(out);
        run(command("mkfs.vfat")
            .args([
                "--invariant",
                "-F",
                "32",
                "-n",
                "ESP",
                "-i",
                &self.volume_id,
                "-C",
            ])
            .arg(out)
            .arg((self.size_bytes / 1024).to_string()))
        .context("mkfs.vfat (ESP)")?;
        let mut entries: Vec<_> = std::fs::read_dir(tree)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        run(command("mcopy")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .args(["-s", "-m", "-i"])
            .arg(out)
            .args(&entries)
            .arg("::/"))
        .context("mcopy into the ESP")?;
        Ok(())
    }
}
