//! Which files each metadata source is read from, given `--root` and the explicit flags.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::metadata::{
    ClusterToml, Cmdline, InstanceData, MetadataProvider, NoCloudSeed, Resolved, Source,
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

    /// The providers, highest precedence first.
    pub fn providers(&self) -> Vec<Box<dyn MetadataProvider>> {
        let root = &self.root;
        let cmdline = match &self.cmdline {
            Some(p) => Cmdline::new(p.clone(), false),
            // A test root has no /proc; a live system always has /proc/cmdline.
            None => Cmdline::new(root.join("proc/cmdline"), !self.is_live()),
        };
        vec![
            Box::new(cmdline),
            Box::new(InstanceData::locate(root, self.instance_data.as_deref())),
            Box::new(NoCloudSeed::locate(root, self.seed.as_deref())),
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
    pub fn resolve(&self) -> Result<Resolved> {
        let layers = self
            .providers()
            .iter()
            .map(|p| p.metadata())
            .collect::<Result<Vec<_>>>()?;
        Ok(Resolved::merge(layers))
    }
}
