//! Metadata sources and their precedence.
//!
//! Each source is a [`MetadataProvider`] in a module of its own (the shape of afterburn's
//! providers). A provider only reads and parses its format into text values per [`Key`];
//! typing and validation happen once, for all sources, in `config`.

mod bounds;
mod cluster_toml;
mod cmdline;
mod device;
/// `axoha.*` boot arguments first boot passes over (not node metadata).
pub use cmdline::BOOT_CONTROL_ARGS;
pub use device::settle_udev;
mod instance_data;
mod key;
mod keys_file;
mod nocloud;
mod openstack;
mod spelling;

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Result};

pub use cluster_toml::ClusterToml;
pub use cmdline::Cmdline;
pub use instance_data::InstanceData;
pub use key::{typed, Key, Need, TypedKey, DEFAULT_HEALTH_COMMAND};
pub use keys_file::AxohaKeys;
pub use nocloud::{NoCloudMetaData, NoCloudSeed};
pub use openstack::config_drive::ConfigDrive;
pub use openstack::http::Url as MetadataUrl;
pub use openstack::metadata_service::{self, MetadataService, Reach};

/// The parsers of each format, for tests and fuzzing: text (bytes for the command line) in,
/// text values per key out, exactly as the providers use them.
pub mod parse {
    pub use super::bounds::{nesting, text as bounded_text, without_bom, MAX_NESTING};
    pub use super::cluster_toml::parse as cluster_toml;
    pub use super::cmdline::parse as cmdline;
    pub use super::instance_data::parse as instance_data;
    pub use super::nocloud::parse as nocloud;
    pub use super::openstack::parse as openstack_meta_data;
}

/// Where a value came from. The order of the variants is the precedence, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cmdline,
    /// The ESP's node file (`/efi/axoha/node.conf`, the boot contract's `NODE_FILE`).
    NodeFile,
    InstanceData,
    NoCloud,
    /// OpenStack config drive (`config-2`, `openstack/latest/meta_data.json`).
    ConfigDrive,
    /// OpenStack metadata service (`http://169.254.169.254/openstack/latest/meta_data.json`).
    MetadataService,
    EtcClusterToml,
    BakedClusterToml,
    Default,
}

impl Source {
    /// May this source set this key? See [`Key::is_secret`] and [`Key::allowed_on_cmdline`].
    pub fn may_set(self, key: Key) -> bool {
        match self {
            // Written where the command line's arguments were (installer, `boot --karg`): the
            // same keys, no secrets (any ESP reader could see them).
            Source::Cmdline | Source::NodeFile => key.allowed_on_cmdline(),
            Source::InstanceData | Source::NoCloud | Source::ConfigDrive => true,
            // Any local process can fetch it (no credential, like /proc/cmdline): no secrets.
            Source::MetadataService => !key.is_secret(),
            Source::EtcClusterToml | Source::BakedClusterToml | Source::Default => !key.is_secret(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Cmdline => "kernel command line",
            Source::NodeFile => "ESP node file /efi/axoha/node.conf",
            Source::InstanceData => "cloud-init instance data",
            Source::NoCloud => "NoCloud seed",
            Source::ConfigDrive => "OpenStack config drive",
            Source::MetadataService => "OpenStack metadata service",
            Source::EtcClusterToml => "/etc/axoha/cluster.toml",
            Source::BakedClusterToml => "/usr/lib/axoha/cluster.toml",
            Source::Default => "built-in default",
        })
    }
}

/// The text values one source sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMetadata {
    pub source: Source,
    pub values: BTreeMap<Key, String>,
}

/// One metadata source.
pub trait MetadataProvider {
    fn source(&self) -> Source;

    /// The values this source sets, or an empty map when the source is absent (no seed, no
    /// instance data). Unreadable or malformed input is an error naming the file.
    fn values(&self) -> Result<BTreeMap<Key, String>>;

    /// The values, checked against what this source may set.
    fn metadata(&self) -> Result<RawMetadata> {
        let source = self.source();
        let values = self.values()?;
        for key in values.keys() {
            if !source.may_set(*key) {
                bail!(
                    "{source}: key {key} is not accepted from this source ({})",
                    if key.is_secret() {
                        "secrets come only from cloud-init metadata or an OpenStack config \
                         drive, which only root reads"
                    } else {
                        "the health command runs as root and is set in cluster.toml, cloud-init \
                         metadata or OpenStack metadata"
                    }
                );
            }
        }
        Ok(RawMetadata { source, values })
    }
}

/// A value together with the source that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub value: String,
    pub source: Source,
}

/// For each key, the value from the highest-precedence source that sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved(BTreeMap<Key, Sourced>);

impl Resolved {
    /// Merges layers; sources are ranked by [`Source`]'s order, not by argument order.
    pub fn merge(layers: impl IntoIterator<Item = RawMetadata>) -> Resolved {
        let mut layers: Vec<RawMetadata> = layers.into_iter().collect();
        layers.sort_by_key(|l| l.source);
        let mut resolved = BTreeMap::new();
        for layer in layers {
            for (key, value) in layer.values {
                resolved.entry(key).or_insert(Sourced {
                    value,
                    source: layer.source,
                });
            }
        }
        Resolved(resolved)
    }

    pub fn get(&self, key: Key) -> Option<&Sourced> {
        self.0.get(&key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Sourced)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(source: Source, pairs: &[(Key, &str)]) -> RawMetadata {
        RawMetadata {
            source,
            values: pairs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn precedence_follows_the_design_whatever_the_argument_order() {
        let resolved = Resolved::merge([
            layer(
                Source::BakedClusterToml,
                &[(Key::Vrid, "1"), (Key::HaIf, "eth9")],
            ),
            layer(
                Source::NoCloud,
                &[(Key::Vrid, "3"), (Key::Role, "secondary")],
            ),
            layer(Source::Cmdline, &[(Key::Role, "primary")]),
            layer(Source::InstanceData, &[(Key::Vrid, "2")]),
            layer(
                Source::EtcClusterToml,
                &[(Key::HaIf, "eth1"), (Key::Vip, "x")],
            ),
        ]);
        let got = |k| {
            let s = resolved.get(k).unwrap();
            (s.value.as_str(), s.source)
        };
        assert_eq!(got(Key::Role), ("primary", Source::Cmdline));
        assert_eq!(got(Key::Vrid), ("2", Source::InstanceData));
        assert_eq!(got(Key::HaIf), ("eth1", Source::EtcClusterToml));
        assert_eq!(got(Key::Vip), ("x", Source::EtcClusterToml));
        assert!(resolved.get(Key::Peers).is_none());
    }

    #[test]
    fn secrets_are_refused_from_cmdline_and_cluster_toml() {
        assert!(!Source::Cmdline.may_set(Key::AuthPass));
        assert!(!Source::EtcClusterToml.may_set(Key::AuthPass));
        assert!(!Source::BakedClusterToml.may_set(Key::AuthPass));
        assert!(Source::NoCloud.may_set(Key::AuthPass));
        assert!(Source::InstanceData.may_set(Key::AuthPass));
        assert!(!Source::Cmdline.may_set(Key::HealthCommand));
    }
}
