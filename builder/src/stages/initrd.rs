//! The initrd stage, after the appliance layer: dracut run in the tree (both profiles), generic
//! (`--no-hostonly`), with `systemd-veritysetup` (so the initrd sets up `/dev/mapper/usr` from
//! `usrhash=`) and our module `90axoha` when the tree has it (the initrd deadline and
//! `axoha-update prepare-root`), with /proc, /sys and /dev bound into the tree in a private
//! mount namespace (`api_filesystems.rs`).
//!
//! dracut takes about 7 s under two cores (46 s with Debian's `gzip -9`), and runs on a
//! hard-linked copy of the tree while the build compresses /usr (`Pending`); its output is cached
//! (`CACHE/initrd-PROFILE-KEY.img`) by a key of exactly what goes into it: the kernel
//! version, the rootfs key (the distribution tree: dracut, systemd, the modules), the files of
//! our dracut module and the axoha-update binary it installs, and dracut's arguments.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use axoha_disk::hash::{sha256_bytes, sha256_file};
use axoha_disk::tool::{command, run};

use super::api_filesystems;
use crate::own_files::{DRACUT_MODULE_DIR, UPDATE_BIN};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::tree::Tree;

/// Where dracut writes in the tree (removed before and after).
const OUT_IN_TREE: &str = "var/tmp/axoha-initrd.img";

/// dracut's arguments (after `dracut`), for kernel `version`, writing `out` (a path in the tree).
fn dracut_args(version: &str, with_module: bool, out: &str) -> Vec<String> {
    let mut add = vec!["systemd-veritysetup"];
    if with_module {
        add.push("axoha");
    }
    let mut args: Vec<String> = [
        "--no-hostonly",
        "--reproducible",
        "--force",
        "--quiet",
        // Debian's dracut compresses with `gzip -9`: 42 s of a 46 s run on two cores, for a
        // 39.0 MB initrd; `-4` takes 2 s for 40.6 MB (issue 15). `-n`: no name or time in it.
        "--compress",
        "gzip -n -4",
        "--add",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(add.join(" "));
    args.extend(["--kver".to_owned(), version.to_owned(), out.to_owned()]);
    args
}

/// The cache key: kernel, distribution tree, our module's files, the updater, dracut's arguments.
fn key(plan: &Plan, tree: &Tree, version: &str, args: &[String]) -> Result<String> {
    let mut text = format!(
        "format 1\nkernel {version}\nrootfs {}\nargs {}\n",
        plan.rootfs_key,
        args.join(" ")
    );
    let module = DRACUT_MODULE_DIR.trim_start_matches('/');
    let mut names = tree.list(module)?;
    names.sort();
    for name in names {
        let rel = format!("{module}/{name}");
        let meta = tree.meta(&rel)?;
        let bytes = tree
            .read_to_end(&rel)
            .with_context(|| format!("reading /{rel}"))?;
        text.push_str(&format!(
            "module {name} {:o} {}\n",
            meta.map(|m| m.mode).unwrap_or(0),
            sha256_bytes(&bytes)
        ));
    }
    let update = UPDATE_BIN.trim_start_matches('/');
    if tree.is_file(update) {
        text.push_str(&format!(
            "axoha-update {}\n",
            sha256_file(&tree.host_path(update)?)?
        ));
    }
    Ok(sha256_bytes(text.as_bytes()))
}

/// The initrd still to be made: dracut's arguments and where the result is cached.
pub struct Job {
    args: Vec<String>,
    version: String,
    pub cached: PathBuf,
}

/// The initrd for kernel `version` of the layered tree: `Ok(path)` from the cache, else the
/// `Job` that makes it (`Job::run`, which may run on its own copy of the tree meanwhile).
pub fn lookup(
    plan: &Plan,
    tree: &Tree,
    version: &str,
    cache: &Path,
) -> Result<std::result::Result<PathBuf, Job>> {
    let with_module = tree.is_dir(DRACUT_MODULE_DIR.trim_start_matches('/'));
    let out_in_tree = format!("/{OUT_IN_TREE}");
    let args = dracut_args(version, with_module, &out_in_tree);
    let key = key(plan, tree, version, &args)?;
    let cached = cache.join(format!("initrd-{}-{}.img", plan.profile.name(), &key[..16]));
    if cached.is_file() {
        return Ok(Ok(cached));
    }
    Ok(Err(Job {
        args,
        version: version.to_owned(),
        cached,
    }))
}

impl Job {
    /// dracut in `tree` (a copy of the layered tree made of hard links: dracut only adds files,
    /// under /var/tmp), its output moved into the cache. Returns the cached path.
    pub fn run(self, tree: &Tree, epoch: i64) -> Result<PathBuf> {
        if let Some(cache) = self.cached.parent() {
            std::fs::create_dir_all(cache)
                .with_context(|| format!("creating {}", cache.display()))?;
        }
        tree.remove_file(OUT_IN_TREE)?;
        tree.create_dir_all("var/tmp", &mut Vec::new())?;
        let mut dracut = command("chroot");
        dracut
            .arg(tree.path())
            .arg("dracut")
            .args(&self.args)
            .env("SOURCE_DATE_EPOCH", epoch.to_string());
        api_filesystems::bind_into(&mut dracut, tree.path())?;
        run(&mut dracut)
            .with_context(|| format!("dracut for kernel {} in the tree", self.version))?;
        let bytes = tree
            .read_to_end(OUT_IN_TREE)
            .context("reading dracut's initrd")?;
        tree.remove_file(OUT_IN_TREE)?;
        let tmp = self
            .cached
            .with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.cached)
            .with_context(|| format!("renaming {}", self.cached.display()))?;
        Ok(self.cached)
    }
}

