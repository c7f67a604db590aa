//! Every file `--root` touches, resolved inside that root.
//!
//! A root under construction (an image tree, a test root, a node's own `/`) may hold symbolic
//! links that point anywhere: `etc/keepalived -> /srv/other`, `../../..` chains, links to
//! `/etc/shadow` in place of `meta-data`. Every path below a [`RootDir`] is opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel resolves each component,
//! symlinks included, as if the root were `/`, so nothing can lead outside it (an absolute
//! link points at the root's own `/...`, `..` stops at the root). Writes then happen with
//! single names relative to a directory fd opened that way ([`Dir`]), and `rename` never
//! follows a link at its target. This module is the only place that opens files by path for
//! `write`, `apply` and `sources`.
//!
//! Reads are bounded: metadata is read only from regular files (a FIFO or a device in place
//! of `meta-data` is refused at once: the file is opened `O_PATH` and checked before it is
//! opened for reading, and that open is `O_NONBLOCK`), and only up to a size cap.

use std::ffi::OsStr;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, ResolveFlags};

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

/// A relative path of plain names: `..` and absolute paths are refused before the kernel
/// sees them (it would keep them inside the root anyway; this keeps our own paths honest).
fn relative(rel: &str) -> Result<&Path> {
    let path = Path::new(rel);
    if rel.is_empty()
        || !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("{rel:?} is not a plain relative path");
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
        self.path.join(rel)
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

/// The identity of a regular file (device and inode); anything else is refused.
fn regular(fd: &OwnedFd, shown: &Path, last: Last) -> Result<(u64, u64)> {
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

fn read_capped(file: File, cap: u64, shown: &Path) -> Result<Vec<u8>> {
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

/// Whether `name` is one of [`Dir::write_temp`]'s temporaries (`.NAME.axoha-new-PID-RANDOM`):
/// left behind only by a process killed while writing, removed by the next one that holds
/// the lock of whatever it wrote.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".") else {
        return false;
    };
    let Some(at) = rest.windows(11).rposition(|w| w == b".axoha-new-") else {
        return false;
    };
    let tail = &rest[at + 11..];
    let Some(dash) = tail.iter().position(|b| *b == b'-') else {
        return false;
    };
    let (pid, random) = (&tail[..dash], &tail[dash + 1..]);
    at > 0
        && !pid.is_empty()
        && pid.iter().all(u8::is_ascii_digit)
        && random.len() == 16
        && random.iter().all(|b| b.is_ascii_hexdigit())
}

/// A random name for a temporary file: two runs at once never share one.
fn temp_name(name: &OsStr, purpose: &str) -> Vec<u8> {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(name.as_bytes());
    tmp.extend_from_slice(
        format!(".axoha-{purpose}-{}-{random:016x}", std::process::id()).as_bytes(),
    );
    tmp
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn temporaries_are_recognized() {
        let t = temp_name(OsStr::new("initrd.img"), "new");
        assert!(is_temp_name(&t));
        assert!(!is_temp_name(&temp_name(OsStr::new("x"), "old")));
        for other in [
            &b"initrd.img"[..],
            b".initrd.img",
            b"..axoha-new-1-0123456789abcdef",
            b".x.axoha-new--0123456789abcdef",
            b".x.axoha-new-1-0123456789abcdeg",
        ] {
            assert!(!is_temp_name(other), "{}", String::from_utf8_lossy(other));
        }
    }

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
        nix::unistd::mkfifo(&root.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
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
