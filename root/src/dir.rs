//! Operations on single names in a directory opened inside a root.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::read::read_capped;
use crate::temp::temp_name;
use crate::Dir;

impl Dir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// What `name` is, without following a link.
    pub fn file_type(&self, name: &OsStr) -> Option<FileType> {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|s| FileType::from_raw_mode(s.st_mode))
    }

    /// The bytes and mode of regular file `name` (not a link), if it is one and at most
    /// `cap` bytes long.
    pub fn read_regular(&self, name: &OsStr, cap: u64) -> Option<(Vec<u8>, u32)> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return None;
        }
        let bytes = read_capped(File::from(fd), cap, &self.shown(name)).ok()?;
        Some((bytes, stat.st_mode & 0o7777))
    }

    /// Writes `contents` with `mode` to a new temporary file beside `name` and syncs it;
    /// returns the temporary's name.
    pub fn write_temp(&self, name: &OsStr, contents: &[u8], mode: u32) -> Result<Vec<u8>> {
        self.write_temp_from(name, mode, &mut |file: &mut File| {
            file.write_all(contents).map_err(anyhow::Error::from)
        })
    }

    /// Like [`Dir::write_temp`], the contents written by `fill` (for streams); the
    /// temporary is removed if `fill` fails.
    pub fn write_temp_from(
        &self,
        name: &OsStr,
        mode: u32,
        fill: &mut dyn FnMut(&mut File) -> Result<()>,
    ) -> Result<Vec<u8>> {
        let tmp = temp_name(name, "new");
        let shown = self.shown(OsStr::from_bytes(&tmp));
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .with_context(|| format!("creating {}", shown.display()))?;
        let result = (|| -> Result<()> {
            // The umask may have taken bits away; the mode is part of what we promise.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .with_context(|| format!("setting mode of {}", shown.display()))?;
            let mut file = File::from(fd.try_clone()?);
            fill(&mut file).with_context(|| format!("writing {}", shown.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing {}", shown.display()))
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = self.unlink(OsStr::from_bytes(&tmp));
                Err(e)
            }
        }
    }

    /// Creates directory `name` with `mode` (nothing is done if it exists as a directory).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) if self.file_type(name) == Some(FileType::Directory) => {}
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("creating {}", self.shown(name).display()))
            }
        }
        rustix::fs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .with_context(|| format!("setting mode of {}", self.shown(name).display()))
    }

    /// Creates the symbolic link `name` -> `target` (replacing nothing).
    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<()> {
        rustix::fs::symlinkat(target, &self.fd, name)
            .with_context(|| format!("creating symbolic link {}", self.shown(name).display()))
    }

    /// Sets the owner of `name` itself (a link is not followed).
    pub fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        rustix::fs::chownat(
            &self.fd,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("setting owner of {}", self.shown(name).display()))
    }

    /// The directory `name` in this one (not through a link).
    pub fn sub(&self, name: &OsStr) -> Result<Dir> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", self.shown(name).display()))?;
        Ok(Dir {
            fd,
            path: self.shown(name),
        })
    }

    /// The names in this directory, sorted.
    pub fn names(&self) -> Result<Vec<std::ffi::OsString>> {
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", self.path.display()))?;
        let mut names = Vec::new();
        for entry in
            rustix::fs::Dir::new(fd).with_context(|| format!("reading {}", self.path.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", self.path.display()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsString::from_vec(name.to_vec()));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes `name` and, if it is a directory, everything in it; links are removed, never
    /// followed, and nothing on another filesystem (a mount point) is entered: that is an
    /// error.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        let shown = self.shown(name);
        let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return Ok(());
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return self.unlink(name);
        }
        let own = rustix::fs::fstat(&self.fd)
            .with_context(|| format!("inspecting {}", self.path.display()))?;
        if stat.st_dev != own.st_dev {
            bail!("{} is a mount point; not removing it", shown.display());
        }
        let sub = self.sub(name)?;
        for child in sub.names()? {
            sub.remove_tree(&child)?;
        }
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .with_context(|| format!("removing {}", shown.display()))
    }

    /// A second name for `name` (a hard link of the file, or of the link itself), to put
    /// it back if a later step fails.
    pub fn keep(&self, name: &OsStr) -> Result<Vec<u8>> {
        let keep = temp_name(name, "old");
        rustix::fs::linkat(&self.fd, name, &self.fd, keep.as_slice(), AtFlags::empty())
            .with_context(|| format!("keeping a copy of {}", self.shown(name).display()))?;
        Ok(keep)
    }

    /// Renames `from` over `to` in this directory; a link at `to` is replaced, not followed.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(io::Error::from)
    }

    /// Removes `name`; nothing there is fine.
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io::Error::from(e))
                .with_context(|| format!("removing {}", self.shown(name).display())),
        }
    }

    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd)
            .with_context(|| format!("syncing directory {}", self.path.display()))
    }

    /// Syncs the file `name` itself, under the name it has now (after a rename): vfat
    /// writes a file's directory entry with the file's own inode, not with the directory's.
    pub fn sync_file(&self, name: &OsStr) -> Result<()> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", self.shown(name).display()))?;
        rustix::fs::fsync(&fd).with_context(|| format!("syncing {}", self.shown(name).display()))
    }
}
