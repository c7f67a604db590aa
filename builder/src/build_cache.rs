//! A finished build kept in the cache (`CACHE/build-PROFILE-KEY/`), so that another target of
//! the same build is made from it instead of from scratch: `build --target qcow2` then
//! `build --target pxe` (or `raw`, `bundle`) runs no stage again (issue 15, "nothing done
//! twice").
//!
//! An entry holds what the targets are made of: the raw disk (sparse), slot A's payloads for
//! the update bundle (`usr.img`, `usr.verity`, `usrhash`, the kernel and initrd, a signed
//! build's signed UKI `linux.efi`, the very one on the disk's ESP), the
//! manifest without artifacts and, once a PXE bundle was made, its compressed disk
//! (`pxe-disk/`). Entries and their `pxe-disk/` appear by rename only when complete.
//!
//! The key is the build key (`Plan::build_key`: every input of the image) together with the
//! hash of this axoha-image binary and the versions of the tools that wrote the disk: a
//! changed builder or tool must never serve an old disk. The newest `KEEP` entries of a
//! profile stay; older ones are removed when a new one is stored.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use axoha_disk::hash::{sha256_bytes, sha256_file};
use axoha_disk::sparse;

use crate::manifest::Manifest;
use crate::plan::Plan;

/// Entries kept per profile (a build and the one before it: ~0.7 GB each).
const KEEP: usize = 2;

pub const DISK: &str = "disk.raw";
pub const USR_IMG: &str = "usr.img";
pub const USR_VERITY: &str = "usr.verity";
pub const USRHASH: &str = "usrhash";
pub const VMLINUZ: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
/// A signed build's slot A UKI (the bundle's `linux.efi`).
pub const UKI: &str = "linux.efi";
const MANIFEST: &str = "manifest.json";
/// The PXE bundle's compressed disk and its checksum files (`pxe::compress_disk`).
const PXE_DISK: &str = "pxe-disk";

/// One complete entry.
pub struct Entry {
    dir: PathBuf,
    pub manifest: Manifest,
}

/// What a build made, to be stored: each file is moved (or copied) into the entry.
pub struct Parts<'a> {
    pub disk: &'a Path,
    pub usr_img: &'a Path,
    pub usr_verity: &'a Path,
    pub usrhash: &'a str,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    /// A signed build's UKI.
    pub uki: Option<&'a Path>,
    pub manifest: &'a Manifest,
}

fn key(plan: &Plan) -> Result<String> {
    let exe = std::env::current_exe().context("locating axoha-image itself")?;
    let text = format!(
        "build {}\naxoha-image {}\ntools {}\n",
        plan.build_key,
        sha256_file(&exe).with_context(|| format!("hashing {}", exe.display()))?,
        serde_json::to_string(&plan.tools)?
    );
    Ok(sha256_bytes(text.as_bytes()))
}

/// Where this build's entry is (or will be): the key, with the binary's hash, computed once
/// for the lookup and the store.
pub struct Place {
    cache: PathBuf,
    prefix: String,
    dir: PathBuf,
}

impl Place {
    pub fn of(cache: &Path, plan: &Plan) -> Result<Place> {
        let prefix = format!("build-{}-", plan.profile.name());
        Ok(Place {
            dir: cache.join(format!("{prefix}{}", &key(plan)?[..16])),
            cache: cache.to_owned(),
            prefix,
        })
    }

    /// The entry, if complete. A hit marks it newest (for `KEEP`).
    pub fn find(&self) -> Option<Entry> {
        let dir = &self.dir;
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        let manifest = serde_json::from_str::<Manifest>(&text).ok()?;
        let complete = [DISK, USR_IMG, USR_VERITY, USRHASH, VMLINUZ, INITRD]
            .iter()
            .all(|f| dir.join(f).is_file());
        if !complete {
            return None;
        }
        touch(dir);
        Some(Entry {
            dir: dir.clone(),
            manifest,
        })
    }

