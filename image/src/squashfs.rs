//! The read-only `/usr`: a squashfs (zstd) made by `mksquashfs` from a directory tree.
//!
//! Reproducibility: mksquashfs (4.4 and later) writes the same bytes for the same tree whatever
//! its thread count; `-mkfs-time` and `-all-time` fix every timestamp it stores, and the
//! tree's owners, modes and xattrs (SELinux labels) are kept as they are.

use std::path::Path;

use anyhow::{Context, Result};

use crate::tool::{command, run};

/// Makes `out` (replaced if present) from the contents of `dir`, with every time = `epoch`,
/// compressed with zstd at `level`.
pub fn build(dir: &Path, out: &Path, epoch: i64, level: u8) -> Result<()> {
    let _ = std::fs::remove_file(out);
    let epoch = epoch.to_string();
    run(command("mksquashfs")
        // mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time.
        .env_remove("SOURCE_DATE_EPOCH")
        .arg(dir)
        .arg(out)
        .args(["-noappend", "-no-progress", "-quiet", "-comp", "zstd"])
        .args(["-Xcompression-level", &level.to_string()])
        .args(["-mkfs-time", &epoch, "-all-time", &epoch])
        .arg("-xattrs"))
    .context("mksquashfs (the /usr image)")?;
    Ok(())
}

/// Reads one file of a squashfs found `offset` bytes into `image` (e.g. a partition of a raw
/// disk), without mounting it.
pub fn read_file(image: &Path, offset: u64, path: &str) -> Result<Vec<u8>> {
    let out = run(command("unsquashfs")
        .args(["-no-progress", "-offset", &offset.to_string(), "-cat"])
        .arg(image)
        .arg(path.trim_start_matches('/')))
    .with_context(|| format!("unsquashfs -cat {path}"))?;
    Ok(out.stdout)
}

/// `unsquashfs -lls` of the given paths (or everything when empty): one `ls -l`-like line per
/// entry, with owners as numbers.
pub fn list(image: &Path, offset: u64, paths: &[&str]) -> Result<String> {
    let out = run(command("unsquashfs")
        .args(["-no-progress", "-offset", &offset.to_string(), "-lln"])
        .arg(image)
        .args(paths.iter().map(|p| p.trim_start_matches('/'))))
    .context("unsquashfs -lln")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
