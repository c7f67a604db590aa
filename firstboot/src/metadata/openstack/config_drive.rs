//! OpenStack config drive: <https://docs.openstack.org/nova/latest/user/config-drive.html>
//!
//! A filesystem labelled `config-2` (ISO 9660 by default, or vfat, whose labels read
//! `CONFIG-2`) that Nova attaches to the server (`openstack server create --config-drive
//! true`, or `force_config_drive` in nova.conf). We read `openstack/latest/meta_data.json`
//! from it (format: the parent module). Under a root, or for images that also run cloud-init,
//! the same tree may sit in cloud-init's seed directory `/var/lib/cloud/seed/config_drive`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::META_DATA_JSON;
use crate::metadata::{bounds, Key, MetadataProvider, Source};
use axoha_root::{Location, RootDir, METADATA_MAX};

/// cloud-init's seed directory for a config drive's tree, under the root.
const SEED_DIR: &str = "var/lib/cloud/seed/config_drive";

/// Where the config drive is.
pub enum ConfigDrive {
    /// `meta_data.json` in the seed directory under the root.
    InRoot(Location),
    /// The drive's top directory (`--config-drive DIR`); read confined to that directory.
    Dir(PathBuf),
    /// A block device labelled `config-2`, mounted read-only while it is read.
    Device(PathBuf),
    Absent,
}

impl ConfigDrive {
    /// Finds the drive: an explicit directory, else the seed directory under `root`, else
    /// (only on a live system, `root` = `/`) a `config-2` filesystem (see
    /// `SourcePaths::resolve` for when udev is waited for first).
    pub fn locate(root: &RootDir, explicit: Option<&Path>) -> ConfigDrive {
        if let Some(dir) = explicit {
            return ConfigDrive::Dir(dir.to_owned());
        }
        let in_root = format!("{SEED_DIR}/{META_DATA_JSON}");
        if root.exists(&in_root) {
            return ConfigDrive::InRoot(Location::InRoot(root.clone(), in_root));
        }
        if root.path() == Path::new("/") {
            if let Some(dev) = crate::metadata::device::find_by_label(&["config-2", "CONFIG-2"]) {
                return ConfigDrive::Device(dev);
            }
        }
        ConfigDrive::Absent
    }
}

impl MetadataProvider for ConfigDrive {
    fn source(&self) -> Source {
        Source::ConfigDrive
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        match self {
            ConfigDrive::Absent => Ok(BTreeMap::new()),
            ConfigDrive::InRoot(location) => read(location),
            ConfigDrive::Dir(dir) => read_dir(dir),
            ConfigDrive::Device(dev) => {
                let mount = crate::seed_mount::ReadOnlyMount::new(dev, "OpenStack config drive")?;
                read_dir(mount.path())
            }
        }
    }
}

/// `meta_data.json` in the drive's tree: a link in it is resolved inside the drive.
fn read_dir(dir: &Path) -> Result<BTreeMap<Key, String>> {
    let drive = RootDir::open(dir).context("OpenStack config drive")?;
    read(&Location::InRoot(drive, META_DATA_JSON.into()))
}

fn read(location: &Location) -> Result<BTreeMap<Key, String>> {
    let shown = location.shown();
    let context = || format!("OpenStack config drive {}", shown.display());
    match location.read(METADATA_MAX).with_context(context)? {
        Some(bytes) => bounds::text(bytes)
            .and_then(|text| super::parse(&text))
            .with_context(context),
        None => bail!("OpenStack config drive: {} does not exist", shown.display()),
    }
}
