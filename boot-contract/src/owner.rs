//! Who owns each kernel argument, and the one rule for adding arguments anywhere.
//!
//! An argument has one owner, and only its owner writes it:
//! - the image and the updater own what selects and mounts the system (`usrhash=`, `root=`,
//!   `rw`/`ro`, `init=`, ...): a copy elsewhere would boot another /usr or another root, and
//!   the kernel and systemd take the last one;
//! - a node's `axoha.<key>` metadata comes only from its validated description (the cluster
//!   file through `pxe-config` or `seed`, or metadata first boot reads);
//! - `axoha.install_*` are the PXE installer's; `axoha.factory_reset` and
//!   `axoha.initrd_deadline=0` (no deadline) are one boot's requests to the initrd, typed at
//!   the menu; a deadline of 1 s or more is a setting like `console=` (slow storage needs a
//!   longer one) and may be persisted and carried;
//! - which Linux security module runs and how (`security=`, `selinux=`, `enforcing=`, `lsm=`) is
//!   the image's too: the builder derives it from the definition's `selinux` key (the image
//!   carries the policy those arguments load), and it reaches an update's entry as part of the
//!   image's command line a bundle carries; neither the definition's `kernel_cmdline` nor a
//!   node may contradict the policy the image was built for;
//! - what changes which units a boot starts (`systemd.unit=`, `systemd.mask=`, `rescue`,
//!   a debug shell, ...) is one boot's, typed at the boot menu, never persisted: a counted
//!   boot must run the health check that blesses it.
//!
//! Everything else (`console=`, `net.ifnames=`, ...) is free: the definition's
//! `kernel_cmdline` and a node's extra arguments may carry it. Every added argument is one
//! word (no whitespace, no control character, no double quote), so no argument ever needs
//! quoting and none can split into two or run onto another line.

use crate::cmdline::key_str;

/// The owner of an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Selects and mounts the system: written by the builder and the updater only.
    Image,
    /// Which security module runs, and how (`security=selinux selinux=1`): derived by the
    /// builder from the definition's `selinux` key, carried by update bundles.
    Lsm,
    /// `axoha.<key>`: a node's metadata.
    Node,
    /// `axoha.install_*`: the PXE installer's parameters.
    Installer,
    /// `axoha.factory_reset`, `axoha.initrd_deadline=0` (or a value the initrd would not
    /// take): one boot's requests.
    BootControl,
    /// Changes what this boot starts: typed at the boot menu for one boot.
    OneBoot,
    /// Anything else.
    Free,
}

/// The boot arguments of the initrd and the updater (not metadata: first boot passes over
/// them).
pub const BOOT_CONTROL: [&str; 3] = [
    "axoha.initrd_deadline",
    "axoha.factory_reset",
    "axoha.boot_deadline",
];
/// `axoha.factory_reset`: asks the initrd for a factory reset (typed at the boot menu).
pub const FACTORY_RESET: &str = BOOT_CONTROL[1];
/// `axoha.initrd_deadline=SECONDS`: how long the initrd waits before it reboots.
pub const INITRD_DEADLINE: &str = BOOT_CONTROL[0];
/// `axoha.boot_deadline=SECONDS`: how long a counted boot may take to be blessed
/// (systemd/axoha-boot-deadline.service).
pub const BOOT_DEADLINE: &str = BOOT_CONTROL[2];

/// What selects the kernel's root, /usr, init and initrd, and how they are mounted
/// (the kernel's `root=`, `rootfstype=`, `rootflags=`, `ro`/`rw`, `init=`, `rdinit=`, the EFI
/// stub's `initrd=`, GRUB's `BOOT_IMAGE=`; systemd's `usrhash=`/`roothash=`, `mount.usr*=`,
/// `systemd.verity*`; dracut's `rd.` spellings of the same).
const IMAGE: &[&str] = &[
    "root",
    "rootfstype",
    "rootflags",
    "ro",
    "rw",
    "init",
    "rdinit",
    "initrd",
    "BOOT_IMAGE",
    "usrhash",
    "roothash",
    "mount.usr",
    "mount.usrfstype",
    "mount.usrflags",
    "systemd.verity",
    "rd.systemd.verity",
    "systemd.verity_root_data",
    "systemd.verity_root_hash",
    "systemd.verity_root_options",
    "systemd.verity_usr_data",
    "systemd.verity_usr_hash",
    "systemd.verity_usr_options",
    "systemd.gpt_auto",
    "rd.systemd.gpt_auto",
    "systemd.volatile",
    "rd.systemd.volatile",
    "fstab",
    "rd.fstab",
];

/// The security module's arguments: the kernel's `security=` and `lsm=` (which LSMs run),
/// `selinux=` (SELinux on or off) and `enforcing=` (enforcing or permissive).
const LSM: &[&str] = &["security", "lsm", "selinux", "enforcing"];

