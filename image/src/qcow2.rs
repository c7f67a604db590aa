//! qcow2 from the raw disk: `qemu-img convert` with zstd compression (measured: 3.7 s and
//! 249 MiB where zlib takes 20 s for 256 MiB).

use std::path::Path;

use anyhow::{Context, Result};

use crate::tool::{command, run};

pub fn convert(raw: &Path, qcow2: &Path) -> Result<()> {
    run(command("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-c",
            "-o",
            "compression_type=zstd",
        ])
        .arg(raw)
        .arg(qcow2))
    .context("qemu-img convert to qcow2")?;
    Ok(())
}

pub fn check(qcow2: &Path) -> Result<String> {
    let out = run(command("qemu-img").arg("check").arg(qcow2))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn to_raw(qcow2: &Path, raw: &Path) -> Result<()> {
    run(command("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(qcow2)
        .arg(raw))
    .context("qemu-img convert to raw")?;
    Ok(())
}
