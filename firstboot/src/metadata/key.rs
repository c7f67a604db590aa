use std::fmt;

/// Every metadata key of the contract in `design.md`.
///
/// Sources use the same names (`axoha.<name>` on the kernel command line, `<name>` in the
/// `axoha:` mapping and in cluster.toml, `health.<field>` as the `[health]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Role,
    HaIp,
    Peers,
    Vip,
    HaIf,
    VipIf,
    PublicIp,
    PublicPeers,
    Vrid,
    Priority,
    Hostname,
    VrrpVersion,
    AdvertInt,
    AuthPass,
    HealthCommand,
    HealthInterval,
    HealthTimeout,
    HealthRise,
    HealthFall,
    Gateway,
    Dns,
    Ntp,
    FirewallPorts,
    FirewallSsh,
    MetricsFrom,
}

impl Key {
    pub const ALL: [Key; 25] = [
        Key::Role,
        Key::HaIp,
        Key::Peers,
        Key::Vip,
        Key::HaIf,
        Key::VipIf,
        Key::PublicIp,
        Key::PublicPeers,
        Key::Vrid,
        Key::Priority,
        Key::Hostname,
        Key::VrrpVersion,
        Key::AdvertInt,
        Key::AuthPass,
        Key::HealthCommand,
        Key::HealthInterval,
        Key::HealthTimeout,
        Key::HealthRise,
        Key::HealthFall,
        Key::Gateway,
        Key::Dns,
        Key::Ntp,
        Key::FirewallPorts,
        Key::FirewallSsh,
        Key::MetricsFrom,
    ];

    /// Keys a node cannot do without (everything else has a default).
    pub const REQUIRED: [Key; 7] = [
        Key::Role,
        Key::HaIp,
        Key::Peers,
        Key::Vip,
        Key::HaIf,
        Key::VipIf,
        Key::Vrid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Key::Role => "role",
            Key::HaIp => "ha_ip",
            Key::Peers => "peers",
            Key::Vip => "vip",
            Key::HaIf => "ha_if",
            Key::VipIf => "vip_if",
            Key::PublicIp => "public_ip",
            Key::PublicPeers => "public_peers",
            Key::Vrid => "vrid",
            Key::Priority => "priority",
            Key::Hostname => "hostname",
            Key::VrrpVersion => "vrrp_version",
            Key::AdvertInt => "advert_int",
            Key::AuthPass => "auth_pass",
            Key::HealthCommand => "health.command",
            Key::HealthInterval => "health.interval",
            Key::HealthTimeout => "health.timeout",
            Key::HealthRise => "health.rise",
            Key::HealthFall => "health.fall",
            Key::Gateway => "gateway",
            Key::Dns => "dns",
            Key::Ntp => "ntp",
            Key::FirewallPorts => "firewall.ports",
            Key::FirewallSsh => "firewall.ssh",
            Key::MetricsFrom => "metrics_from",
        }
    }

    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Secrets never come from the kernel command line (every local user can read
    /// /proc/cmdline) nor from cluster.toml (the baked one is inside a shared image).
    pub fn is_secret(self) -> bool {
        self == Key::AuthPass
    }

    /// The health command runs as root; the kernel command line is the one source an
    /// attacker with console access to the boot menu can edit without any credential.
    /// Table keys (`health.*`, `firewall.*`) are cluster-wide and live in cluster.toml or the
    /// seed's mapping only. `metrics_from` opens the metrics port to networks, a firewall
    /// decision like `firewall.ports`: the same sources only.
    pub fn allowed_on_cmdline(self) -> bool {
        !self.is_secret() && !self.name().contains('.') && self != Key::MetricsFrom
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
