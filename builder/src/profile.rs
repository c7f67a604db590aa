//! Distribution profiles: what each one installs and where from.

use serde::{Deserialize, Serialize};

pub use axoha_firstboot::render::network::NetworkBackend;

use crate::selinux_mode::SelinuxMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
pub enum Profile {
    #[serde(rename = "almalinux-10")]
    #[value(name = "almalinux-10")]
    Almalinux10,
    #[serde(rename = "debian-12")]
    #[value(name = "debian-12")]
    Debian12,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "almalinux-10",
            Profile::Debian12 => "debian-12",
        }
    }

    pub fn default_release(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "10",
            Profile::Debian12 => "bookworm",
        }
    }

    pub fn default_mirror(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "https://repo.almalinux.org/almalinux",
            Profile::Debian12 => "http://deb.debian.org/debian",
        }
    }

    /// The package file type the AxoRouter package must have.
    pub fn package_extension(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "rpm",
            Profile::Debian12 => "deb",
        }
    }

    /// Distribution packages of the appliance (besides AxoRouter and `extra_packages`).
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Profile::Almalinux10 => &[
                "kernel",
                "dracut",
                // dracut's RHEL default is host-only (an initramfs for the build host's
                // hardware); this package makes every dracut run in the image generic.
                "dracut-config-generic",
                // dmsetup: dracut's dm module (under systemd-veritysetup) needs it in the
                // initrd, for /dev/mapper/usr from `usrhash=`.
                "device-mapper",
                "systemd",
                "systemd-boot-unsigned",
                "keepalived",
                "firewalld",
                "selinux-policy-targeted",
                "iproute",
                "procps-ng",
                "openssh-server",
                "sudo",
                "chrony",
            ],
            Profile::Debian12 => &[
                "systemd-sysv",
                "udev",
                "dbus",
                "linux-image-amd64",
                // dracut, not initramfs-tools (which it replaces): the initrd mounts the
                // verity-checked /usr (`usrhash=`, systemd-veritysetup) and runs our module
                // (dracut/90axoha); dmsetup is what systemd-veritysetup needs in the initrd.
                "dracut",
                "dmsetup",
                // sfdisk: the on-node updater sets the PARTUUIDs of the slot it writes.
                "fdisk",
                "systemd-boot",
                "keepalived",
                "firewalld",
                "iproute2",
                "kmod",
                "procps",
                "openssh-server",
                "sudo",
                // /etc/protocols and /etc/services: firewalld refuses to start without them
                // (it resolves "esp" and "vrrp" by name). AlmaLinux has them in `setup`.
                "netbase",
                // `nft list ruleset` for operators: firewalld itself uses the library.
                "nftables",
                "chrony",
            ],
        }
    }

    /// The network daemons an image of this profile can run, its default first. AlmaLinux 10
    /// ships no systemd-networkd (only EPEL has it); Debian has both, networkd in `systemd`.
    pub fn network_backends(self) -> &'static [NetworkBackend] {
        match self {
            Profile::Almalinux10 => &[NetworkBackend::NetworkManager],
            Profile::Debian12 => &[NetworkBackend::Networkd, NetworkBackend::NetworkManager],
        }
    }

    pub fn default_network(self) -> NetworkBackend {
        self.network_backends()[0]
    }

    /// What a network daemon adds to [`Profile::packages`]: Debian 12's `network-manager` is
    /// NetworkManager 1.42, the keyfile format AlmaLinux 10's NetworkManager reads too.
    pub fn network_packages(self, backend: NetworkBackend) -> &'static [&'static str] {
        match (self, backend) {
            (_, NetworkBackend::Networkd) => &[],
            (Profile::Almalinux10, NetworkBackend::NetworkManager) => &["NetworkManager"],
            (Profile::Debian12, NetworkBackend::NetworkManager) => &["network-manager"],
        }
    }

    /// The network daemon's unit, enabled in the image (first boot writes its files).
    pub fn network_unit(self, backend: NetworkBackend) -> &'static str {
        match backend {
            NetworkBackend::Networkd => "systemd-networkd.service",
            NetworkBackend::NetworkManager => "NetworkManager.service",
        }
    }

    /// The OpenSSH server's unit: enabled only when the definition has `[[users]]`.
    pub fn ssh_unit(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "sshd.service",
            Profile::Debian12 => "ssh.service",
        }
    }

    /// chrony, the time daemon of both profiles: its unit and its configuration file.
    pub fn chrony(self) -> (&'static str, &'static str) {
        match self {
            Profile::Almalinux10 => ("chronyd.service", "etc/chrony.conf"),
            Profile::Debian12 => ("chrony.service", "etc/chrony/chrony.conf"),
        }
    }

    /// The package manager's timers: an appliance is replaced as a whole, never updated in
    /// place, so they would only wake the node (and reach for a mirror) for nothing.
    pub fn package_timers(self) -> &'static [&'static str] {
        match self {
            Profile::Almalinux10 => &["dnf-makecache.timer"],
            Profile::Debian12 => &[
                "apt-daily.timer",
                "apt-daily-upgrade.timer",
                "dpkg-db-backup.timer",
            ],
        }
    }

    /// SELinux when the definition has no `selinux` key: almalinux-10 runs it enforcing (what
    /// its policy package sets up); debian-12 runs none (AppArmor is Debian's default).
    pub fn default_selinux(self) -> Option<SelinuxMode> {
        match self {
            Profile::Almalinux10 => Some(SelinuxMode::Enforcing),
            Profile::Debian12 => None,
        }
    }

    /// The SELinux policy an image of this profile carries: its store's and its
    /// `/etc/selinux/` directory's name.
    pub fn selinux_policy(self) -> &'static str {
        match self {
            Profile::Almalinux10 => "targeted",
            Profile::Debian12 => "default",
        }
    }

    /// What SELinux adds to [`Profile::packages`]: almalinux-10 has its policy there already;
    /// debian-12 adds the reference policy (`selinux-policy-default`, with `policycoreutils`
    /// and `selinux-utils`: setfiles, getenforce) and auditd (`ausearch`, the operator's
    /// tool for denials, as on RHEL).
    pub fn selinux_packages(self) -> &'static [&'static str] {
        match self {
            Profile::Almalinux10 => &[],
            Profile::Debian12 => &["selinux-policy-default", "auditd"],
        }
    }

    /// The kernel arguments that turn SELinux on: Debian's kernel starts AppArmor unless told
    /// otherwise; RHEL's starts SELinux by default.
    pub fn selinux_kernel_args(self) -> &'static [&'static str] {
        match self {
            Profile::Almalinux10 => &[],
            Profile::Debian12 => &["security=selinux", "selinux=1"],
        }
    }

    /// Whether the policy lacks the Fedora/RHEL types our module requires, so the image
    /// installs `axoha_rhel_types` (declarations only) before it.
    pub fn selinux_needs_rhel_types(self) -> bool {
        self == Profile::Debian12
    }
}