    /// Moves the parts into a new entry (renamed into place when complete) and removes the
    /// oldest entries beyond `KEEP`. When another build stored the same entry meanwhile, that
    /// one is used.
    pub fn store(&self, parts: Parts) -> Result<Entry> {
        let (cache, dir) = (&self.cache, &self.dir);
        std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
        crate::dead_work::remove(cache, ".build-", ".tmp-");
        let tmp = tmp_path(dir);
        let _ = std::fs::remove_dir_all(&tmp);
        let result = fill(&tmp, &parts);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join(MANIFEST).is_file() {
                anyhow::bail!("storing the build in {}", dir.display());
            }
        }
        evict(cache, &self.prefix, dir);
        Ok(Entry {
            dir: dir.clone(),
            manifest: parts.manifest.clone(),
        })
    }
}

fn fill(tmp: &Path, parts: &Parts) -> Result<()> {
    std::fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (from, name) in [
        (parts.disk, DISK),
        (parts.usr_img, USR_IMG),
        (parts.usr_verity, USR_VERITY),
        (parts.vmlinuz, VMLINUZ),
        (parts.initrd, INITRD),
    ] {
        move_or_copy(from, &tmp.join(name))?;
    }
    if let Some(uki) = parts.uki {
        move_or_copy(uki, &tmp.join(UKI))?;
    }
    std::fs::write(tmp.join(USRHASH), parts.usrhash)?;
    std::fs::write(tmp.join(MANIFEST), parts.manifest.to_json())?;
    Ok(())
}

/// A rename within one filesystem; a sparse copy (and the source removed) across two.
fn move_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    sparse::copy(from, to).with_context(|| format!("copying {} to the cache", from.display()))?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

impl Entry {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The PXE bundle's compressed disk files copied into `pxe_dir`, if this entry has them.
    pub fn copy_pxe_disk(&self, pxe_dir: &Path, files: &[&str]) -> Result<bool> {
        let src = self.dir.join(PXE_DISK);
        if !files.iter().all(|f| src.join(f).is_file()) {
            return Ok(false);
        }
        std::fs::create_dir_all(pxe_dir)?;
        for f in files {
            // A copy, not a link: the published file must not share an inode with the cache.
            std::fs::copy(src.join(f), pxe_dir.join(f))
                .with_context(|| format!("copying the cached {f}"))?;
        }
        Ok(true)
    }

    /// Keeps copies of the PXE bundle's compressed disk files from `pxe_dir`.
    pub fn keep_pxe_disk(&self, pxe_dir: &Path, files: &[&str]) -> Result<()> {
        let dest = self.dir.join(PXE_DISK);
        crate::dead_work::remove(&self.dir, ".pxe-disk", ".tmp-");
        let tmp = tmp_path(&dest);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let result = files.iter().try_for_each(|f| {
            std::fs::copy(pxe_dir.join(f), tmp.join(f))
                .map(|_| ())
                .with_context(|| format!("keeping {f} in the cache"))
        });
        if result.is_err() || std::fs::rename(&tmp, &dest).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// `DIR.tmp-PID` beside `dir`, hidden.
fn tmp_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Marks an entry as used now (eviction keeps the newest).
fn touch(dir: &Path) {
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    let _ = nix::sys::stat::utimensat(
        None,
        dir,
        &now,
        &now,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    );
}

/// Removes the entries of this profile beyond the newest `KEEP` (never `current`).
fn evict(cache: &Path, prefix: &str, current: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p != current)
        .collect();
    found.sort();
    let remove = found.len().saturating_sub(KEEP - 1);
    for (_, p) in found.into_iter().take(remove) {
        let _ = std::fs::remove_dir_all(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_newest_and_the_current() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, secs: i64| {
            let p = dir.path().join(name);
            std::fs::create_dir(&p).unwrap();
            let t = nix::sys::time::TimeSpec::new(secs, 0);
            nix::sys::stat::utimensat(
                None,
                &p,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            )
            .unwrap();
            p
        };
        let oldest = mk("build-debian-12-a", 1000);
        let older = mk("build-debian-12-b", 2000);
        let current = mk("build-debian-12-c", 500);
        let other_profile = mk("build-almalinux-10-d", 100);
        evict(dir.path(), "build-debian-12-", &current);
        assert!(!oldest.exists(), "beyond KEEP");
        assert!(older.exists() && current.exists() && other_profile.exists());
    }
}
