//! The QEMU command line every axoha VM starts from: q35 with UEFI (OVMF, a private copy of
//! its variable store so the host's is never written), no display, monitor or default devices.
//! Callers add disks, NICs and the serial console.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Copies the OVMF variable store to `vars` and returns the base command.
pub fn uefi_vm(vars: &Path, memory_mib: u32, kvm: bool) -> Result<Command> {
    std::fs::copy(OVMF_VARS, vars).context("copying the OVMF variable store")?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35",
        "-m",
        &memory_mib.to_string(),
        "-smp",
        "2",
    ])
    .args(["-accel", if kvm { "kvm" } else { "tcg" }])
    .args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-user-config",
        "-nodefaults",
    ])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        vars.display()
    ));
    Ok(cmd)
}
