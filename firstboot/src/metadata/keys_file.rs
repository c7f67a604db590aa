//! The `axoha` key mapping as it appears in files: cluster.toml (TOML), the NoCloud
//! `meta-data` `axoha:` mapping (YAML) and cloud-init instance data (JSON).
//!
//! One serde type serves all three formats, so a key means the same thing everywhere. Unknown
//! keys are errors (`deny_unknown_fields`): a typo such as `vird` must not silently fall back
//! to a default.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Key;

/// A scalar or list as written; converted to text here and parsed into a type in `config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Scalar>),
}

impl Scalar {
    fn to_text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::List(items) => items
                .iter()
                .map(Scalar::to_text)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxohaKeys {
    pub role: Option<Scalar>,
    pub ha_ip: Option<Scalar>,
    pub peers: Option<Scalar>,
    pub vip: Option<Scalar>,
    pub ha_if: Option<Scalar>,
    pub vip_if: Option<Scalar>,
    pub public_ip: Option<Scalar>,
    pub public_peers: Option<Scalar>,
    pub vrid: Option<Scalar>,
    pub priority: Option<Scalar>,
    pub hostname: Option<Scalar>,
    pub vrrp_version: Option<Scalar>,
    pub advert_int: Option<Scalar>,
    pub auth_pass: Option<Scalar>,
    pub health: Option<HealthKeys>,
    pub gateway: Option<Scalar>,
    pub dns: Option<Scalar>,
    pub ntp: Option<Scalar>,
    pub firewall: Option<FirewallKeys>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallKeys {
    pub ports: Option<Scalar>,
    pub ssh: Option<Scalar>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthKeys {
    pub command: Option<Scalar>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub rise: Option<Scalar>,
    pub fall: Option<Scalar>,
}

impl AxohaKeys {
    /// The keys that are set, as text.
    pub fn into_values(self) -> BTreeMap<Key, String> {
        let health = self.health.unwrap_or_default();
        let firewall = self.firewall.unwrap_or_default();
        [
            (Key::Role, self.role),
            (Key::HaIp, self.ha_ip),
            (Key::Peers, self.peers),
            (Key::Vip, self.vip),
            (Key::HaIf, self.ha_if),
            (Key::VipIf, self.vip_if),
            (Key::PublicIp, self.public_ip),
            (Key::PublicPeers, self.public_peers),
            (Key::Vrid, self.vrid),
            (Key::Priority, self.priority),
            (Key::Hostname, self.hostname),
            (Key::VrrpVersion, self.vrrp_version),
            (Key::AdvertInt, self.advert_int),
            (Key::AuthPass, self.auth_pass),
            (Key::HealthCommand, health.command),
            (Key::HealthInterval, health.interval),
            (Key::HealthTimeout, health.timeout),
            (Key::HealthRise, health.rise),
            (Key::HealthFall, health.fall),
            (Key::Gateway, self.gateway),
            (Key::Dns, self.dns),
            (Key::Ntp, self.ntp),
            (Key::FirewallPorts, firewall.ports),
            (Key::FirewallSsh, firewall.ssh),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v.to_text())))
        .collect()
    }
}
