//! The files axoha bakes into every image and the units it enables: the list the plan
//! hashes into the build key and the layer writes. It sits below both, so neither has to
//! import the other.

use axoha_firstboot::render::keepalived::NOTIFY_SCRIPT;

use crate::image_path::ImagePath;
use crate::unit_search;

/// Files from `systemd/`, `firstboot/files/` and `dracut/` baked into every image: (absolute
/// path in the image, contents, mode).
pub const OWN_FILES: [(&str, &str, u32); 15] = [
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
    (
        "/usr/lib/systemd/system/axoha-metrics.service",
        include_str!("../../systemd/axoha-metrics.service"),
        0o644,
    ),
    (
        // Logs of axoha's units survive a reboot (issue 25).
        "/usr/lib/systemd/journald.conf.d/axoha.conf",
        include_str!("../../systemd/journald.conf.d/axoha.conf"),
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
pub const ENABLED_UNITS: [&str; 9] = [
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
    // The Prometheus endpoint and the login banner.
    "axoha-metrics.service",
];

/// Our binary, installed by the layer.
pub const FIRSTBOOT_BIN: &str = "/usr/bin/axoha-firstboot";
/// The updater (crate `update/`): run on the node and, from the initrd, `prepare-root`.
pub const UPDATE_BIN: &str = "/usr/bin/axoha-update";
/// The Prometheus endpoint and login banner (crate `metrics/`, axoha-metrics.service); not in
/// the initrd.
pub const METRICS_BIN: &str = "/usr/bin/axoha-metrics";
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

/// Files the appliance owns or promises, beyond `OWN_FILES` and first boot's own outputs
/// (`axoha_firstboot::render::output_paths`), each with the reason a definition's `[[files]]`
/// must not replace it: the layer or first boot writes it, or it decides whether the
/// appliance's services run at all.
const CLAIMS: [(Claim, &str); 38] = [
    (Claim::File(FIRSTBOOT_BIN), "axoha's own binary"),
    (Claim::File(UPDATE_BIN), "axoha's own updater"),
    (Claim::File(METRICS_BIN), "axoha's own metrics endpoint"),
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
    (
        Claim::File("/etc/ld.so.preload"),
        "the dynamic loader puts it into every process, keepalived and axoha's own included",
    ),
    (
        Claim::Below("/run"),
        "a tmpfs at boot: what the image holds there is hidden, and runtime units live there",
    ),
    (Claim::Below("/var/run"), "a link to /run, a tmpfs at boot"),
    (
        Claim::File("/etc/systemd/system.conf"),
        "the service manager's defaults (DefaultEnvironment=, ...) apply to every unit",
    ),
    (
        Claim::Below("/etc/systemd/system.conf.d"),
        "the service manager's defaults (DefaultEnvironment=, ...) apply to every unit",
    ),
    (
        Claim::Below("/usr/lib/systemd/system.conf.d"),
        "the service manager's defaults (DefaultEnvironment=, ...) apply to every unit",
    ),
    (
        Claim::Below("/usr/local/lib/systemd/system.conf.d"),
        "the service manager's defaults (DefaultEnvironment=, ...) apply to every unit",
    ),
    (
        Claim::Below("/etc/systemd/system-generators"),
        "generators write units and drop-ins for every unit at boot",
    ),
    (
        Claim::Below("/usr/local/lib/systemd/system-generators"),
        "generators write units and drop-ins for every unit at boot",
    ),
    (
        Claim::Below("/usr/lib/systemd/system-generators"),
        "generators write units and drop-ins for every unit at boot",
    ),
    (
        Claim::Below("/etc/systemd/system-environment-generators"),
        "environment generators set variables for every unit at boot",
    ),
    (
        Claim::Below("/usr/lib/systemd/system-environment-generators"),
        "environment generators set variables for every unit at boot",
    ),
    (
        Claim::Below("/usr/local/lib/systemd/system-environment-generators"),
        "environment generators set variables for every unit at boot",
    ),
];

/// The units the appliance depends on, under every name systemd knows them by (aliases get
/// drop-ins too): their unit files, drop-ins, dependency directories and enablement links are
/// the appliance's to set (`unit_search::applies` says which paths those are).
pub const APPLIANCE_UNITS: [&str; 33] = [
    "axoha-firstboot.service",
    "axoha-metrics.service",
    "axoha-heartbeat.service",
    "axoha-boot-check.service",
    "axoha-boot-deadline.service",
    "axoha-update-record.service",
    "keepalived.service",
    "axorouter.service",
    "firewalld.service",
    "dbus-org.fedoraproject.FirewallD1.service",
    "chrony.service",
    "chronyd.service",
    "ssh.service",
    "sshd.service",
    "ssh.socket",
    "sshd-keygen.target",
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "dbus-org.freedesktop.network1.service",
    "NetworkManager.service",
    "dbus-org.freedesktop.NetworkManager.service",
    // Rollback: boot counting blesses an entry only through these.
    "systemd-bless-boot.service",
    "boot-complete.target",
    // The targets and waits the appliance's units are ordered by or pulled in with.
    "default.target",
    "multi-user.target",
    "basic.target",
    "sysinit.target",
    "local-fs.target",
    "network-pre.target",
    "network.target",
    "network-online.target",
    "systemd-networkd-wait-online.service",
    "NetworkManager-wait-online.service",
];

/// `EnvironmentFile=`s of the appliance's units as the distributions ship them (the
/// variables there reach the daemons' command lines: Debian's keepalived.service runs
/// `keepalived --dont-fork $DAEMON_ARGS` from /etc/default/keepalived, so `--use-file=`
/// there would run a config nothing validated). Debian 12's are checked against the
/// build host's units by a test, and the layer reads the tree's own units too
/// (`tree_environment_files`).
const ENVIRONMENT_FILES: [(&str, &str); 9] = [
    ("/etc/default/keepalived", "keepalived.service (Debian)"),
    ("/etc/sysconfig/keepalived", "keepalived.service (RHEL)"),
    ("/etc/default/firewalld", "firewalld.service (Debian)"),
    ("/etc/sysconfig/firewalld", "firewalld.service (RHEL)"),
    ("/etc/default/chrony", "chrony.service (Debian)"),
    ("/etc/sysconfig/chronyd", "chronyd.service (RHEL)"),
    ("/etc/default/ssh", "ssh.service (Debian)"),
    ("/etc/sysconfig/sshd", "sshd.service (RHEL)"),
    (
        "/etc/sysconfig/network",
        "NetworkManager's ifcfg settings (RHEL)",
    ),
];

/// The `EnvironmentFile=`s of every appliance unit in `tree` as it is (unit files and
/// drop-ins in every unit directory), each with its unit: the layer refuses `[[files]]` on
/// them, whatever the distribution's units say today.
pub fn tree_environment_files(tree: &crate::tree::Tree) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for dir in unit_search::UNIT_DIRS {
        let rel = &dir[1..];
        for entry in tree.list(rel).unwrap_or_default() {
            let file = format!("{dir}/{entry}");
            let Ok(image_path) = file.parse::<ImagePath>() else {
                continue;
            };
            // The unit file itself, or a drop-in directory (`NAME.d`, entries below it apply).
            let probe = format!("{file}/x.conf").parse::<ImagePath>();
            let unit = APPLIANCE_UNITS.iter().find(|u| {
                if entry.ends_with(".d") {
                    probe.as_ref().is_ok_and(|p| {
                        unit_search::applies(p, u).is_some_and(|w| w.starts_with("a drop-in"))
                    })
                } else {
                    image_path.file_name() == **u && unit_search::applies(&image_path, u).is_some()
                }
            });
            let Some(unit) = unit else {
                continue;
            };
            let texts: Vec<String> = if tree.is_dir(&file[1..]) {
                tree.list(&file[1..])
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|n| tree.read_to_string(&format!("{}/{n}", &file[1..])).ok())
                    .collect()
            } else {
                tree.read_to_string(&file[1..]).ok().into_iter().collect()
            };
            for text in texts {
                for env in unit_search::environment_files(&text) {
                    found.push((env, (*unit).to_owned()));
                }
            }
        }
    }
    found
}

