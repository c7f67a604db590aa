//! Every file `--root` touches, resolved inside that root.
//!
//! A root under construction (an image tree, a test root, a node's own `/`) may hold symbolic
//! links that point anywhere: `etc/keepalived -> /srv/other`, `../../..` chains, links to
//! `/etc/shadow` in place of `meta-data`. Every path below a [`RootDir`] is opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel resolves each component,
//! symlinks included, as if the root were `/`, so nothing can lead outside it (an absolute
//! link points at the root's own `/...`, `..` stops at the root). Writes then happen with
//! single names relative to a directory fd opened that way ([`Dir`]), and `rename` never
//! follows a link at its target. This crate is the only place in axoha that opens files by
//! path below a root: first boot's `write`, `apply` and `sources`, the updater's slot and ESP
//! work, and the image builder's distribution and ESP trees ([`tree`]'s verbs).
//!
//! Reads are bounded: metadata is read only from regular files (a FIFO or a device in place
//! of `meta-data` is refused at once: the file is opened `O_PATH` and checked before it is
//! opened for reading, and that open is `O_NONBLOCK`), and only up to a size cap.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, ResolveFlags};

mod dir;
mod read;
mod temp;
mod tree;

use read::{read_capped, regular};
pub use read::{read_given, Location};
pub use temp::is_temp_name;
pub use tree::Meta;

/// The most a metadata file (seed `meta-data`, instance data, cluster.toml) may hold.
/// Real ones are well under 4 KiB; 64 KiB leaves room for comments and cloud-init's own keys.
pub const METADATA_MAX: u64 = 64 * 1024;
/// The most a kernel command line may hold: the kernel's `COMMAND_LINE_SIZE` is 2048 on
/// x86 and 4096 on arm64 and others, so no real `/proc/cmdline` is longer.
pub const CMDLINE_MAX: u64 = 4096;

/// Whether the last component of a path may be a symbolic link (still resolved inside the
/// root). Metadata files must be regular files themselves; facts of the image such as
/// `etc/os-release` (a link to `../usr/lib/os-release` on Debian) may be links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    NoFollow,
    Follow,
}

/// A directory every path is resolved inside of.
#[derive(Clone, Debug)]
pub struct RootDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// A directory inside a root, for operations on single names in it.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// An exclusive `flock`, released when dropped (or when the process dies).
pub struct Lock {
    _fd: OwnedFd,
}

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// A path below the root, of plain names: `..` is refused before the kernel sees it (it
/// would keep it inside the root anyway; this keeps our own paths honest). A leading `/`
/// names the root itself, as it will on the node (`/etc/hostname` is `etc/hostname`).
fn relative(rel: &str) -> Result<&Path> {
    let below = match rel.trim_start_matches('/') {
        "" if !rel.is_empty() => ".",
        below => below,
    };
    let path = Path::new(below);
    if below.is_empty()
        || !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("{rel:?} is not a plain path below the root");
    }
    Ok(path)
}

