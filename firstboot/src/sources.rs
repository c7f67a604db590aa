//! Which files each metadata source is read from, given `--root` and the explicit flags.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::metadata::{
    ClusterToml, Cmdline, ConfigDrive, InstanceData, Key, MetadataProvider, MetadataService,
    MetadataUrl, NoCloudSeed, RawMetadata, Reach, Resolved, Source,
};
use axoha_root::{Location, RootDir};

/// Where to read from. Explicit paths are taken as given; defaults live under `root`.
#[derive(Debug, Clone)]
pub struct SourcePaths {
    pub root: PathBuf,
    pub cmdline: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    pub instance_data: Option<PathBuf>,
    /// An OpenStack config drive's top directory (holding `openstack/latest/meta_data.json`).
    pub config_drive: Option<PathBuf>,
    /// The OpenStack metadata service [default: Nova's on a live system, none under a root].
    pub metadata_url: Option<MetadataUrl>,
    /// How long to try the metadata service [default: `metadata_service::DEFAULT_WAIT`].
    pub metadata_wait: Option<std::time::Duration>,
    /// Set the links up and lease an address for the metadata service as on a live node (for
    /// tests in a network namespace, under a root).
    pub metadata_links: bool,
}

impl SourcePaths {
    /// The running node's own sources, every path at its default.
    pub fn live() -> SourcePaths {
        SourcePaths {
            root: "/".into(),
            cmdline: None,
            seed: None,
            instance_data: None,
            config_drive: None,
            metadata_url: None,
            metadata_wait: None,
            metadata_links: false,
        }
    }

    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The root every default path is resolved inside of (see `root.rs`).
    pub fn open_root(&self) -> Result<RootDir> {
        RootDir::open(&self.root)
    }

    /// The sources that are plain files, highest precedence first: kernel command line, the
    /// ESP's node file, instance data, /etc and baked cluster.toml.
    fn file_providers(&self, root: &RootDir) -> Vec<Box<dyn MetadataProvider>> {
        let in_root = |rel: &str| Location::InRoot(root.clone(), rel.to_owned());
        let cmdline = match &self.cmdline {
            Some(p) => Cmdline::new(Location::Given(p.clone()), false),
            // A test root has no /proc; a live system always has /proc/cmdline.
            None => Cmdline::new(in_root("proc/cmdline"), !self.is_live()),
        };
        let node_file = Cmdline::node_file(in_root(&format!(
            "efi/{}",
            axoha_boot_contract::layout::NODE_FILE
        )));
        vec![
            Box::new(cmdline),
            Box::new(node_file),
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

    /// How the OpenStack metadata service is reached: by default only on a live system (a
    /// test root never reaches the network unless it names a URL).
    fn metadata_reach(&self) -> Reach {
        let wait = self
            .metadata_wait
            .unwrap_or(crate::metadata::metadata_service::DEFAULT_WAIT);
        let bring_up = self.is_live() || self.metadata_links;
        match &self.metadata_url {
            Some(url) => Reach::Url {
                url: url.clone(),
                wait,
                bring_up,
            },
            None if self.is_live() => Reach::Url {
                url: crate::metadata::metadata_service::default_url(),
                wait,
                bring_up,
            },
            None => Reach::Off,
        }
    }

    /// Reads every source and merges them by precedence.
    ///
    /// The NoCloud seed and the config drive may be devices that udev is still probing this
    /// early in boot. When the sources read so far give every required key, they can only
    /// add optional ones, so we take them if they are there now and do not wait for udev
    /// (seconds under emulation); otherwise we wait for udev before concluding there is none.
    ///
    /// The OpenStack metadata service is the one source on the network: it is asked only
    /// when no other per-node source (command line, instance data, seed, config drive) set
    /// anything and required keys are still missing, so every other boot stays off the
    /// network and as fast as before.
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
        // One wait serves both devices (and only a live system has devices to wait for).
        if self.is_live() && !complete(&layers) {
            crate::metadata::settle_udev();
        }
        let seed = NoCloudSeed::locate(root, self.seed.as_deref());
        layers.push(seed.metadata()?);
        let drive = ConfigDrive::locate(root, self.config_drive.as_deref());
        layers.push(drive.metadata()?);
        let answered = layers
            .iter()
            .any(|l| l.source <= Source::ConfigDrive && !l.values.is_empty());
        if !answered && !complete(&layers) {
            let cache = Location::InRoot(
                root.clone(),
                crate::metadata::metadata_service::CACHE.to_owned(),
            );
            layers.push(MetadataService::new(self.metadata_reach(), cache).metadata()?);
        }
        Ok(Resolved::merge(layers))
    }
}

/// Do the layers give every required key?
fn complete(layers: &[RawMetadata]) -> bool {
    Key::required().all(|k| layers.iter().any(|l| l.values.contains_key(&k)))
}
