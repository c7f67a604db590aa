//! cloud-init NoCloud seed: <https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html>
//!
//! The seed is a directory (or a filesystem labelled `cidata`) holding `meta-data`, a YAML
//! mapping. Besides cloud-init's own keys it carries our `axoha:` mapping. `local-hostname`
//! stands in for `axoha.hostname` when the mapping has none, as cloud-init would set it anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::{bounds, AxohaKeys, Key, MetadataProvider, Source};
use axoha_root::{Location, RootDir, METADATA_MAX};

/// The parts of NoCloud `meta-data` we read (other keys are cloud-init's and are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct NoCloudMetaData {
    #[serde(rename = "instance-id")]
    pub instance_id: Option<String>,
    #[serde(rename = "local-hostname")]
    pub local_hostname: Option<String>,
    pub axoha: Option<AxohaKeys>,
}

impl NoCloudMetaData {
    pub fn into_values(self) -> Result<BTreeMap<Key, String>> {
        let mut values = self.axoha.unwrap_or_default().into_values()?;
        if let Some(h) = self.local_hostname {
            values.entry(Key::Hostname).or_insert(h);
        }
        Ok(values)
    }
}

/// Where the seed is.
pub enum NoCloudSeed {
    /// `meta-data` in a seed directory under the root (`/var/lib/cloud/seed/nocloud*`).
    InRoot(Location),
    /// A directory holding `meta-data` (`--seed DIR`); read confined to that directory.
    Dir(PathBuf),
    /// A block device labelled `cidata`, mounted read-only while it is read.
    Device(PathBuf),
    Absent,
}

impl NoCloudSeed {
    /// Finds the seed: an explicit directory, else the seed directories under `root`, else
    /// (only on a live system, `root` = `/`) a `cidata` filesystem (see
    /// `SourcePaths::resolve` for when udev is waited for first).
    pub fn locate(root: &RootDir, explicit: Option<&Path>) -> NoCloudSeed {
        if let Some(dir) = explicit {
            return NoCloudSeed::Dir(dir.to_owned());
        }
        for dir in [
            "var/lib/cloud/seed/nocloud",
            "var/lib/cloud/seed/nocloud-net",
        ] {
            let meta_data = format!("{dir}/meta-data");
            if root.exists(&meta_data) {
                return NoCloudSeed::InRoot(Location::InRoot(root.clone(), meta_data));
            }
        }
        if root.path() == Path::new("/") {
            if let Some(dev) = super::device::find_by_label(&["cidata", "CIDATA"]) {
                return NoCloudSeed::Device(dev);
            }
        }
        NoCloudSeed::Absent
    }
}

impl MetadataProvider for NoCloudSeed {
    fn source(&self) -> Source {
        Source::NoCloud
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        match self {
            NoCloudSeed::Absent => Ok(BTreeMap::new()),
            NoCloudSeed::InRoot(location) => read(location),
            NoCloudSeed::Dir(dir) => read_dir(dir),
            NoCloudSeed::Device(dev) => {
                let mount = crate::seed_mount::ReadOnlyMount::new(dev, "NoCloud seed")?;
                read_dir(mount.path())
            }
        }
    }
}

/// `meta-data` in a seed directory (or a mounted seed): a link in it (an ISO's Rock Ridge
/// link, say) is resolved inside that directory, never to a file of the node.
fn read_dir(dir: &Path) -> Result<BTreeMap<Key, String>> {
    let seed = RootDir::open(dir).context("NoCloud seed")?;
    read(&Location::InRoot(seed, "meta-data".into()))
}

fn read(location: &Location) -> Result<BTreeMap<Key, String>> {
    let shown = location.shown();
    let context = || format!("NoCloud seed {}: invalid meta-data", shown.display());
    match location.read(METADATA_MAX).with_context(context)? {
        Some(bytes) => bounds::text(bytes)
            .and_then(|text| parse(&text))
            .with_context(context),
        None => bail!("NoCloud seed: {} does not exist", shown.display()),
    }
}

pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let meta: NoCloudMetaData = serde_yaml_ng::from_str(text)?;
    let values = meta.into_values()?;
    super::spelling::check_yaml(text)?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_axoha_mapping_and_local_hostname() {
        let v = parse(
            "instance-id: node-a\nlocal-hostname: router-a\naxoha:\n  role: primary\n  vrid: 51\n  peers: [192.0.2.11]\n",
        )
        .unwrap();
        assert_eq!(v[&Key::Role], "primary");
        assert_eq!(v[&Key::Vrid], "51");
        assert_eq!(v[&Key::Peers], "192.0.2.11");
        assert_eq!(v[&Key::Hostname], "router-a");
    }

    #[test]
    fn unknown_axoha_keys_are_named() {
        let err = format!("{:#}", parse("axoha:\n  rol: primary\n").unwrap_err());
        assert!(err.contains("rol"), "{err}");
    }
}