impl RootDir {
    /// Opens the root itself. The root's own path is the operator's choice and is taken as
    /// given; everything below it is confined.
    pub fn open(path: &Path) -> Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening root directory {}", path.display()))?;
        Ok(RootDir {
            fd: Arc::new(fd),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` under the root, for messages.
    pub fn shown(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    fn open_in(&self, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let path = relative(rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        rustix::fs::openat2(
            self.fd.as_fd(),
            path,
            flags | OFlags::CLOEXEC,
            mode,
            resolve(),
        )
        .map_err(io::Error::from)
    }

    /// What is at `rel`, if anything.
    fn file_type(&self, rel: &str, last: Last) -> Option<FileType> {
        let nofollow = match last {
            Last::NoFollow => OFlags::NOFOLLOW,
            Last::Follow => OFlags::empty(),
        };
        let fd = self
            .open_in(rel, OFlags::PATH | nofollow, Mode::empty())
            .ok()?;
        rustix::fs::fstat(&fd)
            .ok()
            .map(|s| FileType::from_raw_mode(s.st_mode))
    }

    /// Whether anything is at `rel`, a link included: a metadata file that is a link is
    /// there (and refused when read), not silently absent.
    pub fn exists(&self, rel: &str) -> bool {
        self.file_type(rel, Last::NoFollow).is_some()
    }

    /// Whether `rel` is a regular file, following links inside the root.
    pub fn is_file(&self, rel: &str) -> bool {
        self.file_type(rel, Last::Follow) == Some(FileType::RegularFile)
    }

    /// The bytes of the regular file at `rel`, at most `cap` of them; `None` when nothing is
    /// there. A directory, FIFO, socket or device is an error, as is a larger file.
    pub fn read(&self, rel: &str, cap: u64, last: Last) -> Result<Option<Vec<u8>>> {
        match self.open_regular(rel, last)? {
            None => Ok(None),
            Some(file) => read_capped(file, cap, &self.shown(rel)).map(Some),
        }
    }

    /// The regular file at `rel` opened for reading (for streams; [`RootDir::read`] for
    /// small files); `None` when nothing is there, an error for anything but a regular file.
    pub fn open_regular(&self, rel: &str, last: Last) -> Result<Option<File>> {
        let shown = self.shown(rel);
        let nofollow = match last {
            Last::NoFollow => OFlags::NOFOLLOW,
            Last::Follow => OFlags::empty(),
        };
        let probe = match self.open_in(rel, OFlags::PATH | nofollow, Mode::empty()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other.with_context(|| format!("opening {}", shown.display()))?,
        };
        let before = regular(&probe, &shown, last)?;
        let fd = self
            .open_in(
                rel,
                OFlags::RDONLY | OFlags::NONBLOCK | nofollow,
                Mode::empty(),
            )
            .with_context(|| format!("opening {}", shown.display()))?;
        // Replaced between the two opens: refuse rather than read whatever is there now.
        if regular(&fd, &shown, last)? != before {
            bail!("{} changed while it was being opened", shown.display());
        }
        Ok(Some(File::from(fd)))
    }

    /// The status of what is at `rel` itself (a link is not followed); `None` when nothing.
    pub fn lstat(&self, rel: &str) -> Result<Option<rustix::fs::Stat>> {
        match self.open_in(rel, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", self.shown(rel).display())),
            Ok(fd) => rustix::fs::fstat(&fd)
                .map(Some)
                .with_context(|| format!("inspecting {}", self.shown(rel).display())),
        }
    }

    /// The target of the symbolic link at `rel` (as written in the link, not resolved).
    pub fn read_link(&self, rel: &str) -> Result<PathBuf> {
        let shown = self.shown(rel);
        let fd = self
            .open_in(rel, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())
            .with_context(|| format!("opening {}", shown.display()))?;
        let target = rustix::fs::readlinkat(&fd, "", Vec::new())
            .with_context(|| format!("reading link {}", shown.display()))?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))
    }

    /// The existing directory `rel`, for operations on names in it; `None` when absent.
    pub fn open_dir(&self, rel: &str) -> Result<Option<Dir>> {
        match self.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", self.shown(rel).display())),
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.shown(rel),
            })),
        }
    }

    /// The names in directory `rel` (empty when it does not exist).
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let fd = match self.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.with_context(|| format!("opening {}", self.shown(rel).display()))?,
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::new(fd)
            .with_context(|| format!("reading {}", self.shown(rel).display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", self.shown(rel).display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Directory `rel`, created with its parents (mode 0755) where missing, each component
    /// resolved inside the root; the ones it made are added to `created`, parents first.
    pub fn create_dir_all(&self, rel: &str, created: &mut Vec<String>) -> Result<Dir> {
        let path = relative(rel)?;
        let mut so_far = PathBuf::new();
        for component in path.components() {
            so_far.push(component);
            let here = so_far.to_string_lossy();
            match self.open_in(&here, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("opening {}", self.shown(&here).display()))
                }
            }
            let parent = so_far.parent().map(|p| p.to_string_lossy().into_owned());
            let parent = match parent.as_deref() {
                Some("") | None => self.fd.as_fd().try_clone_to_owned()?,
                Some(p) => self.open_in(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?,
            };
            let name = so_far.file_name().expect("a normal component");
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => created.push(here.into_owned()),
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(io::Error::from(e))
                        .with_context(|| format!("creating {}", self.shown(&here).display()))
                }
            }
        }
        let fd = self
            .open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .with_context(|| format!("opening {}", self.shown(rel).display()))?;
        Ok(Dir {
            fd,
            path: self.shown(rel),
        })
    }

    /// Removes the empty directory `rel` (best effort: for undoing `create_dir_all`).
    pub fn remove_empty_dir(&self, rel: &str) {
        let Ok(path) = relative(rel) else { return };
        let parent = path.parent().map(|p| p.to_string_lossy().into_owned());
        let (Some(name), Some(parent)) = (path.file_name(), parent) else {
            return;
        };
        let parent = if parent.is_empty() {
            ".".to_owned()
        } else {
            parent
        };
        if let Ok(fd) = self.open_in(&parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            let _ = rustix::fs::unlinkat(&fd, name, AtFlags::REMOVEDIR);
        }
    }

    /// Removes the file at `rel` (nothing there is fine) and syncs its directory.
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        let path = relative(rel)?;
        let parent = path.parent().map(|p| p.to_string_lossy().into_owned());
        let name = path.file_name().context("no file name")?;
        let dir = match parent.as_deref() {
            Some("") | None => ".".to_owned(),
            Some(p) => p.to_owned(),
        };
        let fd = match self.open_in(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.with_context(|| format!("opening {}", self.shown(&dir).display()))?,
        };
        let dir = Dir {
            fd,
            path: self.shown(&dir),
        };
        dir.unlink(name)?;
        dir.sync()
    }

    /// Takes an exclusive lock on file `rel` (created if missing), waiting for another
    /// holder to finish.
    pub fn lock(&self, rel: &str) -> Result<Lock> {
        let fd = self.lock_file(rel)?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", self.shown(rel).display()))?;
        Ok(Lock { _fd: fd })
    }

    /// Like [`RootDir::lock`] without waiting: `Err(note)` when another process holds it,
    /// with what that holder wrote into the file ([`Lock::note`]), so that a waiter can say
    /// what it waits for.
    pub fn try_lock(&self, rel: &str) -> Result<std::result::Result<Lock, String>> {
        let fd = self.lock_file(rel)?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Ok(Lock { _fd: fd })),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut note = Vec::new();
                let _ = File::from(fd).take(4096).read_to_end(&mut note);
                Ok(Err(String::from_utf8_lossy(&note).trim().to_owned()))
            }
            Err(e) => Err(io::Error::from(e))
                .with_context(|| format!("locking {}", self.shown(rel).display())),
        }
    }

    fn lock_file(&self, rel: &str) -> Result<OwnedFd> {
        let path = relative(rel)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dir_all(&parent.to_string_lossy(), &mut Vec::new())?;
        }
        self.open_in(
            rel,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .with_context(|| format!("opening lock file {}", self.shown(rel).display()))
    }

    /// Flushes the whole filesystem the root is on (`syncfs`): on vfat a rename reaches the
    /// disk only at writeback, and a success printed before that is undone by a power cut.
    pub fn sync_fs(&self) -> Result<()> {
        let fd = self
            .open_in(".", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .with_context(|| format!("opening {}", self.path.display()))?;
        rustix::fs::syncfs(&fd)
            .with_context(|| format!("syncing the filesystem of {}", self.path.display()))
    }

    /// Free bytes for an unprivileged writer and the allocation unit of the filesystem the
    /// root is on (`statvfs`).
    pub fn free_space(&self) -> Result<(u64, u64)> {
        let st = rustix::fs::fstatvfs(self.fd.as_fd())
            .with_context(|| format!("statvfs {}", self.path.display()))?;
        Ok((st.f_bavail * st.f_frsize, st.f_frsize.max(1)))
    }
}

impl Lock {
    /// Replaces what the lock file says about its holder (e.g. its PID and what it does).
    pub fn note(&self, text: &str) -> Result<()> {
        rustix::fs::ftruncate(&self._fd, 0).context("truncating the lock file")?;
        rustix::io::pwrite(&self._fd, text.as_bytes(), 0).context("writing the lock file")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        symlink(outside.path(), root.path().join("etc/abs")).unwrap();
        symlink("../../../../../../..", root.path().join("etc/up")).unwrap();
        let r = RootDir::open(root.path()).unwrap();
        let secret = outside.path().join("secret");
        let secret = secret.to_str().unwrap().trim_start_matches('/');
        assert!(r
            .read("etc/abs/secret", 100, Last::Follow)
            .unwrap()
            .is_none());
        assert!(r
            .read(&format!("etc/up/{secret}"), 100, Last::Follow)
            .unwrap()
            .is_none());
        // Through the absolute link: the root's own /tmp/..., which does not exist (a
        // dangling link inside the root), so nothing is created at all.
        assert!(r
            .create_dir_all("etc/abs/keepalived", &mut Vec::new())
            .is_err());
        // Through `..` past the top: the root's own `/`.
        let mut created = Vec::new();
        r.create_dir_all("etc/up/made", &mut created).unwrap();
        assert_eq!(created, ["etc/up/made"]);
        assert!(root.path().join("made").is_dir());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("big"), vec![b'x'; 101]).unwrap();
        std::fs::write(root.path().join("ok"), "ok").unwrap();
        symlink("ok", root.path().join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.path().join("fifo"),
            FileType::Fifo,
            Mode::RWXU,
            0,
        )
        .unwrap();
        let r = RootDir::open(root.path()).unwrap();
        assert_eq!(r.read("ok", 100, Last::NoFollow).unwrap().unwrap(), b"ok");
        assert!(r.read("big", 100, Last::NoFollow).is_err());
        assert!(r.read("fifo", 100, Last::NoFollow).is_err());
        assert!(r.read("link", 100, Last::NoFollow).is_err());
        assert!(r.read("link", 100, Last::Follow).is_ok());
        assert!(r.read(".", 100, Last::NoFollow).is_err());
        assert!(r.read("missing", 100, Last::NoFollow).unwrap().is_none());
    }
}
