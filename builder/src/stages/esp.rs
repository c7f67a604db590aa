//! The boot half of the layer stage: the kernel, initrd and systemd-boot found in the image
//! tree, the ESP tree made from them, and the tree's own copies dropped afterwards.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_boot_contract::{entry, layout::Slot};

use crate::secure_boot::enrolment::{self, Enrolment};
use crate::tree::Tree;

/// The kernel the ESP boots, found in the tree's /boot (the initrd is made by dracut in the
/// initrd stage): paths in the tree (for removal) and where they resolved to on the host (for
/// copying).
pub struct BootFiles {
    pub kernel: PathBuf,
    /// The kernel's version (`vmlinuz-VERSION`, `/usr/lib/modules/VERSION`).
    pub version: String,
    pub efi_loader: PathBuf,
    kernel_in_tree: String,
}

const EFI_LOADER: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Finds the kernel and systemd-boot in the tree.
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
    if !tree.is_dir(&format!("usr/lib/modules/{version}")) {
        bail!("no modules for kernel {version} (usr/lib/modules/{version}) in the image");
    }
    if !tree.is_file(EFI_LOADER) {
        bail!("systemd-boot ({EFI_LOADER}) is not in the image");
    }
    let kernel = format!("boot/{kernel}");
    Ok(BootFiles {
        kernel: tree.host_path(&kernel)?,
        version,
        efi_loader: tree.host_path(EFI_LOADER)?,
        kernel_in_tree: kernel,
    })
}

/// The ESP contents but the entry: systemd-boot as the fallback loader, slot A's kernel and
/// initrd, and loader.conf without `default`: systemd-boot then boots the newest entry by
/// version order of the file names (the boot contract's `entry` says why the image's is
/// `axoha-1.conf`); with an `enrolment`, the key set in `loader/keys/auto/` and loader.conf's
/// `secure-boot-enroll`. (The initrd follows with `add_initrd` once dracut is done.)
pub fn fill_esp(boot: &BootFiles, esp: &Tree, enrolment: Option<&Enrolment>) -> Result<()> {
    for (src, rel) in [
        (boot.efi_loader.as_path(), "EFI/BOOT/BOOTX64.EFI".to_owned()),
        (boot.kernel.as_path(), Slot::A.kernel()),
    ] {
        let bytes =
            std::fs::read(src).with_context(|| format!("reading {} for the ESP", src.display()))?;
        esp.write(&rel, &bytes, 0o644)?;
    }
    let mut loader = "timeout 0\nconsole-mode keep\n".to_owned();
    if let Some(e) = enrolment {
        loader.push_str(&e.loader_conf_line());
        for (name, bytes) in &e.files {
            esp.write(&format!("{}/{name}", enrolment::ESP_DIR), bytes, 0o644)?;
        }
    }
    esp.write("loader/loader.conf", loader.as_bytes(), 0o644)?;
    Ok(())
}

/// Slot A's initrd onto the ESP.
pub fn add_initrd(initrd: &Path, esp: &Tree) -> Result<()> {
    let bytes = std::fs::read(initrd)
        .with_context(|| format!("reading {} for the ESP", initrd.display()))?;
    esp.write(&Slot::A.initrd(), &bytes, 0o644)
}

/// Slot A's `options`: the verity-checked /usr by its root hash, the state partition, the
/// definition's arguments (the entry's, and a signed image's UKI `.cmdline`).
pub fn slot_a_options(usrhash: &str, state_partuuid: &str, definition: &str) -> String {
    entry::image_options(usrhash, state_partuuid, definition)
}

/// Slot A's entry, the image's `axoha-1.conf` (design.md "Immutable /usr: as built"):
/// `linux` and `initrd`, or for a signed image `efi` and its UKI (`sign_slot_a`).
pub fn write_entry(esp: &Tree, title: &str, options: &str, signed: bool) -> Result<()> {
    let text = if signed {
        entry::render_uki(title, Slot::A, options)
    } else {
        entry::render(title, Slot::A, options)
    };
    esp.write(entry::IMAGE_ENTRY, text.as_bytes(), 0o644)
}

