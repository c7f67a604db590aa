//! Distribution profiles: what each one installs and where from.

use serde::{Deserialize, Serialize};

pub use axoha_firstboot::render::network::NetworkBackend;

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

    /// RHEL-family images carry the keepalived SELinux module (design: Debian's policy lacks
    /// the types it uses).
    pub fn has_selinux(self) -> bool {
        self == Profile::Almalinux10
    }
}
