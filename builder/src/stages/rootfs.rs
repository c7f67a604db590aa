//! Stage 2, rootfs: the distribution tree from its package manager (`mmdebstrap.rs`,
//! `dnf.rs`), cached as `tar.zst`.
//!
//! The cache key (`Plan::rootfs_key`) covers exactly what determines the tree: profile,
//! release, mirror, package list, the AxoRouter package's hash, the bootstrap tool's version
//! and SOURCE_DATE_EPOCH. Our own files are added later (stage 3), so changing them reuses it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use axoha_disk::tool::{command, run};

use crate::plan::Plan;
use crate::profile::Profile;
use crate::stages::{dnf, mmdebstrap};

pub fn cache_path(cache_dir: &Path, plan: &Plan) -> PathBuf {
    cache_dir.join(format!(
        "rootfs-{}-{}.tar.zst",
        plan.profile.name(),
        &plan.rootfs_key[..16]
    ))
}

/// Returns the cached tarball, creating it when missing. `true` = cache hit.
pub fn ensure(plan: &Plan, cache_dir: &Path) -> Result<(PathBuf, bool)> {
    let path = cache_path(cache_dir, plan);
    if path.is_file() {
        return Ok((path, true));
    }
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating cache {}", cache_dir.display()))?;
    let tmp = cache_dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let result = match plan.profile {
        Profile::Debian12 => mmdebstrap::bootstrap(plan, &tmp),
        Profile::Almalinux10 => dnf::bootstrap(plan, &tmp),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", path.display()))?;
    Ok((path, false))
}

/// The cached tarball unpacked once, beside it: builds hard-link it instead of unpacking
/// 700 MB again. Nothing may write into a hard-linked tree in place (see `tree.rs`).
pub fn unpacked(tarball: &Path) -> Result<PathBuf> {
    let tree = tarball.with_extension("tree");
    if tree.is_dir() {
        return Ok(tree);
    }
    let tmp = tarball.with_extension(format!("tree-tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = extract(tarball, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &tree).with_context(|| format!("renaming {}", tree.display()))?;
    Ok(tree)
}

/// A private copy of the unpacked tree made of hard links (a second, not minutes).
pub fn link_copy(cached: &Path, tree: &Path) -> Result<()> {
    run(command("cp")
        .args(["-a", "--link", "--no-target-directory"])
        .arg(cached)
        .arg(tree))
    .context("hard-linking the cached rootfs tree")?;
    Ok(())
}

/// Unpacks the cached tarball into `tree` (as root: owners, modes, xattrs kept).
pub fn extract(tarball: &Path, tree: &Path) -> Result<()> {
    std::fs::create_dir_all(tree)?;
    run(command("tar")
        .args([
            "--zstd",
            "-x",
            "-p",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-f",
        ])
        .arg(tarball)
        .arg("-C")
        .arg(tree))
    .context("unpacking the rootfs")?;
    Ok(())
}
