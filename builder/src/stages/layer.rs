//! Stage 3, appliance layer: what makes a distribution tree an axoha node.
//!
//! State model (bootc's terms): `/usr` holds everything we ship (binary, units, presets,
//! baked cluster defaults, the image manifest); `/etc` starts as the distribution's, minus
//! keepalived's sample config and with an empty machine-id, and first boot writes the node's
//! files there; `/var` holds only the first-boot stamp once a node has booted.
//!
//! Every path is written through `Tree`: nothing the distribution's symlinks point at on the
//! build host is ever touched.

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};

use crate::own_files::{
    ENABLED_UNITS, FIRSTBOOT_BIN, METRICS_BIN, OWN_FILES, UPDATE_BIN, UPDATE_KEY,
};
use crate::plan::Plan;
use crate::selinux_mode::SelinuxMode;
use crate::tree::Tree;
use axoha_firstboot::render::network;

/// What every node has before first boot writes its own: no resolver, package sources or
/// time servers of the build host's (mmdebstrap leaves the host's resolv.conf and its mirror
/// in the tree), a hosts file that resolves localhost, chrony without any server.
fn network_basics(plan: &Plan, tree: &Tree) -> Result<()> {
    tree.write(
        "etc/resolv.conf",
        b"# No DNS servers yet: axoha-firstboot writes the node's dns metadata here.\n",
        0o644,
    )?;
    tree.write(
        "etc/hosts",
        b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    // The appliance is updated as a whole image, never by its package manager; the build's
    // mirror (perhaps a local one) must not be left behind.
    if tree.is_dir("etc/apt") {
        tree.write(
            "etc/apt/sources.list",
            b"# axoha appliance: updated as a whole image, not with apt.\n",
            0o644,
        )?;
    }
    let (_, chrony_conf) = plan.profile.chrony();
    tree.write(chrony_conf, CHRONY_CONF.as_bytes(), 0o644)?;
    tree.create_dir_all("etc/chrony/sources.d", &mut Vec::new())?;
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

pub fn apply(plan: &Plan, tree: &Tree, image_manifest: &str) -> Result<()> {
    ours(plan, tree, image_manifest)?;
    first_boot_state(plan, tree)?;
    crate::users::apply(tree, &plan.definition.users, plan.source_date_epoch)?;
    units(plan, tree)?;
    // The definition check knows the distributions' units; this reads the tree's own, so an
    // EnvironmentFile= a package adds or moves is the appliance's too. Before any extra file.
    let env = crate::own_files::tree_environment_files(tree);
    for f in &plan.definition.files {
        if let Some((_, unit)) = env
            .iter()
            .find(|(e, _)| e.parse::<crate::image_path::ImagePath>().ok().as_ref() == Some(&f.path))
        {
            bail!(
                "files: path {:?} belongs to the appliance: an EnvironmentFile= of {unit} in \
                 this image, whose variables reach the daemon's command line",
                f.path.as_str()
            );
        }
    }
    for f in &plan.definition.files {
        tree.write(f.path.as_str(), f.contents.as_bytes(), f.mode.bits())?;
    }
    if let Some(mode) = plan.definition.selinux() {
        selinux(plan, mode, tree)?;
    }
    Ok(())
}

/// Our binaries, units and `/usr/lib/axoha/*`.
fn ours(plan: &Plan, tree: &Tree, image_manifest: &str) -> Result<()> {
    for (input, installed) in [
        (&plan.firstboot, FIRSTBOOT_BIN),
        (&plan.update, UPDATE_BIN),
        (&plan.metrics, METRICS_BIN),
    ] {
        let bytes = std::fs::read(&input.path)
            .with_context(|| format!("reading {}", input.path.display()))?;
        tree.write(installed, &bytes, 0o755)?;
    }
    for (path, contents, mode) in OWN_FILES {
        tree.write(path, contents.as_bytes(), mode)?;
    }
    tree.write(
        "usr/lib/axoha/cluster.toml",
        plan.definition.cluster_toml().as_bytes(),
        0o644,
    )?;
    if let Some(signer) = &plan.signer {
        // What a Secure Boot node checks an update's signed UKI against (docs/secure-boot.md).
        let pem = std::fs::read(&signer.certificate)
            .with_context(|| format!("reading {}", signer.certificate.display()))?;
        tree.write(axoha_update::paths::DB_CERTIFICATE, &pem, 0o644)?;
    }
    if let Some(key) = &plan.definition.update.public_key {
        // The key `axoha-update apply` checks bundles against (definition [update]).
        tree.write(UPDATE_KEY, format!("{key}\n").as_bytes(), 0o644)?;
    }
    tree.write(
        "usr/lib/axoha/profile",
        format!("{}\n", plan.profile.name()).as_bytes(),
        0o644,
    )?;
    // Which network daemon first boot writes files for (a debian-12 image may run either).
    tree.write(
        network::BACKEND_FILE,
        format!("{}\n", plan.definition.network().name()).as_bytes(),
        0o644,
    )?;
    tree.write(
        "usr/lib/axoha/manifest.json",
        image_manifest.as_bytes(),
        0o644,
    )
}

/// What first boot starts from: no keepalived config, no machine identity, no SSH host keys
/// (a shared image must not carry any: each node makes its own), the network basics, fstab.
fn first_boot_state(plan: &Plan, tree: &Tree) -> Result<()> {
    // No sample config: keepalived.conf is only ever the one first boot renders (keepalived
    // itself starts only once first boot's stamp exists, its drop-in's condition).
    for sample in ["keepalived.conf", "keepalived.conf.sample"] {
        tree.remove_file(&format!("etc/keepalived/{sample}"))?;
    }
    tree.create_dir_all("etc/keepalived", &mut Vec::new())?;
    // First boot is first boot: systemd generates the machine id and runs presets.
    tree.write("etc/machine-id", b"", 0o444)?;
    tree.remove_file("var/lib/dbus/machine-id")?;
    tree.write("etc/hostname", b"axoha\n", 0o644)?;
    network_basics(plan, tree)?;
    // The state partition is `/` (the initrd mounts /usr from /dev/mapper/usr via usrhash=,
    // so /usr has no line). x-systemd.growfs: the PXE installer grows the state partition
    // (the last) to the disk's end, and systemd-growfs then grows ext4 online (no unmount,
    // no e2fsprogs); a no-op otherwise. The ESP at /efi: systemd-bless-boot and axoha-update
    // find the loader entries there. By GPT partition name, which every build gives its
    // partitions alike (stages/disk.rs), not by PARTUUID, which is this build's: an update
    // brings the new image's factory /etc, and the /etc update takes a file the node never
    // changed from it; with PARTUUIDs, the updated node's fstab named partitions of a disk it
    // does not have, and it stopped in emergency mode. The ESP is `nofail` with a device
    // timeout: a failed fsck or mount of it is no emergency mode (which nothing would leave
    // in a blessed boot); without /efi, blessing fails and boot counting falls back. The
    // timeout is generous: the node booted from this ESP, so it is there, and first boot
    // reads the node file from it (a Secure Boot node's metadata). 30 s ran out under TCG
    // on a loaded machine before udev had even started after switch-root (measured).
    tree.write(
        "etc/fstab",
        b"# axoha appliance: / is the state partition; /usr is the verity-checked image\n\
          PARTLABEL=state / ext4 rw,errors=remount-ro,x-systemd.growfs 0 1\n\
          PARTLABEL=ESP /efi vfat umask=0077,noatime,nofail,x-systemd.device-timeout=3min 0 2\n",
        0o644,
    )?;
    tree.create_dir_all("efi", &mut Vec::new())?;
    for name in tree.list("etc/ssh")? {
        if name.starts_with("ssh_host_") {
            tree.remove_file(&format!("etc/ssh/{name}"))?;
        }
    }
    Ok(())
}

fn systemctl(tree: &Tree) -> std::process::Command {
    let mut cmd = command("systemctl");
    cmd.arg(format!("--root={}", tree.path().display()));
    cmd
}

/// Our units and chrony enabled; the SSH server only where someone can log in; the package
/// manager's timers masked.
fn units(plan: &Plan, tree: &Tree) -> Result<()> {
    let mut enable = ENABLED_UNITS.to_vec();
    enable.push(plan.profile.chrony().0);
    // The daemon first boot writes the links' files for (networkd, NetworkManager).
    enable.push(plan.profile.network_unit(plan.definition.network()));
    let ssh = plan.profile.ssh_unit();
    let has_ssh = tree.is_file(&format!("usr/lib/systemd/system/{ssh}"));
    if !plan.definition.users.is_empty() {
        if !has_ssh {
            bail!("users are defined but the image has no {ssh} (openssh-server)");
        }
        enable.push(ssh);
    }
    run(systemctl(tree).arg("enable").args(&enable)).context("enabling units in the image")?;
    if plan.definition.users.is_empty() && has_ssh {
        run(systemctl(tree).args(["disable", ssh]))
            .context("disabling the SSH server (no [[users]])")?;
    }
    let timers: Vec<&str> = plan
        .profile
        .package_timers()
        .iter()
        .copied()
        .filter(|t| tree.is_file(&format!("usr/lib/systemd/system/{t}")))
        .collect();
    if !timers.is_empty() {
        run(systemctl(tree).arg("mask").args(&timers))
            .context("masking the package manager's timers")?;
    }
    Ok(())
}

/// The SELinux module (compiled outside the tree), installed into the tree's policy store
/// (on Debian's reference policy after `axoha_rhel_types`, which declares the RHEL types it
/// requires), and the mode in `/etc/selinux/config`. The rootfs stage labelled the
/// distribution's files; `label` (after the factory copy) labels ours.
fn selinux(plan: &Plan, mode: SelinuxMode, tree: &Tree) -> Result<()> {
    let policy = plan.profile.selinux_policy();
    let scratch = tempfile::tempdir().context("a directory for the SELinux module")?;
    if plan.profile.selinux_needs_rhel_types() {
        let types = axoha_selinux::compile_rhel_types(scratch.path())?;
        axoha_selinux::install_module(tree.path(), policy, &types)?;
    }
    let pp = axoha_selinux::compile_module(scratch.path())?;
    axoha_selinux::install_module(tree.path(), policy, &pp)?;
    tree.write(
        "etc/selinux/config",
        mode.config_file(policy).as_bytes(),
        0o644,
    )
}

/// Labels every file of the image tree with its SELinux policy's file contexts, where the
/// image runs SELinux: last, once nothing more is written to the tree (the factory copy and
/// etc-base.json included), so a first boot finds every file labelled and needs no relabel.
/// /usr keeps its labels in the squashfs, the rest in the state partition's ext4.
pub fn label(plan: &Plan, tree: &Tree) -> Result<()> {
    if plan.definition.selinux().is_none() {
        return Ok(());
    }
    axoha_selinux::label_tree(tree.path(), plan.profile.selinux_policy())
}
