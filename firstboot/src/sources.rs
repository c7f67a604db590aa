//! Which files each metadata source is read from, given `--root` and the explicit flags.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::metadata::{
    ClusterToml, Cmdline, InstanceData, Key, MetadataProvider, NoCloudSeed, Resolved, Source,
};
use crate::root::{Location, RootDir};

/// Where to read from. Explicit paths are taken as given; defaults live under `root`.
#[derive(Debug, Clone)]
pub struct SourcePaths {
    pub root: PathBuf,
    pub cmdline: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    pub instance_data: Option<PathBuf>,
}

impl SourcePaths {
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The root every default path is resolved inside of (see `root.rs`).
    pub fn open_root(&self) -> Result<RootDir> {
        RootDir::open(&self.root)
    }

    /// The sources that are plain files, highest precedence first: kernel command line,
    /// instance data, /etc and baked cluster.toml.
    fn file_providers(&self, root: &RootDir) -> Vec<Box<dyn MetadataProvider>> {
        let in_root = |rel: &str| Location::InRoot(root.clone(), rel.to_owned());
        let cmdline = match &self.cmdline {
            Some(p) => Cmdline::new(Location::Given(p.clone()), false),
            // A test root has no /proc; a live system always has /proc/cmdline.
            None => Cmdline::new(in_root("proc/cmdline"), !self.is_live()),
        };
        vec![
            Box::new(cmdline),
            Box::new(InstanceData::locate(root, self.instance_data.as_deref())),
            Box::new(ClusterToml::new(
                in_root("etc/axoha/cluster.toml"),
                Source::EtcClusterToml,
            )),
            Box::new(ClusterToml::new(
                in_root("usr/lib/axoha/cluster.toml"),
                Source::BakedClusterToml,
            )),
        ]
    }

    /// Reads every source and merges them by precedence.
    ///
    /// The NoCloud seed may be a device that udev is still probing this early in boot. When
    /// the file sources already give every required key, the seed can only add optional ones,
    /// so we take it if it is there now and do not wait for udev (seconds under emulation);
    /// otherwise we wait for udev before concluding there is no seed.
    pub fn resolve(&self) -> Result<Resolved> {
        self.resolve_in(&self.open_root()?)
    }

    /// [`SourcePaths::resolve`] with the root already open.
    pub fn resolve_in(&self, root: &RootDir) -> Result<Resolved> {
        let mut layers = self
            .file_providers(root)
            .iter()
            .map(|p| p.metadata())
            .collect::<Result<Vec<_>>>()?;
        let complete = Key::REQUIRED
            .iter()
            .all(|k| layers.iter().any(|l| l.values.contains_key(k)));
        let seed = NoCloudSeed::locate(root, self.seed.as_deref(), !complete);
        layers.push(seed.metadata()?);
        Ok(Resolved::merge(layers))
    }
}
