//! Read-only mount of a metadata filesystem (the NoCloud `cidata` seed, the OpenStack
//! `config-2` drive), for the time it takes to read it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounted on creation, unmounted on drop.
pub struct ReadOnlyMount {
    target: PathBuf,
}

impl ReadOnlyMount {
    pub fn new(device: &Path, what: &str) -> Result<Self> {
        let target = PathBuf::from("/run/axoha/seed");
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        // Both are ISO 9660 images (xorriso, genisoimage, Nova's default) or small vfat disks.
        let mut last = None;
        for fstype in ["iso9660", "vfat"] {
            match mount(Some(device), &target, Some(fstype), flags, None::<&str>) {
                Ok(()) => return Ok(ReadOnlyMount { target }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least one type"))
            .with_context(|| format!("mounting {what} {} read-only", device.display()))
    }

    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        // Lazy detach: a failed unmount must not keep the device busy for cloud-init after us.
        let _ = umount2(&self.target, MntFlags::MNT_DETACH);
    }
}