/// Slot A's initrd: from the cache, or being made by dracut on its own hard-linked copy of the
/// layered tree (a thread) while the build compresses /usr: on two cores the two overlap
/// instead of adding up (dracut is mostly one process at a time, mksquashfs uses both).
pub enum Pending {
    Cached(PathBuf),
    Making(Making),
}

pub struct Making {
    copy: PathBuf,
    started: Instant,
    /// Taken by `finish`; still here when the build failed before it (see `Drop`).
    thread: Option<std::thread::JoinHandle<Result<PathBuf>>>,
}

impl Drop for Making {
    /// A build that fails meanwhile waits for dracut (interrupted with it by the same signal)
    /// rather than leave it running in a work directory about to be removed.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Pending {
    pub fn start(
        plan: &Plan,
        tree: &Tree,
        version: &str,
        cache: &Path,
        work: &Path,
    ) -> Result<Self> {
        let job = match lookup(plan, tree, version, cache)? {
            Ok(cached) => return Ok(Pending::Cached(cached)),
            Err(job) => job,
        };
        // dracut only adds files (under /var/tmp), and only in its own copy's directories.
        let copy = work.join("initrd-tree");
        super::rootfs::link_copy(tree.path(), &copy)?;
        let epoch = plan.source_date_epoch;
        let for_thread = copy.clone();
        let thread = std::thread::spawn(move || job.run(&Tree::open(&for_thread)?, epoch));
        Ok(Pending::Making(Making {
            copy,
            started: Instant::now(),
            thread: Some(thread),
        }))
    }

    /// The initrd's path in the cache, waiting for dracut when it runs.
    pub fn finish(&mut self, progress: &Progress) -> Result<PathBuf> {
        match self {
            Pending::Cached(path) => {
                progress.note(&format!("initrd: cache hit {}", path.display()));
                Ok(path.clone())
            }
            Pending::Making(m) => {
                let thread = m.thread.take().context("the initrd was already taken")?;
                let activity = progress.activity("initrd (dracut)", None);
                let result = thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("the dracut thread panicked"))?;
                drop(activity);
                let _ = std::fs::remove_dir_all(&m.copy);
                let path = result?;
                progress.note(&format!(
                    "initrd: made and cached {} ({:.1?}, beside /usr)",
                    path.display(),
                    m.started.elapsed()
                ));
                Ok(path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_module_is_added_only_when_present() {
        let with = dracut_args("6.1.0-1-amd64", true, "/x");
        let i = with.iter().position(|a| a == "--add").unwrap();
        assert_eq!(with[i + 1], "systemd-veritysetup axoha");
        let without = dracut_args("6.1.0-1-amd64", false, "/x");
        assert_eq!(without[i + 1], "systemd-veritysetup");
        assert_eq!(without.last().unwrap(), "/x");
    }
}
