//! Stage 2, rootfs: the distribution tree from its package manager (`mmdebstrap.rs`,
//! `dnf.rs`), cached as the tree itself (`CACHE/rootfs-PROFILE-KEY.tree`).
//!
//! The cache key (`Plan::rootfs_key`) covers exactly what determines the tree: profile,
//! release, mirror, package list, the AxoRouter package's hash, the bootstrap tool's version
//! and SOURCE_DATE_EPOCH. Our own files are added later (stage 3), so changing them reuses it.
//!
//! Why a directory and no tarball: builds only ever read the unpacked tree (hard-linked, see
//! `link_copy`), and packing ~650 MB only to unpack it again cost 16 s of a 92 s stage
//! (issue 15). The package manager writes into a private directory beside the cache entry,
//! which is renamed into place only when complete; a build killed half-way leaves a directory
//! that the next build removes (its process is gone). Reproducibility is checked on the tree:
//! times are clamped to SOURCE_DATE_EPOCH here, as the tar did, and the tests compare two
//! cold trees by a sorted tar of each.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use axoha_disk::tool::{command, run};

use crate::plan::Plan;
use crate::profile::Profile;
use crate::stages::{dnf, mmdebstrap};

pub fn cache_path(cache_dir: &Path, plan: &Plan) -> PathBuf {
    cache_dir.join(format!(
        "rootfs-{}-{}.tree",
        plan.profile.name(),
        &plan.rootfs_key[..16]
    ))
}

/// The prefix of a tree being made: `.rootfs-…tree.tmp-PID`.
const TMP_MARK: &str = ".tmp-";

/// Returns the cached tree, creating it when missing. `true` = cache hit.
pub fn ensure(plan: &Plan, cache_dir: &Path) -> Result<(PathBuf, bool)> {
    let path = cache_path(cache_dir, plan);
    if path.is_dir() {
        return Ok((path, true));
    }
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating cache {}", cache_dir.display()))?;
    // `….tmp-PID.dnf-work`, `….tmp-PID.query`: dnf's work directory, a `Scratch` copy.
    crate::dead_work::remove(cache_dir, ".rootfs-", TMP_MARK);
    let tmp = cache_dir.join(format!(
        ".{}{TMP_MARK}{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = match plan.profile {
        Profile::Debian12 => mmdebstrap::bootstrap(plan, &tmp),
        Profile::Almalinux10 => dnf::bootstrap(plan, &tmp),
    }
    .and_then(|()| clamp_mtimes(&tmp, plan.source_date_epoch))
    .and_then(|()| sync_filesystem(&tmp));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", path.display()))?;
    Ok((path, false))
}

/// Every mtime later than SOURCE_DATE_EPOCH set to it (and its atime with it), symlinks
/// themselves: what `tar --clamp-mtime` did to the tarball, so two bootstraps of the same
/// inputs give the same tree whatever the clock said when maintainer scripts wrote files.
pub fn clamp_mtimes(tree: &Path, epoch: i64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let t = TimeSpec::new(epoch, 0);
    for rel in axoha_disk::ext4::walk(tree)? {
        let p = tree.join(rel.strip_prefix("/").unwrap_or(&rel));
        let md = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
        if md.mtime() > epoch {
            utimensat(None, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
                .with_context(|| format!("setting times of {}", p.display()))?;
        }
    }
    Ok(())
}

/// One `syncfs` for the whole tree before it becomes the cache: the package manager ran with
/// its per-file fsyncs off (see `mmdebstrap.rs`), and a cache entry must never be a tree of
/// empty files after a power cut.
fn sync_filesystem(tree: &Path) -> Result<()> {
    let dir = std::fs::File::open(tree).with_context(|| format!("opening {}", tree.display()))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .with_context(|| format!("syncfs {}", tree.display()))?;
    Ok(())
}

/// A hard-linked copy of the cached tree beside it, removed when dropped: for reading what
/// writes while it reads (rpm's sqlite database leaves its side files and changes its
/// directory), which the cache itself must never see.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn of(cached: &Path) -> Result<Scratch> {
        let name = cached.file_name().unwrap_or_default().to_string_lossy();
        let path = cached.with_file_name(format!(".{name}{TMP_MARK}{}.query", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let scratch = Scratch(path);
        link_copy(cached, &scratch.0)?;
        Ok(scratch)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private copy of the cached tree made of hard links (a second, not minutes).
pub fn link_copy(cached: &Path, tree: &Path) -> Result<()> {
    run(command("cp")
        .args(["-a", "--link", "--no-target-directory"])
        .arg(cached)
        .arg(tree))
    .context("hard-linking the cached rootfs tree")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mtimes_after_the_epoch_are_clamped_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/new"), "x").unwrap();
        std::fs::write(root.join("old"), "x").unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("a/link")).unwrap();
        let old = TimeSpec::new(1000, 0);
        utimensat(
            None,
            &root.join("old"),
            &old,
            &old,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        clamp_mtimes(&root, 5000).unwrap();
        let mtime = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mtime();
        assert_eq!(mtime("a/b/new"), 5000);
        assert_eq!(mtime("a/b"), 5000);
        assert_eq!(mtime("a/link"), 5000);
        assert_eq!(mtime("old"), 1000);
        assert_eq!(mtime(""), 5000);
    }
}
