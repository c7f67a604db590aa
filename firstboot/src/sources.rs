//! Which files each metadata source is read from, given `--root` and the explicit flags.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::metadata::{
    ClusterToml, Cmdline, InstanceData, Key, MetadataProvider, NoCloudSeed, Resolved, Source,
};

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

    /// The sources that are plain files, highest precedence first: kernel command line,
    /// instance data, /etc and baked cluster.toml.
    fn file_providers(&self) -> Vec<Box<dyn MetadataProvider>> {
        let root = &self.root;
        let cmdline = match &self.cmdline {
            Some(p) => Cmdline::new(p.clone(), false),
            // A test root has no /proc; a live system always has /proc/cmdline.
            None => Cmdline::new(root.join("proc/cmdline"), !self.is_live()),
        };
        vec![
            Box::new(cmdline),
            Box::new(InstanceData::locate(root, self.instance_data.as_deref())),
            Box::new(ClusterToml::new(
                root.join("etc/axoha/cluster.toml"),
                Source::EtcClusterToml,
            )),
            Box::new(ClusterToml::new(
                root.join("usr/lib/axoha/cluster.toml"),
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
        let mut layers = self
            .file_providers()
            .iter()
            .map(|p| p.metadata())
            .collect::<Result<Vec<_>>>()?;
        let complete = Key::REQUIRED
            .iter()
            .all(|k| layers.iter().any(|l| l.values.contains_key(k)));
        let seed = NoCloudSeed::locate(&self.root, self.seed.as_deref(), !complete);
        layers.push(seed.metadata()?);
        Ok(Resolved::merge(layers))
    }
}
