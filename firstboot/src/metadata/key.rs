use std::fmt;
use std::str::FromStr;

use super::keys_file::Shape;
use crate::types::{self, ValueError};

/// The one table of metadata keys: for each, its name in every source (`axoha.<name>` on the
/// kernel command line, `<name>` in the `axoha:` mapping and in cluster.toml, `health.<field>`
/// as the `[health]` table), the type its text parses into, the kind of value a file may
/// give (`Shape`), and whether a node needs it or what it defaults to. `Key`, `Key::ALL`,
/// `Key::check`, `Key::shape`, `Key::need` and the [`typed`] markers `NodeConfig` reads
/// through are all generated from it, so they cannot disagree.
macro_rules! keys {
    ($( $variant:ident = $name:literal: $ty:ty, $shape:ident, $need:expr; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Key {
            $($variant,)*
        }

        impl Key {
            pub const ALL: [Key; [$(Key::$variant),*].len()] = [$(Key::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Key::$variant => $name,)*
                }
            }

            /// The kind of value a file may give for this key.
            pub fn shape(self) -> Shape {
                match self {
                    $(Key::$variant => Shape::$shape,)*
                }
            }

            /// Whether a node needs the key, or what it is without it.
            pub fn need(self) -> Need {
                match self {
                    $(Key::$variant => $need,)*
                }
            }

            /// Whether `text` is a valid value (the key's type parses it).
            pub fn check(self, text: &str) -> Result<(), ValueError> {
                match self {
                    $(Key::$variant => text.parse::<$ty>().map(|_| ()),)*
                }
            }
        }

        /// One marker type per key, naming the type its value parses into: `NodeConfig`
        /// reads every value through these, so it reads each key as the table says.
        pub mod typed {
            use super::*;
            $(
                pub struct $variant;
                impl TypedKey for $variant {
                    type Value = $ty;
                    const KEY: Key = Key::$variant;
                }
            )*
        }
    };
}

/// A key with the type of its value (see [`typed`]).
pub trait TypedKey {
    type Value: FromStr<Err = ValueError>;
    const KEY: Key;
}

/// Whether a node can do without a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    /// Unset means this text (a valid value of the key's type).
    Default(&'static str),
}

keys! {
    Role = "role": types::Role, Text, Need::Required;
    HaIp = "ha_ip": types::IpNet, Text, Need::Required;
    Peers = "peers": types::Peers, List, Need::Required;
    Vip = "vip": types::IpNet, Text, Need::Required;
    HaIf = "ha_if": types::InterfaceName, Text, Need::Required;
    VipIf = "vip_if": types::InterfaceName, Text, Need::Required;
    PublicIp = "public_ip": types::IpNet, Text, Need::Optional;
    PublicPeers = "public_peers": types::Peers, List, Need::Optional;
    Vrid = "vrid": types::Vrid, Integer, Need::Required;
    Priority = "priority": types::Priority, Integer, Need::Optional;
    Hostname = "hostname": types::Hostname, Text, Need::Optional;
    VrrpVersion = "vrrp_version": types::VrrpVersion, Integer, Need::Default("3");
    AdvertInt = "advert_int": types::AdvertInt, Seconds, Need::Optional;
    AuthPass = "auth_pass": types::AuthPass, Text, Need::Optional;
    HealthCommand = "health.command": types::HealthCommand, Text, Need::Default(DEFAULT_HEALTH_COMMAND);
    HealthInterval = "health.interval": types::Seconds, Integer, Need::Default("1");
    HealthTimeout = "health.timeout": types::Seconds, Integer, Need::Default("2");
    HealthRise = "health.rise": types::Count, Integer, Need::Default("2");
    HealthFall = "health.fall": types::Count, Integer, Need::Default("2");
    Gateway = "gateway": types::Gateway, Text, Need::Optional;
    Dns = "dns": types::DnsServers, List, Need::Optional;
    Ntp = "ntp": types::NtpServers, List, Need::Optional;
    FirewallPorts = "firewall.ports": types::Ports, List, Need::Default("");
    FirewallSsh = "firewall.ssh": types::Flag, Flag, Need::Default("false");
    // Unset: the HA link's subnet (`MetricsFrom::ha_link`, which needs `ha_ip`).
    MetricsFrom = "metrics_from": types::MetricsFrom, List, Need::Optional;
}

/// What a node checks AxoRouter with when the metadata names no health command.
pub const DEFAULT_HEALTH_COMMAND: &str = "/usr/bin/systemctl is-active --quiet axorouter.service";

impl Key {
    /// Keys a node cannot do without (everything else is optional or has a default).
    pub fn required() -> impl Iterator<Item = Key> {
        Key::ALL.into_iter().filter(|k| k.need() == Need::Required)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_in_the_table_is_a_valid_value() {
        for key in Key::ALL {
            if let Need::Default(text) = key.need() {
                assert_eq!(key.check(text), Ok(()), "{key}'s default {text:?}");
            }
        }
        let required: Vec<_> = Key::required().map(Key::name).collect();
        assert_eq!(
            required,
            ["role", "ha_ip", "peers", "vip", "ha_if", "vip_if", "vrid"]
        );
    }
}
