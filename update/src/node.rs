//! The node as the updater sees it: the running boot's command line, the disk and its GPT,
//! the running slot, the ESP and the node's root. Everything is read here, at the edge; the
//! paths come from [`NodePaths`] so tests run against an image file and directories.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use axoha_root::{read_given, Last, RootDir, CMDLINE_MAX};

use crate::cmdline::Cmdline;
use crate::entries::{self, Entry};
use crate::gpt::{self, Layout};
use crate::memory::Image;
use crate::paths;
use crate::slot::Slot;
use crate::usrhash::{PartUuid, UsrHash};
use crate::version::{self, Version};

/// Where the node's facts are (the defaults: the running node's).
#[derive(Clone, Debug)]
pub struct NodePaths {
    /// `None`: the disk of the state partition named by `root=PARTUUID=`.
    pub disk: Option<PathBuf>,
    pub esp: PathBuf,
    pub cmdline: PathBuf,
    pub root: PathBuf,
}

impl Default for NodePaths {
    fn default() -> NodePaths {
        NodePaths {
            disk: None,
            esp: PathBuf::from("/efi"),
            cmdline: PathBuf::from("/proc/cmdline"),
            root: PathBuf::from("/"),
        }
    }
}

pub struct Node {
    pub disk: PathBuf,
    pub cmdline: Cmdline,
    pub layout: Layout,
    pub running: Slot,
    pub running_hash: UsrHash,
    pub root: RootDir,
    pub esp: RootDir,
}

/// The whole disk holding the partition with `uuid`: `/dev/disk/by-partuuid/UUID` ->
/// `/dev/sda6` -> `/sys/class/block/sda6` is in `/sys/.../sda/`: `/dev/sda`.
fn disk_of(uuid: PartUuid) -> Result<PathBuf> {
    let link = PathBuf::from(format!("/dev/disk/by-partuuid/{uuid}"));
    let part = std::fs::canonicalize(&link)
        .with_context(|| format!("finding the state partition {}", link.display()))?;
    let name = part
        .file_name()
        .with_context(|| format!("{} has no name", part.display()))?;
    let sys = Path::new("/sys/class/block").join(name);
    let sys =
        std::fs::canonicalize(&sys).with_context(|| format!("resolving {}", sys.display()))?;
    if !sys.join("partition").exists() {
        bail!("{} is not a partition", part.display());
    }
    let disk = sys
        .parent()
        .and_then(Path::file_name)
        .with_context(|| format!("no parent disk of {}", sys.display()))?;
    Ok(Path::new("/dev").join(disk))
}

/// The slot booted with `usrhash`: its usr partition's PARTUUID is the hash's first half.
pub fn running_slot(layout: &Layout, usrhash: UsrHash) -> Result<Slot> {
    layout.slot_of(usrhash.usr_partuuid()).with_context(|| {
        format!(
            "no usr partition has PARTUUID {} (the first half of the running usrhash {usrhash})",
            usrhash.usr_partuuid()
        )
    })
}

impl Node {
    pub fn load(paths: &NodePaths) -> Result<Node> {
        let text = read_given(&paths.cmdline, CMDLINE_MAX)?;
        let cmdline = Cmdline::parse(&String::from_utf8_lossy(&text));
        let running_hash = cmdline.usrhash()?;
        let state = cmdline.root_partuuid()?;
        let disk = match &paths.disk {
            Some(d) => d.clone(),
            None => disk_of(state)?,
        };
        let layout = gpt::read(&disk)?;
        if layout.state.uuid != state {
            bail!(
                "the state partition of {} has PARTUUID {}, but the kernel command line says root=PARTUUID={state}",
                disk.display(),
                layout.state.uuid
            );
        }
        let running = running_slot(&layout, running_hash)?;
        let root = RootDir::open(&paths.root)?;
        let esp = RootDir::open(&paths.esp).context("the ESP (mounted at /efi on a node)")?;
        Ok(Node {
            disk,
            cmdline,
            layout,
            running,
            running_hash,
            root,
            esp,
        })
    }

    /// A small text file of the image, trimmed; `None` when absent.
    pub fn image_file(&self, rel: &str) -> Result<Option<String>> {
        let bytes = self.root.read(rel, 64 * 1024, Last::Follow)?;
        bytes
            .map(|b| {
                String::from_utf8(b)
                    .map(|s| s.trim().to_owned())
                    .with_context(|| format!("{} is not UTF-8", self.root.shown(rel).display()))
            })
            .transpose()
    }

    /// The running image's baked manifest (`inputs` of the builder's); `None` when absent.
    fn manifest(&self) -> Result<Option<serde_json::Value>> {
        let Some(bytes) = self
            .root
            .read(paths::IMAGE_MANIFEST, 1 << 20, Last::Follow)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is not JSON",
                self.root.shown(paths::IMAGE_MANIFEST).display()
            )
        })
    }

    /// The running image's definition `kernel_cmdline` (baked in its manifest's inputs): the
    /// arguments an update replaces with the new image's, unlike the node's own. Empty when
    /// the manifest does not say.
    pub fn definition_cmdline(&self) -> Result<String> {
        Ok(self
            .manifest()?
            .and_then(|v| {
                v["inputs"]["definition"]["kernel_cmdline"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default())
    }

    /// What the running image is (name, version, build key), from its baked manifest;
    /// `None` when the manifest does not say (an image from before versions were kept).
    pub fn running_image(&self) -> Result<Option<Image>> {
        let Some(v) = self.manifest()? else {
            return Ok(None);
        };
        let inputs = &v["inputs"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let (Some(name), Some(build_key)) = (
            text(&inputs["definition"]["name"]),
            text(&inputs["build_key"]),
        ) else {
            return Ok(None);
        };
        let version = version::of_build(
            inputs["definition"]["version"].as_str().unwrap_or(""),
            inputs["axoha_image_version"].as_str().unwrap_or(""),
            &build_key,
        );
        let version = Version::parse(&version).with_context(|| {
            format!(
                "the running image's version in {}",
                self.root.shown(paths::IMAGE_MANIFEST).display()
            )
        })?;
        Ok(Some(Image {
            name,
            version,
            build_key: Some(build_key),
        }))
    }

    /// The image's profile (`/usr/lib/axoha/profile`).
    pub fn profile(&self) -> Result<String> {
        self.image_file(paths::PROFILE)?
            .with_context(|| format!("{} is missing", self.root.shown(paths::PROFILE).display()))
    }

    /// The image's update key; absent: no updates.
    pub fn update_key(&self) -> Result<String> {
        self.image_file(paths::UPDATE_KEY)?.with_context(|| {
            format!(
                "this image accepts no updates: {} is missing (the definition had no [update] public_key)",
                self.root.shown(paths::UPDATE_KEY).display()
            )
        })
    }

    /// Our boot entries on the ESP, by file name.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut found = Vec::new();
        for file in self.esp.list(paths::ENTRIES)? {
            if entries::parse_name(&file).is_none() {
                continue;
            }
            let rel = format!("{}/{file}", paths::ENTRIES);
            let Some(bytes) = self.esp.read(&rel, 64 * 1024, Last::NoFollow)? else {
                continue;
            };
            if let Some(entry) = entries::parse(&file, &String::from_utf8_lossy(&bytes)) {
                found.push(entry);
            }
        }
        Ok(found)
    }
}
