//! The files axoha bakes into every image and the units it enables: the list the plan
//! hashes into the build key and the layer writes. It sits below both, so neither has to
//! import the other.

use axoha_firstboot::render::keepalived::NOTIFY_SCRIPT;

use crate::image_path::ImagePath;

/// Files from `systemd/`, `firstboot/files/` and `dracut/` baked into every image: (absolute
/// path in the image, contents, mode).
pub const OWN_FILES: [(&str, &str, u32); 13] = [
    (
        // The path keepalived.conf names: one constant for both crates.
        NOTIFY_SCRIPT,
        include_str!("../../firstboot/files/vrrp-notify"),
        0o755,
    ),
    (
        "/usr/lib/systemd/system/axoha-firstboot.service",
        include_str!("../../systemd/axoha-firstboot.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axoha-heartbeat.service",
        include_str!("../../systemd/axoha-heartbeat.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/keepalived.service.d/axoha.conf",
        include_str!("../../systemd/keepalived.service.d/axoha.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axorouter.service.d/axoha.conf",
        include_str!("../../systemd/axorouter.service.d/axoha.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/ssh.service.d/axoha-host-keys.conf",
        include_str!("../../systemd/ssh.service.d/axoha-host-keys.conf"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system-preset/90-axoha.preset",
        include_str!("../../systemd/90-axoha.preset"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axoha-boot-check.service",
        include_str!("../../systemd/axoha-boot-check.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axoha-boot-deadline.service",
        include_str!("../../systemd/axoha-boot-deadline.service"),
        0o644,
    ),
    (
        "/usr/lib/systemd/system/axoha-update-record.service",
        include_str!("../../systemd/axoha-update-record.service"),
        0o644,
    ),
    // The dracut module (spec "initrd"): dracut --add axoha puts both units in the initrd.
    (
        "/usr/lib/dracut/modules.d/90axoha/module-setup.sh",
        include_str!("../../dracut/90axoha/module-setup.sh"),
        0o755,
    ),
    (
        "/usr/lib/dracut/modules.d/90axoha/axoha-initrd-deadline.service",
        include_str!("../../dracut/90axoha/axoha-initrd-deadline.service"),
        0o644,
    ),
    (
        "/usr/lib/dracut/modules.d/90axoha/axoha-prepare-root.service",
        include_str!("../../dracut/90axoha/axoha-prepare-root.service"),
        0o644,
    ),
];

/// Units enabled in the image (the preset says the same for `systemctl preset`).
pub const ENABLED_UNITS: [&str; 8] = [
    "axoha-firstboot.service",
    "keepalived.service",
    "axoha-heartbeat.service",
    "axorouter.service",
    "firewalld.service",
    // RequiredBy=boot-complete.target: only boots systemd-boot counts reach that target.
    "axoha-boot-check.service",
    // Counted boots only (its condition): reboots one never blessed.
    "axoha-boot-deadline.service",
    // Every boot: remembers failed updates and raises the version floor.
    "axoha-update-record.service",
];

/// Our binary, installed by the layer.
pub const FIRSTBOOT_BIN: &str = "/usr/bin/axoha-firstboot";
/// The updater (crate `update/`): run on the node and, from the initrd, `prepare-root`.
pub const UPDATE_BIN: &str = "/usr/bin/axoha-update";
/// The public key update bundles must be signed with (definition `[update] public_key`).
pub const UPDATE_KEY: &str = "/usr/lib/axoha/update.pub";
/// Where dracut finds our initrd module (repo `dracut/90axoha/`).
pub const DRACUT_MODULE_DIR: &str = "/usr/lib/dracut/modules.d/90axoha";
/// The factory copy of the state tree (everything but /usr), for factory reset and the /etc
/// update after a new /usr.
pub const FACTORY_DIR: &str = "/usr/share/axoha/factory";
/// sha256 of every file of the factory /etc the node's /etc came from (read by
/// `axoha-update prepare-root`).
pub const ETC_BASE: &str = "/var/lib/axoha/etc-base.json";

/// How a path in the image is claimed by the appliance.
enum Claim {
    /// This file.
    File(&'static str),
    /// Everything below this directory.
    Below(&'static str),
    /// Files in this directory whose names start and end so.
    Named(&'static str, &'static str, &'static str),
}

/// Files the appliance owns or promises, beyond `OWN_FILES`, each with the reason a
/// definition's `[[files]]` must not replace it: the layer or first boot writes it, or it
/// decides whether the appliance's services run at all.
const CLAIMS: [(Claim, &str); 29] = [
    (Claim::File(FIRSTBOOT_BIN), "axoha's own binary"),
    (Claim::File(UPDATE_BIN), "axoha's own updater"),
    (
        Claim::Below("/usr/share/axoha"),
        "the factory copy of the state tree, made by the build",
    ),
    (
        Claim::Below("/efi"),
        "the ESP's mount point: its contents are the boot loader's",
    ),
    (
        Claim::Below("/usr/lib/axoha"),
        "the baked cluster defaults, profile and manifest",
    ),
    (
        Claim::Below("/etc/axoha"),
        "first boot's node config; cluster defaults belong in [cluster], checked like metadata",
    ),
    (
        Claim::Below("/var/lib/axoha"),
        "first boot's state and stamp",
    ),
    (
        Claim::File("/etc/keepalived/keepalived.conf"),
        "first boot renders it from the node's metadata",
    ),
    (Claim::File("/etc/passwd"), "accounts come from [[users]]"),
    (Claim::File("/etc/shadow"), "accounts come from [[users]]"),
    (Claim::File("/etc/group"), "accounts come from [[users]]"),
    (Claim::File("/etc/gshadow"), "accounts come from [[users]]"),
    (
        Claim::File(crate::users::SUDOERS),
        "administrators come from [[users]] sudo = true",
    ),
    (
        Claim::Named("/etc/ssh", "ssh_host_", ""),
        "each node makes its own SSH host keys; a shared image carries none",
    ),
    (
        Claim::File("/etc/machine-id"),
        "empty, so that systemd makes each node's identity at first boot",
    ),
    (
        Claim::File("/var/lib/dbus/machine-id"),
        "each node's identity is made at first boot",
    ),
    (
        Claim::File("/etc/resolv.conf"),
        "first boot writes it from the node's dns metadata",
    ),
    (
        Claim::File("/etc/hostname"),
        "first boot writes it from the node's metadata",
    ),
    (
        Claim::File("/etc/hosts"),
        "first boot writes it from the node's metadata",
    ),
    (
        Claim::File("/etc/fstab"),
        "the image's state and ESP partitions",
    ),
    (
        Claim::File("/etc/chrony.conf"),
        "chrony takes its servers from the node's ntp metadata",
    ),
    (
        Claim::File("/etc/chrony/chrony.conf"),
        "chrony takes its servers from the node's ntp metadata",
    ),
    (
        Claim::File("/etc/chrony/sources.d/axoha.sources"),
        "first boot writes it from the node's ntp metadata",
    ),
    (
        Claim::Named("/etc/firewalld/zones", "axoha-", ".xml"),
        "first boot writes the appliance's firewalld zones",
    ),
    (
        Claim::Named("/usr/lib/firewalld/zones", "axoha-", ".xml"),
        "first boot writes the appliance's firewalld zones",
    ),
    (
        Claim::Below("/etc/systemd/system-preset"),
        "presets decide at first boot which of the appliance's units run",
    ),
    (
        Claim::Below("/usr/lib/systemd/system-preset"),
        "presets decide at first boot which of the appliance's units run",
    ),
    (
        Claim::Below("/usr/local/lib/systemd/system-preset"),
        "presets decide at first boot which of the appliance's units run",
    ),
    (
        Claim::Below(DRACUT_MODULE_DIR),
        "axoha's dracut module: the initrd's deadline and state preparation",
    ),
];

/// Where systemd looks for unit files and drop-ins of a unit.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// The units the appliance runs, whose unit files and drop-ins are the appliance's to set.
const APPLIANCE_UNITS: [&str; 12] = [
    "axoha-firstboot.service",
    "axoha-heartbeat.service",
    "axoha-boot-check.service",
    "axoha-boot-deadline.service",
    "axoha-update-record.service",
    "keepalived.service",
    "axorouter.service",
    "firewalld.service",
    "chrony.service",
    "chronyd.service",
    "ssh.service",
    "sshd.service",
];

/// Why `path` is the appliance's, or `None` when a definition may write it. `homes` are the
/// home directories of the definition's users (their `authorized_keys` come from ssh_keys).
pub fn claimed(path: &ImagePath, homes: &[String]) -> Option<String> {
    if OWN_FILES.iter().any(|(p, _, _)| path.as_str() == *p) {
        return Some("axoha's own unit, drop-in or script".into());
    }
    for (claim, why) in &CLAIMS {
        let hit = match claim {
            Claim::File(f) => path.as_str() == *f,
            Claim::Below(d) => path.is_within(d),
            Claim::Named(dir, start, end) => {
                path.parent() == *dir
                    && path.file_name().starts_with(start)
                    && path.file_name().ends_with(end)
            }
        };
        if hit {
            return Some((*why).into());
        }
    }
    for dir in UNIT_DIRS {
        for unit in APPLIANCE_UNITS {
            let file = format!("{dir}/{unit}");
            if path.as_str() == file || path.is_within(&format!("{file}.d")) {
                return Some(format!(
                    "the unit or a drop-in of {unit}, which the appliance runs as it ships it"
                ));
            }
        }
    }
    homes
        .iter()
        .find(|h| path.as_str() == format!("{}/.ssh/authorized_keys", h.trim_end_matches('/')))
        .map(|_| "authorized_keys come from [[users]] ssh_keys".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(p: &str) -> Option<String> {
        claimed(&p.parse().unwrap(), &["/home/ops".into()])
    }

    #[test]
    fn the_appliance_keeps_its_files() {
        for p in [
            "/usr/bin/axoha-firstboot",
            "/bin/axoha-firstboot",
            "/usr/bin/axoha-update",
            "/usr/lib/dracut/modules.d/90axoha/module-setup.sh",
            "/usr/share/axoha/factory/etc/hosts",
            "/var/lib/axoha/etc-base.json",
            "/usr/lib/axoha/cluster.toml",
            "/lib/axoha/x",
            NOTIFY_SCRIPT,
            "/usr/lib/systemd/system/axoha-firstboot.service",
            "/lib/systemd/system/keepalived.service.d/axoha.conf",
            "/etc/systemd/system/keepalived.service",
            "/etc/systemd/system/keepalived.service.d/override.conf",
            "/etc/systemd/system-preset/00-x.preset",
            "/etc/keepalived/keepalived.conf",
            "/etc/passwd",
            "/etc/gshadow",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_rsa_key.pub",
            "/etc/machine-id",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/etc/hosts",
            "/etc/chrony/chrony.conf",
            "/etc/chrony.conf",
            "/etc/chrony/sources.d/axoha.sources",
            "/etc/firewalld/zones/axoha-vip.xml",
            "/etc/axoha/cluster.toml",
            "/var/lib/axoha/firstboot.done",
            "/home/ops/.ssh/authorized_keys",
            "/etc/sudoers.d/axoha-users",
            "/usr/lib/systemd/system/axoha-boot-check.service",
            "/etc/systemd/system/axoha-boot-check.service.d/x.conf",
            "/usr/lib/dracut/modules.d/90axoha/module-setup.sh",
            "/usr/lib/dracut/modules.d/90axoha/extra.sh",
        ] {
            assert!(why(p).is_some(), "{p} must be claimed");
        }
        for p in [
            "/etc/motd",
            "/etc/ssh/sshd_config.d/50-site.conf",
            "/etc/firewalld/zones/public.xml",
            "/etc/chrony/sources.d/site.sources",
            "/usr/local/bin/tool",
            "/etc/systemd/system/site.service",
            "/home/other/.ssh/authorized_keys",
            "/usr/lib/axoha-site/x",
        ] {
            assert_eq!(why(p), None, "{p} is the operator's");
        }
    }

    #[test]
    fn every_own_file_is_claimed() {
        for (p, _, _) in OWN_FILES {
            assert!(why(p).is_some(), "{p}");
        }
    }
}
