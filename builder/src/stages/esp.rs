//! The boot half of the layer stage: the kernel, initrd and systemd-boot found in the image
//! tree, the ESP staging tree made from them, and the tree's own copies dropped afterwards.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::tree::Tree;

/// The kernel and initrd the ESP boots, found in the tree's /boot: paths in the tree (for
/// removal) and where they resolved to on the host (for copying).
pub struct BootFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub efi_loader: PathBuf,
    kernel_in_tree: String,
    initrd_in_tree: String,
}

const EFI_LOADER: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Finds the kernel, initrd and systemd-boot in the tree.
pub fn boot_files(tree: &Tree) -> Result<BootFiles> {
    let Some(kernel) = tree
        .list("boot")
        .context("reading /boot of the image")?
        .into_iter()
        .filter(|n| n.starts_with("vmlinuz-"))
        .max()
    else {
        bail!("no kernel (boot/vmlinuz-*) in the image tree");
    };
    let version = kernel.trim_start_matches("vmlinuz-").to_owned();
    let initrd = [
        format!("boot/initrd.img-{version}"),
        format!("boot/initramfs-{version}.img"),
    ]
    .into_iter()
    .find(|p| tree.is_file(p))
    .with_context(|| format!("no initrd for kernel {version} in /boot"))?;
    if !tree.is_file(EFI_LOADER) {
        bail!("systemd-boot ({EFI_LOADER}) is not in the image");
    }
    let kernel = format!("boot/{kernel}");
    Ok(BootFiles {
        kernel: tree.host_path(&kernel)?,
        initrd: tree.host_path(&initrd)?,
        efi_loader: tree.host_path(EFI_LOADER)?,
        kernel_in_tree: kernel,
        initrd_in_tree: initrd,
    })
}

/// The ESP contents: systemd-boot as the fallback loader, one entry, kernel and initrd.
pub fn stage_esp(boot: &BootFiles, esp: &Tree, options: &str, title: &str) -> Result<()> {
    for (src, rel) in [
        (&boot.efi_loader, "EFI/BOOT/BOOTX64.EFI"),
        (&boot.kernel, "vmlinuz"),
        (&boot.initrd, "initrd.img"),
    ] {
        let bytes =
            std::fs::read(src).with_context(|| format!("reading {} for the ESP", src.display()))?;
        esp.write(rel, &bytes, 0o644)?;
    }
    esp.write(
        "loader/loader.conf",
        b"default axoha.conf\ntimeout 0\nconsole-mode keep\n",
        0o644,
    )?;
    esp.write(
        "loader/entries/axoha.conf",
        format!("title {title}\nlinux /vmlinuz\ninitrd /initrd.img\noptions {options}\n")
            .as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// Removes the kernel and initrd from the root filesystem once they are on the ESP, with the
/// `/vmlinuz` and `/initrd.img` links: the appliance is replaced as a whole, never updated in
/// place, so the ESP is the only copy that boots, and the second copy (about 45 MB, already
/// compressed) would only make the image larger.
pub fn drop_boot_copies(tree: &Tree, boot: &BootFiles) -> Result<()> {
    for p in [&boot.kernel_in_tree, &boot.initrd_in_tree] {
        tree.remove_file(p)?;
    }
    for link in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        tree.remove_file(link)?;
    }
    Ok(())
}
