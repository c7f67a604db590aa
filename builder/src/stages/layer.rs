//! Stage 3, appliance layer: what makes a distribution tree an axoha node.
//!
//! State model (bootc's terms): `/usr` holds everything we ship (binary, units, presets,
//! baked cluster defaults, the image manifest); `/etc` starts as the distribution's, minus
//! keepalived's sample config and with an empty machine-id, and first boot writes the node's
//! files there; `/var` holds only the first-boot stamp once a node has booted.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};
use axoha_firstboot::render::keepalived::NOTIFY_SCRIPT;

use crate::definition::parse_mode;
use crate::plan::Plan;

/// Files from `systemd/` and `firstboot/files/` baked into every image: (absolute path in the
/// image, contents, mode).
pub const OWN_FILES: [(&str, &str, u32); 7] = [
    (
        // The path keepalived.conf names: one constant for both crates.
        NOTIFY_SCRIPT,
        include_str!("../../../firstboot/files/vrrp-notify"),
        0o755,
    ),
    (
        "/usr/lib/systemd/system/axoha-firstboot.service",
        include_str!("../../../systemd/axoha-firstboot.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axoha-heartbeat.service",
        include_str!("../../../systemd/axoha-heartbeat.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/keepalived.service.d/axoha.conf",
        include_str!("../../../systemd/keepalived.service.d/axoha.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axorouter.service.d/axoha.conf",
        include_str!("../../../systemd/axorouter.service.d/axoha.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/ssh.service.d/axoha-host-keys.conf",
        include_str!("../../../systemd/ssh.service.d/axoha-host-keys.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system-preset/90-axoha.preset",
        include_str!("../../../systemd/90-axoha.preset"),
        0o644,
    ),
];

/// Units enabled in the image (the preset says the same for `systemctl preset`).
pub const ENABLED_UNITS: [&str; 5] = [
    "axoha-firstboot.service",
    "keepalived.service",
    "axoha-heartbeat.service",
    "axorouter.service",
    "firewalld.service",
];

/// Writes a new file. The tree is a hard-linked copy of the cached rootfs, so an existing file
/// is unlinked first: writing through the link would change the cache.
pub(crate) fn write(tree: &Path, rel: &str, contents: &[u8], mode: u32) -> Result<()> {
    let path = tree.join(rel.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("replacing {}", path.display()))
        }
        _ => {}
    }
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// What every node has before first boot writes its own: no resolver, package sources or
/// time servers of the build host's (mmdebstrap leaves the host's resolv.conf and its mirror
/// in the tree), a hosts file that resolves localhost, chrony without any server.
fn network_basics(plan: &Plan, tree: &Path) -> Result<()> {
    write(
        tree,
        "etc/resolv.conf",
        b"# No DNS servers yet: axoha-firstboot writes the node's dns metadata here.\n",
        0o644,
    )?;
    write(
        tree,
        "etc/hosts",
        b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    // The appliance is updated as a whole image, never by its package manager; the build's
    // mirror (perhaps a local one) must not be left behind.
    if tree.join("etc/apt").is_dir() {
        write(
            tree,
            "etc/apt/sources.list",
            b"# axoha appliance: updated as a whole image, not with apt.\n",
            0o644,
        )?;
    }
    let (_, chrony_conf) = plan.profile.chrony();
    write(tree, chrony_conf, CHRONY_CONF.as_bytes(), 0o644)?;
    std::fs::create_dir_all(tree.join("etc/chrony/sources.d"))
        .context("creating etc/chrony/sources.d")?;
    Ok(())
}

/// chrony.conf of both profiles: no server of its own; first boot writes the node's `ntp`
/// servers to sources.d.
const CHRONY_CONF: &str = "# Written by axoha-image. Servers come from the node's ntp metadata\n\
# (axoha-firstboot writes /etc/chrony/sources.d/axoha.sources); there are none otherwise.\n\
sourcedir /etc/chrony/sources.d\n\
driftfile /var/lib/chrony/chrony.drift\n\
# Step the clock at start when it is far off (a VM resumed, a node without RTC battery).\n\
makestep 1 3\n\
rtcsync\n\
leapsectz right/UTC\n";

/// The kernel and initrd the ESP boots, found in the tree's /boot.
pub struct BootFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub efi_loader: PathBuf,
}

pub fn apply(plan: &Plan, tree: &Path, root_uuid: &str, image_manifest: &str) -> Result<()> {
    // Our binary and units.
    let firstboot = std::fs::read(&plan.firstboot.path)?;
    write(tree, "usr/bin/axoha-firstboot", &firstboot, 0o755)?;
    for (path, contents, mode) in OWN_FILES {
        write(tree, path, contents.as_bytes(), mode)?;
    }
    write(
        tree,
        "usr/lib/axoha/cluster.toml",
        plan.definition.cluster_toml().as_bytes(),
        0o644,
    )?;
    write(
        tree,
        "usr/lib/axoha/profile",
        format!("{}\n", plan.profile.name()).as_bytes(),
        0o644,
    )?;
    write(
        tree,
        "usr/lib/axoha/manifest.json",
        image_manifest.as_bytes(),
        0o644,
    )?;

    // keepalived starts only with the config first boot writes (its drop-in's condition).
    for sample in ["keepalived.conf", "keepalived.conf.sample"] {
        let _ = std::fs::remove_file(tree.join("etc/keepalived").join(sample));
    }
    std::fs::create_dir_all(tree.join("etc/keepalived"))?;

    // First boot is first boot: systemd generates the machine id and runs presets.
    write(tree, "etc/machine-id", b"", 0o444)?;
    let dbus_id = tree.join("var/lib/dbus/machine-id");
    if dbus_id.is_file() {
        std::fs::remove_file(&dbus_id)?;
    }
    write(tree, "etc/hostname", b"axoha\n", 0o644)?;
    network_basics(plan, tree)?;
    // x-systemd.growfs: the PXE installer grows the root partition to the disk's end, and
    // systemd-growfs then grows ext4 online (no unmount, no e2fsprogs); a no-op otherwise.
    write(
        tree,
        "etc/fstab",
        format!("# axoha appliance\nUUID={root_uuid} / ext4 rw,errors=remount-ro,x-systemd.growfs 0 1\n").as_bytes(),
        0o644,
    )?;

    let mut enable = ENABLED_UNITS.to_vec();
    enable.push(plan.profile.chrony().0);
    if plan.profile == crate::profile::Profile::Debian12 {
        // Debian images configure the HA address with systemd-networkd (first boot writes it).
        enable.push("systemd-networkd.service");
    }
    // SSH: each node makes its own host keys at first start (a shared image must not carry
    // any); the server runs only when the definition gives someone a key to log in with.
    for entry in std::fs::read_dir(tree.join("etc/ssh"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(entry.path())?;
        }
    }
    crate::users::apply(tree, &plan.definition.users, plan.source_date_epoch)?;
    let ssh = plan.profile.ssh_unit();
    let has_ssh = tree.join("usr/lib/systemd/system").join(ssh).is_file();
    if !plan.definition.users.is_empty() {
        if !has_ssh {
            bail!("users are defined but the image has no {ssh} (openssh-server)");
        }
        enable.push(ssh);
    }
    run(command("systemctl")
        .arg(format!("--root={}", tree.display()))
        .arg("enable")
        .args(&enable))
    .context("enabling units in the image")?;
    if plan.definition.users.is_empty() && has_ssh {
        run(command("systemctl")
            .arg(format!("--root={}", tree.display()))
            .args(["disable", ssh]))
        .context("disabling the SSH server (no [[users]])")?;
    }

    let timers: Vec<&str> = plan
        .profile
        .package_timers()
        .iter()
        .copied()
        .filter(|t| tree.join("usr/lib/systemd/system").join(t).is_file())
        .collect();
    if !timers.is_empty() {
        run(command("systemctl")
            .arg(format!("--root={}", tree.display()))
            .arg("mask")
            .args(&timers))
        .context("masking the package manager's timers")?;
    }

    for f in &plan.definition.files {
        write(tree, &f.path, f.contents.as_bytes(), parse_mode(&f.mode)?)?;
    }

    if plan.profile.has_selinux() {
        let pp = axoha_selinux::compile_module(&tree.join("tmp"))?;
        axoha_selinux::install_module(tree, "targeted", &pp)?;
        std::fs::remove_file(&pp)?;
        // The rootfs stage labelled the distribution's files; this labels ours.
        axoha_selinux::label_tree(tree, "targeted")?;
    }
    Ok(())
}

/// Finds the kernel, initrd and systemd-boot in the tree.
pub fn boot_files(tree: &Path) -> Result<BootFiles> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(tree.join("boot"))
        .context("reading /boot of the image")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    let Some(kernel) = kernels.pop() else {
        bail!("no kernel (boot/vmlinuz-*) in the image tree");
    };
    let version = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_owned();
    let initrd = ["initrd.img-", "initramfs-"]
        .iter()
        .map(|p| {
            tree.join("boot").join(format!(
                "{p}{version}{}",
                if p.starts_with("initramfs") {
                    ".img"
                } else {
                    ""
                }
            ))
        })
        .find(|p| p.is_file())
        .with_context(|| format!("no initrd for kernel {version} in /boot"))?;
    let efi_loader = tree.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    if !efi_loader.is_file() {
        bail!("systemd-boot (usr/lib/systemd/boot/efi/systemd-bootx64.efi) is not in the image");
    }
    Ok(BootFiles {
        kernel,
        initrd,
        efi_loader,
    })
}

/// The ESP contents: systemd-boot as the fallback loader, one entry, kernel and initrd.
pub fn stage_esp(boot: &BootFiles, esp: &Path, options: &str, title: &str) -> Result<()> {
    let copy = |src: &Path, rel: &str| -> Result<()> {
        let dst = esp.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap())?;
        std::fs::copy(src, &dst)
            .with_context(|| format!("copying {} to the ESP", src.display()))?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
        Ok(())
    };
    copy(&boot.efi_loader, "EFI/BOOT/BOOTX64.EFI")?;
    copy(&boot.kernel, "vmlinuz")?;
    copy(&boot.initrd, "initrd.img")?;
    write(
        esp,
        "loader/loader.conf",
        b"default axoha.conf\ntimeout 0\nconsole-mode keep\n",
        0o644,
    )?;
    write(
        esp,
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
pub fn drop_boot_copies(tree: &Path, boot: &BootFiles) -> Result<()> {
    for p in [&boot.kernel, &boot.initrd] {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    for link in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        let p = tree.join(link);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

/// Installed packages and versions, from dpkg's status file or the rpm database.
pub fn package_list(tree: &Path) -> Result<Vec<(String, String)>> {
    let status = tree.join("var/lib/dpkg/status");
    if status.is_file() {
        let text = std::fs::read_to_string(&status)?;
        let mut out = Vec::new();
        for para in text.split("\n\n") {
            let field = |n: &str| para.lines().find_map(|l| l.strip_prefix(n)).map(str::trim);
            if let (Some(p), Some(v), Some(s)) =
                (field("Package:"), field("Version:"), field("Status:"))
            {
                if s.ends_with(" installed") {
                    out.push((p.to_owned(), v.to_owned()));
                }
            }
        }
        out.sort();
        return Ok(out);
    }
    let out = run(crate::stages::dnf::rpm_in(tree).args([
        "-qa",
        "--qf",
        "%{NAME} %{VERSION}-%{RELEASE}\n",
    ]))?;
    let mut list: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect();
    list.sort();
    Ok(list)
}
