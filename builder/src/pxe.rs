//! `--target pxe`: the network-install bundle.
//!
//! `pxe/` holds `vmlinuz` (the image's kernel), `installer.img` (a newc initramfs whose /init
//! is axoha-install, with the libraries it needs and the storage/NIC modules, all from the
//! image tree), `axoha-install.efi` (both in one UEFI executable: systemd-stub + kernel +
//! initramfs + a command line that makes the installer fetch its node file), `disk.raw.zst`
//! with `disk.raw.zst.sha256` and `bundle.json`, and `boot.ipxe`. Per-node entries come from
//! `axoha-image pxe-config` (`pxe_config.rs`).

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use axoha_disk::cpio::{self, Entry, Kind};
use axoha_disk::elf;
use axoha_disk::hash::sha256_file;

use crate::stages::esp::BootFiles;

/// Drivers for the disks and NICs an installer meets: QEMU/KVM virtio, SATA/AHCI, NVMe and
/// the common Intel server NICs. Dependencies come along from modules.dep.
pub const MODULES: [&str; 11] = [
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "ahci",
    "nvme",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
];

/// The UKI's command line: serial console last (it becomes /dev/console), and the installer
/// fetches `nodes/01-MAC.cmdline` because firmware cannot pass per-node arguments to a UKI.
pub const UKI_CMDLINE: &str = "console=tty0 console=ttyS0,115200 axoha.install_node_file=1";

/// The files `compress_disk` writes: they depend on the disk alone (the build cache keeps them).
pub const DISK_FILES: [&str; 3] = ["disk.raw.zst", "disk.raw.zst.sha256", "bundle.json"];

/// Files of the bundle, in the order they are written.
pub const FILES: [&str; 7] = [
    "vmlinuz",
    "installer.img",
    "axoha-install.efi",
    "boot.ipxe",
    "disk.raw.zst",
    "disk.raw.zst.sha256",
    "bundle.json",
];

fn kernel_version(boot: &BootFiles) -> Result<String> {
    Ok(boot
        .kernel
        .file_name()
        .context("kernel path")?
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_owned())
}

/// The modules to ship (wanted + dependencies) as paths relative to the modules directory,
/// and the matching lines of modules.dep (pure).
pub fn module_set(dep_text: &str, wanted: &[&str]) -> (Vec<String>, String) {
    let mut lines = std::collections::BTreeMap::new();
    for l in dep_text.lines() {
        if let Some((m, deps)) = l.split_once(':') {
            let name = m.rsplit('/').next().unwrap_or(m);
            let name = name.split(".ko").next().unwrap_or(name).replace('-', "_");
            lines.insert(
                name,
                (
                    m.to_owned(),
                    deps.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
            );
        }
    }
    let mut files = std::collections::BTreeSet::new();
    for w in wanted {
        if let Some((m, deps)) = lines.get(*w) {
            files.insert(m.clone());
            files.extend(deps.iter().cloned());
        }
    }
    let dep: String = lines
        .values()
        .filter(|(m, _)| files.contains(m))
        .map(|(m, deps)| format!("{m}: {}\n", deps.join(" ")).replace(": \n", ":\n"))
        .collect();
    (files.into_iter().collect(), dep)
}

/// Parent directories of `path`, outermost first (`a`, `a/b` for `a/b/c`).
fn parents(path: &str) -> Vec<String> {
    let comps: Vec<&str> = path.split('/').collect();
    (1..comps.len()).map(|i| comps[..i].join("/")).collect()
}

/// The installer initramfs: /init, its libraries, /dev/console, and the modules.
pub fn initramfs(
    tree: &Path,
    boot: &BootFiles,
    installer: &Path,
    epoch: i64,
    out: &Path,
) -> Result<()> {
    let init = std::fs::read(installer).with_context(|| {
        format!(
            "reading the installer {} (cargo build --release -p axoha-install)",
            installer.display()
        )
    })?;
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![("init".into(), init.clone(), 0o755)];
    for (src, target) in elf::closure(tree, &init).context("libraries of axoha-install")? {
        let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
        files.push((target, bytes, 0o755));
    }
    let version = kernel_version(boot)?;
    let moddir = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|d| tree.join(d).join(&version))
        .find(|p| p.join("modules.dep").is_file())
        .with_context(|| format!("no modules.dep for kernel {version} in the tree"))?;
    let dep_text = std::fs::read_to_string(moddir.join("modules.dep"))?;
    let (modules, dep) = module_set(&dep_text, &MODULES);
    for m in &modules {
        if !m.ends_with(".ko") {
            bail!("module {m} is compressed; the installer loads plain .ko files only");
        }
        let bytes = std::fs::read(moddir.join(m)).with_context(|| format!("reading module {m}"))?;
        files.push((format!("lib/modules/{version}/{m}"), bytes, 0o644));
    }
    files.push((
        format!("lib/modules/{version}/modules.dep"),
        dep.into_bytes(),
        0o644,
    ));

    let mut dirs: std::collections::BTreeSet<String> = ["dev", "proc", "sys", "tmp", "run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (p, _, _) in &files {
        dirs.extend(parents(p));
    }
    let mut entries: Vec<Entry> = dirs
        .into_iter()
        .map(|d| Entry {
            path: d,
            mode: 0o755,
            kind: Kind::Dir,
        })
        .collect();
    entries.push(Entry {
        path: "dev/console".into(),
        mode: 0o600,
        kind: Kind::CharDev(5, 1),
    });
    files.sort_by(|a, b| a.0.cmp(&b.0));
    entries.extend(files.into_iter().map(|(path, data, mode)| Entry {
        path,
        mode,
        kind: Kind::File(data),
    }));
    let mut w = BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    cpio::write(&mut w, &entries, epoch.clamp(0, u32::MAX as i64) as u32)?;
    w.flush()?;
    Ok(())
}

