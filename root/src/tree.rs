//! The image builder's verbs on a root: a distribution tree or an ESP staging tree that
//! `axoha-image` assembles on the build host.
//!
//! Such a tree is a hard-linked copy of the cached rootfs, so a file is never written in
//! place: [`RootDir::write`] unlinks what is there, then creates the file anew (`O_CREAT |
//! O_EXCL | O_NOFOLLOW`), and the cache keeps its bytes. Reads here are whole files (an
//! initrd, a kernel) and follow links inside the root, as the node itself would.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::RootDir;

/// Kind, mode and ownership of a path in a root (links inside the root followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub is_dir: bool,
    pub is_file: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl RootDir {
    /// Creates the directory (and its parents) on the host, then opens it as a root.
    pub fn create(path: &Path) -> Result<RootDir> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        RootDir::open(path)
    }

    /// Writes a new file with `mode` (not masked by the umask), creating missing parents
    /// (0755): what was at `rel` (a hard link into a cache, a symlink) is unlinked first, so
    /// neither is ever written through.
    pub fn write(&self, rel: &str, contents: &[u8], mode: u32) -> Result<()> {
        let what = || format!("writing {}", self.shown(rel).display());
        let path = crate::relative(rel).with_context(what)?;
        let name = path.file_name().with_context(what)?;
        let parent = path.parent().map(|p| p.to_string_lossy().into_owned());
        let dir = match parent.as_deref() {
            None | Some("") => self.open_dir(".")?.with_context(what)?,
            Some(p) => self.create_dir_all(p, &mut Vec::new()).with_context(what)?,
        };
        match rustix::fs::unlinkat(dir.fd.as_fd(), name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(what),
        }
        let fd = rustix::fs::openat(
            dir.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .with_context(what)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents).with_context(what)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).with_context(what)?;
        Ok(())
    }

    /// The whole file at `rel` (links inside the root followed); a missing one is an error.
    pub fn read_to_end(&self, rel: &str) -> Result<Vec<u8>> {
        let what = || format!("reading {}", self.shown(rel).display());
        let fd = self
            .open_in(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
            .with_context(what)?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut bytes)
            .with_context(what)?;
        Ok(bytes)
    }

    pub fn read_to_string(&self, rel: &str) -> Result<String> {
        String::from_utf8(self.read_to_end(rel)?)
            .with_context(|| format!("{} is not UTF-8", self.shown(rel).display()))
    }

    /// Kind, mode and owner of `rel`; `None` when it does not exist.
    pub fn meta(&self, rel: &str) -> Result<Option<Meta>> {
        let fd = match self.open_in(rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| self.shown(rel).display().to_string()),
        };
        let st = rustix::fs::fstat(&fd)
            .with_context(|| format!("stat {}", self.shown(rel).display()))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        Ok(Some(Meta {
            is_dir: kind == FileType::Directory,
            is_file: kind == FileType::RegularFile,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }))
    }

    pub fn is_dir(&self, rel: &str) -> bool {
        self.meta(rel).ok().flatten().is_some_and(|m| m.is_dir)
    }

    /// Sets owner and mode of an existing file or directory.
    pub fn set_owner_mode(&self, rel: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let what = || format!("chown/chmod {}", self.shown(rel).display());
        let fd = self
            .open_in(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
            .with_context(what)?;
        let (uid, gid) = (
            rustix::process::Uid::from_raw(uid),
            rustix::process::Gid::from_raw(gid),
        );
        rustix::fs::fchown(fd.as_fd(), Some(uid), Some(gid)).with_context(what)?;
        rustix::fs::fchmod(fd.as_fd(), Mode::from_raw_mode(mode)).with_context(what)?;
        Ok(())
    }

    /// The host path `rel` resolves to, for tools that read the tree by path (the result is
    /// inside the root: the kernel resolved it there).
    pub fn host_path(&self, rel: &str) -> Result<PathBuf> {
        let fd = self
            .open_in(rel, OFlags::PATH, Mode::empty())
            .with_context(|| format!("resolving {}", self.shown(rel).display()))?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        std::fs::read_link(&link).with_context(|| format!("resolving {link}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootDir as Tree;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    /// A tree with the escapes a distribution (or a hostile one) can carry, next to an
    /// "outside" directory standing for the build host.
    fn hostile() -> (tempfile::TempDir, Tree, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("host");
        std::fs::create_dir_all(outside.join("run")).unwrap();
        std::fs::write(outside.join("passwd"), "host\n").unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // Where the relative links land once clamped at the root.
        std::fs::create_dir_all(root.join("host")).unwrap();
        // Absolute: Debian's var/run -> /run, here pointing at the "host" by its full path.
        symlink(outside.join("run"), root.join("var/run")).unwrap();
        symlink("/run", root.join("var/lock")).unwrap();
        // Relative, climbing out.
        symlink("../../host", root.join("etc/up")).unwrap();
        symlink("../../host/passwd", root.join("etc/passwd")).unwrap();
        let tree = Tree::open(&root).unwrap();
        (dir, tree, outside)
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let md = e.path().symlink_metadata().unwrap();
                if md.is_dir() {
                    stack.push(e.path());
                }
                let bytes = if md.is_file() {
                    std::fs::read(e.path()).unwrap()
                } else {
                    Vec::new()
                };
                all.push((e.path(), bytes, md.mode()));
            }
        }
        all.sort();
        all
    }

    #[test]
    fn symlinks_and_dotdot_never_lead_out_of_the_tree() {
        let (_dir, tree, outside) = hostile();
        let before = snapshot(&outside);
        // An absolute symlink to a host path resolves inside the tree: the host path does
        // not exist in the tree, so nothing is written (and the host is untouched).
        assert!(tree.write("/var/run/x.pid", b"1", 0o644).is_err());
        // `/run` exists in the tree: `var/lock -> /run` leads there.
        tree.write("/var/lock/y", b"2", 0o644).unwrap();
        assert_eq!(std::fs::read(tree.path().join("run/y")).unwrap(), b"2");
        // Relative, through `..` past the root: clamped at the root.
        tree.write("etc/up/z", b"3", 0o600).unwrap();
        assert_eq!(std::fs::read(tree.path().join("host/z")).unwrap(), b"3");
        // `..` in a path of our own is refused outright (the kernel would clamp it too).
        assert!(tree.write("../../../host/w", b"4", 0o600).is_err());
        // A symlinked file is replaced, never written through.
        tree.write("etc/passwd", b"tree\n", 0o644).unwrap();
        assert_eq!(tree.read_to_string("etc/passwd").unwrap(), "tree\n");
        assert!(!tree.path().join("etc/passwd").is_symlink());
        assert_eq!(
            snapshot(&outside),
            before,
            "nothing outside the tree changed"
        );
        assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"host\n");
    }

    #[test]
    fn reads_removals_and_listings_stay_inside_too() {
        let (_dir, tree, outside) = hostile();
        let before = snapshot(&outside);
        assert!(
            tree.read_to_end("etc/up/passwd").is_err(),
            "no such file in the tree"
        );
        tree.remove_file("etc/up/passwd").unwrap();
        tree.remove_file("var/run/anything").unwrap();
        assert!(tree.list("var/run").unwrap().is_empty());
        assert!(tree.meta("etc/up/passwd").unwrap().is_none());
        assert!(tree.set_owner_mode("etc/up/passwd", 0, 0, 0o600).is_err());
        let resolved = tree.host_path("var/lock").unwrap();
        assert_eq!(resolved, tree.path().join("run").canonicalize().unwrap());
        assert_eq!(snapshot(&outside), before);
    }

    #[test]
    fn a_hard_link_into_the_cache_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::write(&cache, "cached").unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::hard_link(&cache, root.join("etc/hostname")).unwrap();
        let tree = Tree::open(&root).unwrap();
        tree.write("/etc/hostname", b"axoha\n", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&cache).unwrap(), "cached");
        assert_eq!(tree.read_to_string("/etc/hostname").unwrap(), "axoha\n");
        let md = std::fs::metadata(root.join("etc/hostname")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o640);
    }

    #[test]
    fn modes_are_exact_and_parents_are_made() {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree::create(&dir.path().join("t")).unwrap();
        tree.write("a/b/c/file", b"x", 0o4755).unwrap();
        let md = std::fs::metadata(tree.path().join("a/b/c/file")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o4755);
        assert!(tree.is_dir("a/b") && tree.is_file("a/b/c/file"));
        assert_eq!(tree.list("a/b/c").unwrap(), vec!["file".to_owned()]);
        assert!(
            tree.write("a", b"", 0o644).is_err(),
            "a directory is not replaced"
        );
        // A dangling symlink is not a directory to create things in.
        symlink("/nowhere", tree.path().join("dangling")).unwrap();
        let err = format!("{:#}", tree.write("dangling/f", b"", 0o644).unwrap_err());
        assert!(err.contains("dangling"), "{err}");
    }
}