/// What changes which units a boot starts or hands a shell to the console (systemd's
/// `systemd.unit=`, `systemd.mask=`, `systemd.wants=`, the runlevel words, the debug and
/// crash shells; dracut's breakpoints and shell). Each is legitimate for one boot typed at
/// the menu; persisted, it would keep a counted boot from ever being blessed or open a root
/// shell on every boot.
const ONE_BOOT: &[&str] = &[
    "systemd.unit",
    "rd.systemd.unit",
    "systemd.mask",
    "rd.systemd.mask",
    "systemd.wants",
    "rd.systemd.wants",
    "systemd.debug_shell",
    "rd.systemd.debug_shell",
    "systemd.crash_shell",
    "systemd.confirm_spawn",
    "systemd.run",
    "systemd.run_success_action",
    "systemd.run_failure_action",
    "rescue",
    "emergency",
    "single",
    "s",
    "S",
    "-s",
    "1",
    "2",
    "3",
    "4",
    "5",
    "rd.break",
    "rd.shell",
    "rd.emergency",
    "rd.rescue",
];

/// A deadline the initrd's and the boot's deadline units take: 1 to 6 decimal digits, no
/// leading zero (dracut/90axoha/axoha-initrd-deadline.service,
/// systemd/axoha-boot-deadline.service).
fn is_deadline(v: &str) -> bool {
    (1..=6).contains(&v.len()) && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit())
}

/// Who owns `arg` (`key=value` or a flag; quotes as the kernel reads them).
pub fn owner(arg: &str) -> Owner {
    let key = key_str(arg);
    for deadline in [INITRD_DEADLINE, BOOT_DEADLINE] {
        if key == deadline
            && arg
                .strip_prefix(deadline)
                .and_then(|v| v.strip_prefix('='))
                .is_some_and(is_deadline)
        {
            return Owner::Free;
        }
    }
    if let Some(rest) = key.strip_prefix("axoha.") {
        return if BOOT_CONTROL.contains(&key) {
            Owner::BootControl
        } else if rest.starts_with("install_") {
            Owner::Installer
        } else {
            Owner::Node
        };
    }
    if IMAGE.contains(&key) {
        Owner::Image
    } else if LSM.contains(&key) {
        Owner::Lsm
    } else if ONE_BOOT.contains(&key) {
        Owner::OneBoot
    } else {
        Owner::Free
    }
}

/// Where an argument is being added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The definition's `kernel_cmdline`: every node's entry.
    Definition,
    /// A node's extra arguments for the installed system: `pxe-config --karg`, the
    /// installer's `axoha.install_karg=`.
    NodeExtra,
    /// `axoha-image boot --karg`: one VM boot of a snapshot (metadata, boot-control and
    /// one-boot arguments are what it is for; `enforcing=1` tries a permissive image
    /// enforcing).
    VmBoot,
    /// The image's command line as the builder made it and an update bundle carries it: the
    /// definition's `kernel_cmdline` and the security module's arguments derived from its
    /// `selinux` key.
    Bundle,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Definition => "the definition's kernel_cmdline",
            Place::NodeExtra => "a node's extra kernel arguments",
            Place::VmBoot => "a VM boot's kernel arguments",
            Place::Bundle => "the image's kernel command line",
        }
    }

    fn allows(self, owner: Owner) -> bool {
        match self {
            Place::Definition | Place::NodeExtra => owner == Owner::Free,
            Place::VmBoot => matches!(
                owner,
                Owner::Free | Owner::Lsm | Owner::Node | Owner::BootControl | Owner::OneBoot
            ),
            Place::Bundle => matches!(owner, Owner::Free | Owner::Lsm),
        }
    }
}

/// Why an owner's argument cannot be added elsewhere.
fn owned_by(owner: Owner) -> &'static str {
    match owner {
        Owner::Image => "it selects or mounts the system, which the image and the updater own",
        Owner::Lsm => {
            "it chooses the security module and its mode, which the image's `selinux` key owns \
             (set selinux = \"permissive\" or \"enforcing\" in the definition)"
        }
        Owner::Node => {
            "axoha.* metadata comes only from the node's validated description \
             (the cluster file: pxe-config, seed)"
        }
        Owner::Installer => "axoha.install_* are the installer's own parameters",
        Owner::BootControl => "it is a request for one boot: type it at the boot menu",
        Owner::OneBoot => {
            "it changes what a boot starts: type it at the boot menu for one boot \
             (persisted, a counted boot would never be blessed)"
        }
        Owner::Free => "",
    }
}

/// The one rule for an argument added at `place`: one word (no whitespace, control character
/// or double quote: nothing ever needs quoting), and one its owner lets `place` write.
pub fn check(place: Place, arg: &str) -> Result<(), String> {
    if arg.is_empty() {
        return Err(format!("{}: an empty argument", place.name()));
    }
    if arg
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(format!(
            "{} {arg:?}: one word, without whitespace, control characters or double quotes",
            place.name()
        ));
    }
    let owner = owner(arg);
    if !place.allows(owner) {
        return Err(format!(
            "{} {arg:?}: {} may not set it: {}",
            place.name(),
            place.name(),
            owned_by(owner)
        ));
    }
    Ok(())
}

