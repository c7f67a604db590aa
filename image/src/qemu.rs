//! The QEMU command line every axoha VM starts from: q35 with UEFI (OVMF, a private copy of
//! its variable store so the host's is never written), no display, monitor or default devices.
//! Callers add disks, NICs and the serial console.
//!
//! The CPU is QEMU's `max` under TCG and the host's under KVM, never QEMU's default model
//! (`qemu64`): that lacks x86-64-v2 and v3, and AlmaLinux 10's x86_64 packages are built for
//! x86-64-v3 (glibc stops in the initrd with "CPU does not support x86-64-v3"). `max` emulates
//! every feature TCG has (AVX2, FMA, BMI2, MOVBE: x86-64-v3), and Debian's baseline packages
//! run on it as well, so one choice serves every profile.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Copies the OVMF variable store to `vars` and returns the base command.
pub fn uefi_vm(vars: &Path, memory_mib: u32, kvm: bool) -> Result<Command> {
    blank_vars(vars)?;
    Ok(base(OVMF_CODE, vars, memory_mib, kvm, false))
}

/// A private copy of OVMF's variable store at `vars`: no keys enrolled (for the Secure Boot
/// firmware, Setup Mode), so the host's template is never written.
pub fn blank_vars(vars: &Path) -> Result<()> {
    std::fs::copy(OVMF_VARS, vars).context("copying the OVMF variable store")?;
    Ok(())
}

/// OVMF built with Secure Boot (it needs SMM, so that only firmware writes its variables).
pub const OVMF_CODE_SECURE_BOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";

/// The base command with Secure Boot firmware and `vars`, a variable store with keys
/// enrolled and Secure Boot on ([`enrolled_vars`]).
pub fn secure_boot_vm(vars: &Path, memory_mib: u32, kvm: bool) -> Command {
    base(OVMF_CODE_SECURE_BOOT, vars, memory_mib, kvm, true)
}

/// A variable store for [`secure_boot_vm`]: a copy of OVMF's with the key set `set` (a
/// `secure-boot/` directory from `axoha-image keygen`: `{PK,KEK,db}.crt` and `guid`, the
/// lists' owner) enrolled and Secure Boot on, made by virt-fw-vars into `out`.
pub fn enrolled_vars(set: &Path, out: &Path) -> Result<()> {
    crate::tool::require(&["virt-fw-vars"])?;
    let crt = |k: &str| set.join(format!("{k}.crt"));
    for key in ["PK", "KEK", "db"] {
        if !crt(key).is_file() {
            anyhow::bail!(
                "{}: no {key}.crt (a key set from `axoha-image keygen`)",
                set.display()
            );
        }
    }
    let guid = std::fs::read_to_string(set.join("guid")).with_context(|| {
        format!(
            "{}: no guid (a key set from `axoha-image keygen`)",
            set.display()
        )
    })?;
    let guid = guid.trim();
    crate::tool::run(
        crate::tool::command("virt-fw-vars")
            .arg("--input")
            .arg(OVMF_VARS)
            .arg("--output")
            .arg(out)
            .arg("--set-pk")
            .arg(guid)
            .arg(crt("PK"))
            .arg("--add-kek")
            .arg(guid)
            .arg(crt("KEK"))
            .arg("--add-db")
            .arg(guid)
            .arg(crt("db"))
            .arg("--secure-boot"),
    )
    .context("virt-fw-vars: enrolling the key set")?;
    Ok(())
}

fn base(code: &str, vars: &Path, memory_mib: u32, kvm: bool, smm: bool) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        if smm { "q35,smm=on" } else { "q35" },
        "-m",
        &memory_mib.to_string(),
        "-smp",
        "2",
    ])
    .args(accel_args(kvm))
    .args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-user-config",
        "-nodefaults",
    ]);
    if smm {
        // The variable store's flash is writable from SMM only: the OS cannot change db.
        cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    }
    cmd.arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={code}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ));
    cmd
}

/// The accelerator and the CPU model that goes with it (see the module comment).
pub fn accel_args(kvm: bool) -> [&'static str; 4] {
    if kvm {
        ["-accel", "kvm", "-cpu", "host"]
    } else {
        ["-accel", "tcg", "-cpu", "max"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_the_default_cpu_model() {
        assert_eq!(accel_args(false), ["-accel", "tcg", "-cpu", "max"]);
        assert_eq!(accel_args(true), ["-accel", "kvm", "-cpu", "host"]);
    }
}