/// A signed image's ESP (docs/secure-boot.md): systemd-boot signed in place, and slot A's UKI
/// (stub, os-release, `options` as its `.cmdline`, the ESP's kernel and initrd) made and
/// signed. The kernel and initrd stay beside it: the update bundle is made of them.
pub fn sign_slot_a(
    esp_root: &Path,
    parts: &crate::uki::Parts,
    signer: &crate::secure_boot::Signer,
    options: &str,
    work: &Path,
    epoch: i64,
) -> Result<()> {
    signer.sign(&esp_root.join("EFI/BOOT/BOOTX64.EFI"))?;
    let uki = esp_root.join(Slot::A.uki());
    crate::uki::build(
        parts,
        options,
        &esp_root.join(Slot::A.kernel()),
        &esp_root.join(Slot::A.initrd()),
        work,
        epoch,
        &uki,
    )
    .context("slot A's UKI")?;
    signer.sign(&uki)
}

/// Removes the kernel and any initrd from /boot once they are on the ESP, with the
/// `/vmlinuz` and `/initrd.img` links: the appliance is replaced as a whole, never updated in
/// place, so the ESP is the only copy that boots (an update brings its own kernel and initrd),
/// and a second copy (about 45 MB, already compressed) would only make the image larger.
pub fn drop_boot_copies(tree: &Tree, boot: &BootFiles) -> Result<()> {
    tree.remove_file(&boot.kernel_in_tree)?;
    for initrd in [
        format!("boot/initrd.img-{}", boot.version),
        format!("boot/initramfs-{}.img", boot.version),
    ] {
        tree.remove_file(&initrd)?;
    }
    for link in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        tree.remove_file(link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure_boot::{generate, SecureBootSection, Signer};
    use axoha_update::uki::{check, DbCertificate};
    use axoha_update::usrhash::UsrHash;

    /// The builder's signed slot A (systemd-stub of the host's `systemd-boot-efi`, the same
    /// package the image's comes from) is a UKI the updater's check takes for a node of this
    /// image, and refuses for a node trusting another db certificate.
    #[test]
    fn signed_slot_a_is_what_the_updater_takes() {
        let stub = Path::new("/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
        let boot = Path::new("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
        if !stub.is_file() || axoha_disk::tool::which("sbsign").is_none() {
            // scripts/install-deps installs both (systemd-boot-efi, sbsigntool).
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let esp = p.join("esp");
        std::fs::create_dir_all(esp.join("EFI/BOOT")).unwrap();
        std::fs::create_dir_all(esp.join(Slot::A.esp_dir())).unwrap();
        std::fs::copy(boot, esp.join("EFI/BOOT/BOOTX64.EFI")).unwrap();
        std::fs::write(esp.join(Slot::A.kernel()), vec![0x4b; 90_000]).unwrap();
        std::fs::write(esp.join(Slot::A.initrd()), vec![0x49; 60_000]).unwrap();
        let osrel = p.join("os-release");
        std::fs::write(&osrel, "ID=debian\n").unwrap();
        let parts = crate::uki::Parts {
            stub: stub.to_owned(),
            osrel,
        };
        let signer = |set: &Path| {
            Signer::load(&SecureBootSection {
                certificate: set.join("db.crt").display().to_string(),
                key: set.join("db.key").display().to_string(),
                ..SecureBootSection::default()
            })
            .unwrap()
            .unwrap()
        };
        let set = generate(p, "axoha").unwrap();
        let (usrhash, state, definition) = (
            "ab".repeat(32),
            "5ea7e000-0000-4000-8000-000000000006",
            "console=ttyS0",
        );
        let options = slot_a_options(&usrhash, state, definition);
        sign_slot_a(&esp, &parts, &signer(&set), &options, p, 1_700_000_000).unwrap();
        let uki = std::fs::read(esp.join(Slot::A.uki())).unwrap();
        let db = |set: &Path| {
            DbCertificate::from_pem(&std::fs::read(set.join("db.crt")).unwrap(), "db.crt").unwrap()
        };
        let hash = UsrHash::parse(&usrhash).unwrap();
        let want = entry::image_options(&usrhash, state, definition);
        if let Err(e) = check(uki.clone(), &db(&set), hash, state, &want) {
            panic!("the updater refuses the builder's UKI: {e:#}");
        }
        let other = p.join("other");
        std::fs::create_dir(&other).unwrap();
        let other = generate(&other, "axoha").unwrap();
        let e = check(uki, &db(&other), hash, state, &want).err().unwrap();
        assert!(
            format!("{e:#}").contains("not by this node's db certificate"),
            "{e:#}"
        );
    }
}