/// The bundle's generic iPXE script: boots the installer, which then fetches this node's
/// arguments (`nodes/01-MAC.cmdline`) from the TFTP server. `pxe-config` writes per-node
/// scripts that carry the arguments themselves.
pub fn boot_ipxe() -> String {
    format!(
        "#!ipxe\n# axoha network install: the installer fetches nodes/01-MAC.cmdline from the\n\
         # TFTP server (axoha-image pxe-config writes them). URLs are relative to this script.\n\
         kernel vmlinuz initrd=installer.img {UKI_CMDLINE} BOOTIF=01-${{net0/mac:hexhyp}}\n\
         initrd installer.img\nboot\n"
    )
}

/// `disk.raw.zst`: zstd with the uncompressed size in the frame header (the installer checks
/// the target disk against it before writing), plus its sha256 and `bundle.json`.
pub fn compress_disk(raw: &Path, dir: &Path) -> Result<(String, u64)> {
    let mut input =
        std::fs::File::open(raw).with_context(|| format!("opening {}", raw.display()))?;
    let size = input.metadata()?.len();
    let out_path = dir.join("disk.raw.zst");
    let out = BufWriter::new(std::fs::File::create(&out_path)?);
    let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(size))?;
    enc.multithread(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n])?;
    }
    enc.finish()?.flush()?;
    let sha = sha256_file(&out_path)?;
    std::fs::write(
        dir.join("disk.raw.zst.sha256"),
        format!("{sha}  disk.raw.zst\n"),
    )?;
    let json = serde_json::json!({
        "image": "disk.raw.zst",
        "sha256": sha,
        "compressed_bytes": std::fs::metadata(&out_path)?.len(),
        "disk_bytes": size,
        "kernel": "vmlinuz",
        "initrd": "installer.img",
        "uki": "axoha-install.efi",
        "uki_cmdline": UKI_CMDLINE,
    });
    std::fs::write(
        dir.join("bundle.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    Ok((sha, size))
}

/// The boot half of the bundle (kernel, initramfs, UKI, iPXE script), made while the image
/// tree still exists. With a signer the UKI is signed: a Secure Boot machine network-boots
/// it.
pub fn write_boot_half(
    tree: &Path,
    boot: &BootFiles,
    installer: &Path,
    epoch: i64,
    signer: Option<&crate::secure_boot::Signer>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let kernel = dir.join("vmlinuz");
    std::fs::copy(&boot.kernel, &kernel).context("copying the kernel")?;
    let initrd = dir.join("installer.img");
    initramfs(tree, boot, installer, epoch, &initrd)?;
    let efi = dir.join("axoha-install.efi");
    let parts = crate::uki::Parts::in_tree(tree)?;
    crate::uki::build(&parts, UKI_CMDLINE, &kernel, &initrd, dir, epoch, &efi)?;
    if let Some(signer) = signer {
        signer.sign(&efi).context("signing axoha-install.efi")?;
    }
    std::fs::write(dir.join("boot.ipxe"), boot_ipxe())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_with_dependencies_and_their_dep_lines() {
        let dep = "kernel/a/virtio_net.ko: kernel/b/failover.ko kernel/a/virtio.ko\n\
                   kernel/a/virtio.ko:\nkernel/b/failover.ko:\nkernel/c/other.ko:\n";
        let (files, text) = module_set(dep, &["virtio_net", "absent"]);
        assert_eq!(
            files,
            [
                "kernel/a/virtio.ko",
                "kernel/a/virtio_net.ko",
                "kernel/b/failover.ko"
            ]
        );
        assert!(text.contains("kernel/a/virtio_net.ko: kernel/b/failover.ko kernel/a/virtio.ko\n"));
        assert!(text.contains("kernel/a/virtio.ko:\n"));
        assert!(!text.contains("other"));
    }

    #[test]
    fn parent_dirs() {
        assert_eq!(parents("a/b/c"), ["a", "a/b"]);
        assert!(parents("init").is_empty());
    }

    #[test]
    fn ipxe_script_boots_the_installer() {
        let s = boot_ipxe();
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("kernel vmlinuz initrd=installer.img console=tty0"));
        assert!(s.contains("BOOTIF=01-${net0/mac:hexhyp}"));
    }
}
