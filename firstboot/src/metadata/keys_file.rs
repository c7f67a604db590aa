//! The `axoha` key mapping as it appears in files: cluster.toml (TOML), the NoCloud
//! `meta-data` `axoha:` mapping (YAML) and cloud-init instance data (JSON).
//!
//! One serde type serves all three formats, so a key means the same thing everywhere. Unknown
//! keys are errors (`deny_unknown_fields`): a typo such as `vird` must not silently fall back
//! to a default.
//!
//! Each value keeps its kind ([`Scalar`]) until [`Shape`] checks it against its key: lists
//! only for the list keys, `true`/`false` only for `firewall.ssh`, numbers only for numeric
//! keys (integers only, except the fractional `advert_int`). Text is accepted for every key,
//! as on the kernel command line, and parsed by the same strict type parsers.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Result};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Key;

/// A value as written, with its kind kept: `vrid: 51.0` is a float, not the text "51.0"
/// that might parse. [`Shape::text`] checks the kind against the key, then the text is
/// parsed into its type in `config` like a kernel command line value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    List(Vec<Scalar>),
    /// A mapping (or a TOML date, which serde sees as one): never a value of ours.
    Map,
    /// YAML `~` or JSON `null` inside a list (a key set to null is simply not set).
    Null,
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "an integer",
            Scalar::Float(_) => "a floating-point number",
            Scalar::Bool(_) => "a boolean",
            Scalar::List(_) => "a list",
            Scalar::Map => "a mapping",
            Scalar::Null => "null",
        }
    }
}

/// Accepts every kind (so the refusal is ours, naming the key, in every format alike).
impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or list")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
                Ok(i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Scalar::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Map)
            }
        }
        d.deserialize_any(Any)
    }
}

/// What kind of value a key takes in a file. Text always works, as on the kernel command
/// line (the type's parser decides); besides text a key takes only its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Text,
    /// An integer (or its decimal text).
    Integer,
    /// A number of seconds: an integer or a fractional number (`advert_int`).
    Seconds,
    /// `true` or `false`.
    Flag,
    /// A list of strings (or the same as comma-separated text).
    List,
}

impl Shape {
    fn wants(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::Integer => "an integer",
            Shape::Seconds => "a number of seconds",
            Shape::Flag => "true or false",
            Shape::List => "a list of strings",
        }
    }

    /// The value as text for the type's parser, or why its kind is wrong for `key`. A
    /// secret's value is never part of the reason.
    pub fn text(self, key: Key, value: &Scalar) -> Result<String> {
        let text = match (self, value) {
            (_, Scalar::Str(s)) => Some(s.clone()),
            (Shape::Integer | Shape::Seconds, Scalar::Int(i)) => Some(i.to_string()),
            // Rust prints the shortest text that reads back as the same f64: 0.2, not
            // 0.2000000000000000111; the AdvertInt parser then takes at most 2 decimals.
            (Shape::Seconds, Scalar::Float(f)) => Some(f.to_string()),
            (Shape::Flag, Scalar::Bool(b)) => Some(b.to_string()),
            (Shape::List, Scalar::List(items)) => {
                let mut texts = Vec::new();
                for item in items {
                    match item {
                        Scalar::Str(s) if !s.contains(',') => texts.push(s.clone()),
                        Scalar::Str(_) => {
                            bail!("{key}: a list item holds a comma; list each address on its own")
                        }
                        other => bail!(
                            "{key}: expected a list of strings, but an item is {}",
                            other.kind()
                        ),
                    }
                }
                Some(texts.join(","))
            }
            _ => None,
        };
        match text {
            Some(t) => Ok(t),
            None => bail!("{key}: expected {}, not {}", self.wants(), value.kind()),
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
    pub metrics_from: Option<Scalar>,
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
    /// The keys that are set, as text; a value of the wrong kind for its key is an error
    /// naming the key (see [`Shape`]).
    pub fn into_values(self) -> Result<BTreeMap<Key, String>> {
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
            (Key::MetricsFrom, self.metrics_from),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .map(|(key, value)| Ok((key, key.shape().text(key, &value)?)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_takes_its_own_kind_only() {
        let ok = [
            (Key::Vrid, Scalar::Int(51), "51"),
            (Key::Vrid, Scalar::Str("51".into()), "51"),
            (Key::AdvertInt, Scalar::Float(0.2), "0.2"),
            (Key::AdvertInt, Scalar::Int(1), "1"),
            (Key::FirewallSsh, Scalar::Bool(true), "true"),
            (
                Key::Peers,
                Scalar::List(vec![Scalar::Str("a".into()), Scalar::Str("b".into())]),
                "a,b",
            ),
        ];
        for (key, value, text) in ok {
            assert_eq!(key.shape().text(key, &value).unwrap(), text);
        }
        let bad = [
            (Key::Vrid, Scalar::Float(51.0)),
            (Key::Vrid, Scalar::Bool(true)),
            (Key::Vrid, Scalar::List(vec![Scalar::Int(51)])),
            (Key::Priority, Scalar::Map),
            (Key::Role, Scalar::Int(1)),
            (Key::AuthPass, Scalar::Int(1234)),
            (Key::FirewallSsh, Scalar::Int(1)),
            (
                Key::HaIp,
                Scalar::List(vec![Scalar::Str("192.0.2.1/24".into())]),
            ),
            (Key::Peers, Scalar::List(vec![Scalar::Int(1)])),
            (Key::Peers, Scalar::List(vec![Scalar::Str("a,b".into())])),
            (Key::FirewallPorts, Scalar::List(vec![Scalar::Int(4317)])),
        ];
        for (key, value) in bad {
            let err = key.shape().text(key, &value).unwrap_err().to_string();
            assert!(err.starts_with(key.name()), "{err}");
        }
    }
}
