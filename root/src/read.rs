//! Bounded reads of regular files: under a root, or named explicitly by the operator.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags};

use crate::{Last, RootDir};

/// The identity of a regular file (device and inode); anything else is refused.
pub(crate) fn regular(fd: &OwnedFd, shown: &Path, last: Last) -> Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd).with_context(|| format!("inspecting {}", shown.display()))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok((stat.st_dev, stat.st_ino)),
        FileType::Symlink if last == Last::NoFollow => bail!(
            "{} is a symbolic link; metadata is read from regular files only",
            shown.display()
        ),
        other => bail!(
            "{} is not a regular file ({other:?}); metadata is read from regular files only",
            shown.display()
        ),
    }
}

pub(crate) fn read_capped(file: File, cap: u64, shown: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", shown.display()))?;
    if bytes.len() as u64 > cap {
        bail!("{} is larger than {cap} bytes", shown.display());
    }
    Ok(bytes)
}

/// A file named explicitly by the operator (`--cmdline FILE`, `--instance-data FILE`): not
/// under the root, but read with the same rules (a regular file, at most `cap` bytes).
pub fn read_given(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let probe = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {}", path.display()))?;
    let before = regular(&probe, path, Last::Follow)?;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))?;
    if regular(&fd, path, Last::Follow)? != before {
        bail!("{} changed while it was being opened", path.display());
    }
    read_capped(File::from(fd), cap, path)
}

/// A file to read: under a root, or named explicitly.
#[derive(Clone, Debug)]
pub enum Location {
    InRoot(RootDir, String),
    Given(PathBuf),
}

impl Location {
    /// The file's bytes (see [`RootDir::read`]); `None` when it does not exist.
    pub fn read(&self, cap: u64) -> Result<Option<Vec<u8>>> {
        match self {
            Location::InRoot(root, rel) => root.read(rel, cap, Last::NoFollow),
            Location::Given(path) => match read_given(path, cap) {
                Err(e)
                    if e.downcast_ref::<io::Error>()
                        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound) =>
                {
                    Ok(None)
                }
                other => other.map(Some),
            },
        }
    }

    pub fn shown(&self) -> PathBuf {
        match self {
            Location::InRoot(root, rel) => root.shown(rel),
            Location::Given(path) => path.clone(),
        }
    }
}
