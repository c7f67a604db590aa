//! An image tree, confined to its root: every path `axoha-image` reads or writes in a tree
//! (the distribution tree, the ESP staging tree) is resolved by the kernel *inside* that
//! tree, with `openat2(RESOLVE_IN_ROOT)`. An absolute symlink (Debian's `var/run -> /run`),
//! a relative one climbing with `..`, or a `..` in the path itself all stay below the root,
//! exactly as they would once the tree is the root filesystem of a node; none of them can
//! reach the build host's files.
//!
//! The tree is a hard-linked copy of the cached rootfs (`stages/rootfs.rs`), so a file is
//! never written in place: it is unlinked, then created anew (`O_CREAT | O_EXCL`, which
//! follows no symlink), and the cache keeps its bytes.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// An open directory that all paths given to it are resolved inside of.
pub struct Tree {
    root: OwnedFd,
    path: PathBuf,
}

/// Kind and ownership of a path in the tree (symlinks inside the tree followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub is_dir: bool,
    pub is_file: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `rel` as the kernel sees it below the root: leading slashes are meaningless inside a
/// root, and an empty path is the root itself.
fn below_root(rel: &str) -> &str {
    match rel.trim_start_matches('/') {
        "" => ".",
        r => r,
    }
}

/// (parent, last component) of a path in the tree; the root has no parent.
fn split_last(rel: &str) -> Result<(&str, &str)> {
    let rel = rel.trim_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() || name == "." || name == ".." {
        bail!("{rel:?} names no file");
    }
    Ok((parent, name))
}

impl Tree {
    /// Opens an existing directory as a tree.
    pub fn open(path: &Path) -> Result<Tree> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening the image tree {}", path.display()))?;
        Ok(Tree {
            root,
            path: path.to_owned(),
        })
    }

    /// Creates the directory (and its parents) on the host, then opens it as a tree.
    pub fn create(path: &Path) -> Result<Tree> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Tree::open(path)
    }

    /// Where the tree is on the build host (for tools that take a root directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` opened with the kernel's in-root resolution: symlinks and `..` never leave it.
    fn resolve(&self, rel: &str, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root,
            below_root(rel),
            flags | OFlags::CLOEXEC,
            mode,
            // Magic links (/proc/self/fd/N) could name anything: never through them.
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The host path a tree path resolves to, for tools that read the tree by path
    /// (the result is inside the tree: the kernel resolved it there).
    pub fn host_path(&self, rel: &str) -> Result<PathBuf> {
        let fd = self
            .resolve(rel, OFlags::PATH, Mode::empty())
            .with_context(|| format!("/{} in the image tree", rel.trim_start_matches('/')))?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        std::fs::read_link(&link).with_context(|| format!("resolving {link}"))
    }

    /// The directory `rel` and every missing parent (mode 0755), each created in the
    /// directory its parent resolved to inside the tree.
    pub fn create_dir_all(&self, rel: &str) -> Result<OwnedFd> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let mut prefix = String::new();
        let mut dir = self
            .resolve(".", dir_flags, Mode::empty())
            .context("opening the tree's root")?;
        for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            dir = match self.resolve(&prefix, dir_flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        // A symlink whose target is missing: not followed out of the tree,
                        // and not a directory either.
                        Err(Errno::EXIST) => bail!(
                            "/{prefix} in the image tree is a dangling symlink; refusing to \
                             create a directory there"
                        ),
                        Err(e) => {
                            return Err(e).with_context(|| format!("creating /{prefix}"));
                        }
                    }
                    self.resolve(&prefix, dir_flags, Mode::empty())
                        .with_context(|| format!("opening /{prefix}"))?
                }
                Err(e) => return Err(e).with_context(|| format!("opening /{prefix}")),
            };
        }
        Ok(dir)
    }

    /// Writes a new file with `mode` (not masked by the umask): unlinks what was there (a
    /// hard link into the cache, a symlink), then creates the file in its resolved parent.
    pub fn write(&self, rel: &str, contents: &[u8], mode: u32) -> Result<()> {
        let what = || format!("writing /{} in the image tree", rel.trim_start_matches('/'));
        let (parent, name) = split_last(rel).with_context(what)?;
        let dir = self.create_dir_all(parent).with_context(what)?;
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(what),
        }
        let fd = rustix::fs::openat(
            &dir,
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

    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let fd = self
            .resolve(rel, OFlags::RDONLY, Mode::empty())
            .with_context(|| format!("reading /{} in the image tree", below_root(rel)))?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading /{} in the image tree", below_root(rel)))?;
        Ok(bytes)
    }

    pub fn read_to_string(&self, rel: &str) -> Result<String> {
        String::from_utf8(self.read(rel)?)
            .with_context(|| format!("/{} in the image tree is not UTF-8", below_root(rel)))
    }

    /// Kind, mode and owner of `rel`; `None` when it does not exist.
    pub fn meta(&self, rel: &str) -> Result<Option<Meta>> {
        let fd = match self.resolve(rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("/{}", below_root(rel))),
        };
        let st = rustix::fs::fstat(&fd).with_context(|| format!("stat /{}", below_root(rel)))?;
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        Ok(Some(Meta {
            is_dir: kind == rustix::fs::FileType::Directory,
            is_file: kind == rustix::fs::FileType::RegularFile,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }))
    }

    pub fn is_file(&self, rel: &str) -> bool {
        self.meta(rel).ok().flatten().is_some_and(|m| m.is_file)
    }

    pub fn is_dir(&self, rel: &str) -> bool {
        self.meta(rel).ok().flatten().is_some_and(|m| m.is_dir)
    }

    /// Removes a file or symlink (not what a symlink points to); a missing one is fine.
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        let what = || {
            format!(
                "removing /{} from the image tree",
                rel.trim_start_matches('/')
            )
        };
        let (parent, name) = split_last(rel).with_context(what)?;
        let dir = match self.resolve(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            Ok(d) => d,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e).with_context(what),
        };
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e).with_context(what),
        }
    }

    /// Names in the directory `rel` (none when it does not exist).
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let fd = match self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing /{}", below_root(rel))),
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)
            .with_context(|| format!("listing /{}", below_root(rel)))?
        {
            let entry = entry.with_context(|| format!("listing /{}", below_root(rel)))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Sets owner and mode of an existing file or directory.
    pub fn set_owner_mode(&self, rel: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let what = || format!("chown/chmod /{} in the image tree", below_root(rel));
        let fd = self
            .resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
            .with_context(what)?;
        let (uid, gid) = (
            rustix::process::Uid::from_raw(uid),
            rustix::process::Gid::from_raw(gid),
        );
        rustix::fs::fchown(fd.as_fd(), Some(uid), Some(gid)).with_context(what)?;
        rustix::fs::fchmod(fd.as_fd(), Mode::from_raw_mode(mode)).with_context(what)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        tree.write("../../../host/w", b"4", 0o600).unwrap();
        assert_eq!(std::fs::read(tree.path().join("host/w")).unwrap(), b"4");
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
            tree.read("etc/up/passwd").is_err(),
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