/// `check` for every word of `line`, which must have no quotes (so splitting on whitespace
/// is the kernel's splitting).
pub fn check_line(place: Place, line: &str) -> Result<(), String> {
    if line
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace() || c == '"')
    {
        return Err(format!(
            "{} {line:?}: no quotes or control characters",
            place.name()
        ));
    }
    if line.contains(['\n', '\r', '\x0b', '\x0c']) {
        return Err(format!("{} {line:?}: one line", place.name()));
    }
    line.split_ascii_whitespace()
        .try_for_each(|a| check(place, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        for a in [
            "usrhash=ab",
            "root=PARTUUID=x",
            "\"root=/dev/sda\"",
            "rw",
            "ro",
            "init=/bin/sh",
            "initrd=\\x",
            "mount.usr=/dev/sda2",
            "systemd.verity=0",
        ] {
            assert_eq!(owner(a), Owner::Image, "{a}");
        }
        for a in [
            "security=selinux",
            "selinux=1",
            "enforcing=0",
            "lsm=selinux",
        ] {
            assert_eq!(owner(a), Owner::Lsm, "{a}");
        }
        assert_eq!(owner("axoha.role=primary"), Owner::Node);
        assert_eq!(owner("axoha.vrid"), Owner::Node);
        assert_eq!(owner("axoha.install_url=x"), Owner::Installer);
        assert_eq!(owner("axoha.factory_reset"), Owner::BootControl);
        assert_eq!(owner("axoha.factory_reset=1"), Owner::BootControl);
        assert_eq!(owner("axoha.initrd_deadline=0"), Owner::BootControl);
        assert_eq!(owner("axoha.initrd_deadline=007"), Owner::BootControl);
        assert_eq!(owner("axoha.initrd_deadline=1234567"), Owner::BootControl);
        assert_eq!(owner("axoha.initrd_deadline"), Owner::BootControl);
        assert_eq!(owner("axoha.initrd_deadline=600"), Owner::Free);
        assert_eq!(owner("axoha.boot_deadline=900"), Owner::Free);
        assert_eq!(owner("axoha.boot_deadline=0"), Owner::BootControl);
        for a in [
            "systemd.unit=rescue.target",
            "systemd.mask=axoha-boot-check.service",
            "rescue",
            "1",
            "systemd.debug_shell",
            "rd.break=pre-mount",
        ] {
            assert_eq!(owner(a), Owner::OneBoot, "{a}");
        }
        for a in [
            "console=ttyS0",
            "net.ifnames=0",
            "quiet",
            "rootwait2=1",
            "axoha",
        ] {
            assert_eq!(owner(a), Owner::Free, "{a}");
        }
    }

    #[test]
    fn the_one_rule() {
        for place in [Place::Definition, Place::NodeExtra] {
            assert!(check(place, "console=ttyS0,115200").is_ok());
            assert!(check(place, "net.ifnames=0").is_ok());
            for bad in [
                "axoha.role=secondary",
                "usrhash=00",
                "root=/dev/sda1",
                "rw",
                "init=/bin/sh",
                "axoha.install_disk=/dev/sda",
                "axoha.factory_reset",
                "systemd.unit=rescue.target",
                "selinux=0",
                "enforcing=0",
                "security=apparmor",
                "a b",
                "x=\"y\"",
                "x=\ny",
                "",
            ] {
                let e = check(place, bad).unwrap_err();
                assert!(e.contains(&format!("{bad:?}")) || bad.is_empty(), "{e}");
            }
        }
        assert!(check(Place::VmBoot, "axoha.role=primary").is_ok());
        assert!(check(Place::VmBoot, "axoha.factory_reset").is_ok());
        assert!(check(Place::VmBoot, "systemd.unit=rescue.target").is_ok());
        assert!(check(Place::VmBoot, "usrhash=00").is_err());
        assert!(check(Place::VmBoot, "enforcing=1").is_ok());
        let e = check(Place::Definition, "selinux=1").unwrap_err();
        assert!(e.contains("`selinux` key"), "{e}");
        // The image's line as a bundle carries it: free arguments and the security module's.
        assert!(check_line(Place::Bundle, "console=ttyS0 security=selinux selinux=1").is_ok());
        for bad in [
            "usrhash=00",
            "axoha.role=primary",
            "systemd.unit=x",
            "axoha.factory_reset",
        ] {
            assert!(check(Place::Bundle, bad).is_err(), "{bad}");
        }
        assert!(check(Place::VmBoot, "axoha.install_url=x").is_err());
        assert!(check_line(Place::Definition, "console=tty0  console=ttyS0").is_ok());
        assert!(check_line(Place::Definition, "console=tty0\nrw").is_err());
        assert!(check_line(Place::Definition, "quiet root=/dev/sda").is_err());
        assert!(check_line(Place::Definition, "").is_ok());
    }
}