/// Every place a claim starts: a claimed file or the top of a claimed directory. A path that
/// is one of these or above one (`/etc`, `/var/lib`) holds something of the appliance's.
pub fn claim_roots() -> Vec<String> {
    let mut roots: Vec<&str> = OWN_FILES.iter().map(|(p, _, _)| *p).collect();
    roots.extend(CLAIMS.iter().map(|(c, _)| match c {
        Claim::File(p) | Claim::Below(p) | Claim::Named(p, _, _) => *p,
    }));
    roots.extend(unit_search::UNIT_DIRS);
    roots.extend(ENVIRONMENT_FILES.iter().map(|(p, _)| *p));
    let mut roots: Vec<String> = roots.into_iter().map(str::to_owned).collect();
    roots.extend(
        axoha_firstboot::render::output_paths()
            .iter()
            .map(|p| format!("/{p}")),
    );
    roots
}

/// Why `path` is the appliance's, or `None` when a definition may write it. `homes` are the
/// home directories of the definition's users (their `authorized_keys` come from ssh_keys).
pub fn claimed(path: &ImagePath, homes: &[String]) -> Option<String> {
    if OWN_FILES.iter().any(|(p, _, _)| path.as_str() == *p) {
        return Some("axoha's own unit, drop-in or script".into());
    }
    let first_boot = axoha_firstboot::render::output_paths();
    if first_boot.iter().any(|p| path.as_str() == format!("/{p}")) {
        return Some("first boot writes it from the node's metadata".into());
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
    for unit in APPLIANCE_UNITS {
        if let Some(what) = unit_search::applies(path, unit) {
            return Some(format!("{what}, which the appliance runs as it ships it"));
        }
    }
    let own_env = OWN_FILES
        .iter()
        .filter(|(p, _, _)| p.starts_with("/usr/lib/systemd/system/"))
        .flat_map(|(_, text, _)| unit_search::environment_files(text));
    if own_env.into_iter().any(|e| path.as_str() == e) {
        return Some("an EnvironmentFile= of axoha's own units".into());
    }
    if let Some((_, unit)) = ENVIRONMENT_FILES.iter().find(|(f, _)| path.as_str() == *f) {
        return Some(format!(
            "an EnvironmentFile= of {unit}: its variables reach the daemon's command line"
        ));
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
            "/usr/bin/axoha-metrics",
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
            // Issue 21: systemd's own search rules, not a hand list.
            "/etc/systemd/system/axoha-.service.d/zz.conf",
            "/etc/systemd/system/service.d/zz.conf",
            "/usr/local/lib/systemd/system/target.d/zz.conf",
            "/etc/systemd/system/systemd-.service.d/zz.conf",
            "/etc/systemd/system.control/keepalived.service.d/50-x.conf",
            "/etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service.d/x.conf",
            "/etc/systemd/system/keepalived.service.wants/evil.service",
            "/etc/systemd/system/multi-user.target.wants/keepalived.service",
            "/etc/systemd/system/boot-complete.target.d/x.conf",
            "/etc/systemd/system/systemd-bless-boot.service",
            "/etc/systemd/system/NetworkManager.service.d/x.conf",
            "/etc/default/keepalived",
            "/etc/sysconfig/keepalived",
            "/etc/default/ssh",
            "/etc/systemd/system.conf",
            "/etc/systemd/system.conf.d/env.conf",
            "/etc/systemd/system-generators/g",
            "/run/systemd/system/keepalived.service.d/x.conf",
            "/var/run/x",
            "/etc/ld.so.preload",
            "/etc/systemd/system/default.target",
            "/etc/systemd/system/network-online.target.wants/x.service",
            "/etc/systemd/system/systemd-networkd-wait-online.service.d/x.conf",
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
            "/etc/systemd/system/site.service.d/x.conf",
            "/etc/systemd/system/axoha-first-.service.d/x.conf",
            "/etc/systemd/system/site-.service.d/x.conf",
            "/etc/default/site",
        ] {
            assert_eq!(why(p), None, "{p} is the operator's");
        }
    }

    /// The build host is Debian 12, the debian-12 profile's distribution: every
    /// EnvironmentFile= of an appliance unit it has (keepalived at least: scripts/install-deps
    /// installs it) is claimed.
    #[test]
    fn the_distributions_environment_files_are_claimed() {
        let mut seen = 0;
        for unit in APPLIANCE_UNITS {
            let Ok(text) = std::fs::read_to_string(format!("/usr/lib/systemd/system/{unit}"))
            else {
                continue;
            };
            for env in unit_search::environment_files(&text) {
                seen += 1;
                assert!(why(&env).is_some(), "{env} ({unit}) must be claimed");
            }
        }
        assert!(
            seen > 0,
            "no appliance unit with an EnvironmentFile= on this host"
        );
    }

    #[test]
    fn the_trees_own_environment_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let tree = crate::tree::Tree::open(dir.path()).unwrap();
        tree.write(
            "usr/lib/systemd/system/keepalived.service",
            b"[Service]\nEnvironmentFile=-/etc/keepalived/env\n",
            0o644,
        )
        .unwrap();
        tree.write(
            "usr/lib/systemd/system/axorouter.service.d/vendor.conf",
            b"[Service]\nEnvironmentFile=/etc/axorouter/env\n",
            0o644,
        )
        .unwrap();
        tree.write(
            "usr/lib/systemd/system/site.service",
            b"[Service]\nEnvironmentFile=/etc/site/env\n",
            0o644,
        )
        .unwrap();
        let mut found = tree_environment_files(&tree);
        found.sort();
        assert_eq!(
            found,
            [
                ("/etc/axorouter/env".into(), "axorouter.service".into()),
                ("/etc/keepalived/env".into(), "keepalived.service".into()),
            ]
        );
    }

    #[test]
    fn every_own_file_is_claimed() {
        for (p, _, _) in OWN_FILES {
            assert!(why(p).is_some(), "{p}");
        }
    }
}
