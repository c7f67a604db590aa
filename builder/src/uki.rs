//! Unified kernel images (UKIs) made with objcopy, reproducibly: the PXE installer's and,
//! for a signed image, each slot's (docs/secure-boot.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_disk::elf;
use axoha_disk::tool::{command, require, run};

/// The stub and the os-release a UKI is made of, from an image tree (host paths).
pub struct Parts {
    pub stub: PathBuf,
    pub osrel: PathBuf,
}

const STUB: &str = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";

impl Parts {
    /// Where they are in the tree.
    pub fn in_tree(tree: &Path) -> Result<Parts> {
        let stub = tree.join(STUB);
        if !stub.is_file() {
            bail!("systemd-stub ({STUB}) is not in the image tree");
        }
        Ok(Parts {
            stub,
            osrel: elf::in_tree(tree, "usr/lib/os-release")?,
        })
    }

    /// Copies of them in `dir`: the disk's UKI is made after /usr left the tree (its root
    /// hash goes into the `.cmdline`).
    pub fn keep(tree: &Path, dir: &Path) -> Result<Parts> {
        let found = Parts::in_tree(tree)?;
        let kept = Parts {
            stub: dir.join("uki-stub.efi"),
            osrel: dir.join("uki-os-release"),
        };
        std::fs::copy(&found.stub, &kept.stub).context("keeping systemd-stub for the UKI")?;
        std::fs::copy(&found.osrel, &kept.osrel).context("keeping os-release for the UKI")?;
        Ok(kept)
    }
}

/// One UEFI executable (a unified kernel image): systemd-stub with `.osrel`, `.cmdline`,
/// `.linux` and `.initrd` sections added by objcopy at the VMAs documented for systemd
/// 252's stub (the manual method ukify replaced). The PXE installer's (firmware that
/// network-boots it runs the installer without a boot loader or a per-node menu) and a signed
/// image's slots (the signature covers the command line with its `usrhash=`).
pub fn build(
    parts: &Parts,
    cmdline_text: &str,
    kernel: &Path,
    initrd: &Path,
    work: &Path,
    epoch: i64,
    out: &Path,
) -> Result<()> {
    require(&["objcopy", "objdump"])?;
    let stub = &parts.stub;
    // The stub's own sections must end below .osrel, the kernel below .initrd.
    let heads = run(command("objdump").arg("-h").arg(stub))?;
    let stub_end = String::from_utf8_lossy(&heads.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 7 && f[0].parse::<u32>().is_ok()).then(|| {
                u64::from_str_radix(f[2], 16).unwrap_or(0)
                    + u64::from_str_radix(f[3], 16).unwrap_or(0)
            })
        })
        .max()
        .unwrap_or(0);
    const OSREL: u64 = 0x20000;
    const CMDLINE: u64 = 0x30000;
    const LINUX: u64 = 0x2000000;
    const INITRD: u64 = 0x3000000;
    if stub_end > OSREL {
        bail!("this systemd-stub ends at {stub_end:#x}, past .osrel at {OSREL:#x}");
    }
    if std::fs::metadata(kernel)?.len() > INITRD - LINUX {
        bail!("the kernel is larger than the 16 MiB between .linux and .initrd");
    }
    let osrel = &parts.osrel;
    let cmdline = work.join("uki-cmdline");
    std::fs::write(&cmdline, cmdline_text)?;
    let mut cmd = command("objcopy");
    for (name, file, vma) in [
        (".osrel", osrel.as_path(), OSREL),
        (".cmdline", cmdline.as_path(), CMDLINE),
        (".linux", kernel, LINUX),
        (".initrd", initrd, INITRD),
    ] {
        cmd.arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"));
    }
    run(cmd.arg(stub).arg(out)).with_context(|| format!("objcopy: building {}", out.display()))?;
    std::fs::remove_file(&cmdline)?;
    set_pe_timestamp(out, epoch)
}

/// objcopy stamps PE files with the current time (binutils 2.40 ignores SOURCE_DATE_EPOCH
/// there): put the build's epoch in the COFF header's TimeDateStamp instead, and recompute
/// the optional header's CheckSum that covers it, so the bundle is reproducible.
fn set_pe_timestamp(file: &Path, epoch: i64) -> Result<()> {
    let mut b = std::fs::read(file)?;
    let pe = u32::from_le_bytes(b.get(0x3c..0x40).context("short PE file")?.try_into()?) as usize;
    if b.get(pe..pe + 4) != Some(b"PE\0\0") || b.len() < pe + 24 + 68 {
        bail!("{}: not a PE file", file.display());
    }
    // Signature (4), Machine (2), NumberOfSections (2), then TimeDateStamp.
    let stamp = epoch.clamp(0, u32::MAX as i64) as u32;
    b[pe + 8..pe + 12].copy_from_slice(&stamp.to_le_bytes());
    // The optional header follows the 20-byte COFF header; CheckSum is at its offset 64.
    let sum_at = pe + 24 + 64;
    b[sum_at..sum_at + 4].copy_from_slice(&[0; 4]);
    let sum = pe_checksum(&b);
    b[sum_at..sum_at + 4].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(file, b)?;
    Ok(())
}

/// The PE image checksum (what objcopy and imagehlp compute): 16-bit words summed with the
/// carries folded back in, over the file with the CheckSum field zeroed, plus its length.
fn pe_checksum(b: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    for c in b.chunks(2) {
        sum += u64::from(c[0]) | (u64::from(*c.get(1).unwrap_or(&0)) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(b.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_checksum_folds_carries_and_adds_the_length() {
        assert_eq!(pe_checksum(&[0xff, 0xff, 0x01, 0x00]), 0x0001 + 4);
        assert_eq!(pe_checksum(&[0x34, 0x12, 0x01]), 0x1235 + 3);
    }
}
