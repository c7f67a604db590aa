//! Stage 2, rootfs: the distribution tree from its package manager, cached as `tar.zst`.
//!
//! The cache key (`Plan::rootfs_key`) covers exactly what determines the tree: profile,
//! release, mirror, package list, the AxoRouter package's hash, the bootstrap tool's version
//! and SOURCE_DATE_EPOCH. Our own files are added later (stage 3), so changing them reuses it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};

use crate::plan::Plan;
use crate::profile::Profile;

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
        Profile::Debian12 => debian(plan, &tmp),
        Profile::Almalinux10 => almalinux(plan, &tmp),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", path.display()))?;
    Ok((path, false))
}

fn debian(plan: &Plan, out: &Path) -> Result<()> {
    let m = plan.mirror.trim_end_matches('/');
    let suite = &plan.release;
    let security = if m == "http://deb.debian.org/debian" {
        "http://deb.debian.org/debian-security".to_owned()
    } else {
        format!("{m}-security")
    };
    let deb = &plan.axorouter.file.path;
    run(command("mmdebstrap")
        .env("SOURCE_DATE_EPOCH", plan.source_date_epoch.to_string())
        .args(["--mode=root", "--variant=minbase", "--format=tar", "--quiet"])
        .arg(format!("--include={}", plan.packages.join(",")))
        .arg("--aptopt=Acquire::Retries \"3\"")
        // Documentation and translations are dead weight on an appliance.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        ])
        .arg("--customize-hook=upload ".to_owned() + &deb.display().to_string() + " /tmp/axorouter.deb")
        .arg("--customize-hook=chroot \"$1\" dpkg -i /tmp/axorouter.deb && rm \"$1/tmp/axorouter.deb\"")
        // Logs and caches that differ from run to run, and that an image does not need.
        .arg("--customize-hook=rm -rf \"$1\"/var/log/apt/* \"$1\"/var/log/dpkg.log \"$1\"/var/cache/ldconfig/aux-cache \"$1\"/var/lib/dpkg/*-old")
        .arg(suite)
        .arg(out)
        .arg(format!("deb {m} {suite} main"))
        .arg(format!("deb {m} {suite}-updates main"))
        .arg(format!("deb {security} {suite}-security main")))
    .with_context(|| format!("mmdebstrap {suite} from {m} (is the mirror reachable?)"))?;
    // mmdebstrap picks the compressor from the file name; ours ends in .tmp, so compress here.
    let zst = out.with_extension("zst-tmp");
    run(command("zstd")
        .args(["-q", "-T0", "-10", "--rm", "-o"])
        .arg(&zst)
        .arg(out))
    .context("compressing the rootfs")?;
    std::fs::rename(&zst, out)?;
    Ok(())
}

fn almalinux(plan: &Plan, _out: &Path) -> Result<()> {
    let url = format!(
        "{}/{}/BaseOS/x86_64/os/repodata/repomd.xml",
        plan.mirror.trim_end_matches('/'),
        plan.release
    );
    // dnf --installroot needs the repository; probe it first so the error names the mirror.
    let probe = command("dnf")
        .args(["-q", "--disablerepo=*", "--setopt=reposdir=/dev/null"])
        .arg(format!(
            "--repofrompath=axoha-probe,{}/{}/BaseOS/x86_64/os/",
            plan.mirror.trim_end_matches('/'),
            plan.release
        ))
        .args([
            "--repo=axoha-probe",
            "makecache",
            "--setopt=axoha-probe.gpgcheck=0",
        ])
        .output();
    match probe {
        Ok(o) if o.status.success() => bail!(
            "the almalinux-10 rootfs stage (dnf --installroot) is not implemented yet; mirror {} answered",
            plan.mirror
        ),
        _ => bail!(
            "AlmaLinux mirror {} is unreachable ({url}): pass --mirror URL with a reachable \
             AlmaLinux 10 mirror (axoha never switches profile silently)",
            plan.mirror
        ),
    }
}

/// The cached tarball unpacked once, beside it: builds hard-link it instead of unpacking
/// 700 MB again. Nothing may write into a hard-linked tree in place (see `layer::write`).
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
