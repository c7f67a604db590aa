//! The root filesystem: ext4 populated from a directory tree with `mkfs.ext4 -d`.
//!
//! Reproducibility: `E2FSPROGS_FAKE_TIME` fixes the superblock times, `-U` and
//! `-E hash_seed=` the identifiers. `mkfs.ext4 -d` copies each file's atime and ctime from the
//! tree; atime and mtime we clamp in the tree first, ctime (which no user-space call can set)
//! we reset afterwards with `debugfs set_inode_field`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::tool::{command, run};

pub struct Ext4 {
    pub label: String,
    pub uuid: String,
    pub hash_seed: String,
    pub size_bytes: u64,
    /// SOURCE_DATE_EPOCH: every timestamp in the filesystem.
    pub epoch: i64,
}

/// Every path under `tree` (relative, starting with `/`), sorted, the root first.
pub fn walk(tree: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![PathBuf::from("/")];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = tree.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = rel.join(e.file_name());
            out.push(Path::new("/").join(&child));
            if e.file_type()?.is_dir() {
                stack.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Sets atime and mtime of every entry (symlinks themselves, not their targets) to `epoch`.
pub fn clamp_times(tree: &Path, paths: &[PathBuf], epoch: i64) -> Result<()> {
    let t = TimeSpec::new(epoch, 0);
    for rel in paths {
        let p = tree.join(rel.strip_prefix("/").unwrap_or(rel));
        utimensat(None, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
            .with_context(|| format!("setting times of {}", p.display()))?;
    }
    Ok(())
}

impl Ext4 {
    /// Builds the filesystem from `tree` directly into `disk` at byte `offset` (the partition
    /// the GPT already describes): no separate image, no copy.
    pub fn build(&self, tree: &Path, disk: &Path, offset: u64) -> Result<()> {
        let paths = walk(tree)?;
        clamp_times(tree, &paths, self.epoch)?;
        run(command("mkfs.ext4")
            .env("E2FSPROGS_FAKE_TIME", self.epoch.to_string())
            .args([
                "-q",
                "-F",
                "-b",
                "4096",
                "-L",
                &self.label,
                "-U",
                &self.uuid,
            ])
            .arg("-E")
            .arg(format!(
                "offset={offset},hash_seed={},nodiscard",
                self.hash_seed
            ))
            .arg("-d")
            .arg(tree)
            .arg(disk)
            .arg(format!("{}k", self.size_bytes / 1024)))
        .context("mkfs.ext4 -d (root filesystem)")?;
        self.reset_ctimes(&paths, disk, offset)
    }

    fn reset_ctimes(&self, paths: &[PathBuf], disk: &Path, offset: u64) -> Result<()> {
        let script = disk.with_extension("debugfs");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&script)
                .with_context(|| format!("creating {}", script.display()))?,
        );
        for p in paths {
            let bytes = p.as_os_str().as_bytes();
            if bytes.iter().any(|b| matches!(b, b'"' | b'\n')) {
                bail!(
                    "{}: a path with a quote or newline cannot be timestamped",
                    p.display()
                );
            }
            let p = String::from_utf8_lossy(bytes);
            // atime and mtime come from the clamped tree, crtime from E2FSPROGS_FAKE_TIME.
            writeln!(f, "sif \"{p}\" ctime @{}", self.epoch)?;
            writeln!(f, "sif \"{p}\" ctime_extra 0")?;
        }
        f.flush()?;
        drop(f);
        let result = run(command("debugfs")
            .env("E2FSPROGS_FAKE_TIME", self.epoch.to_string())
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(format!("{}?offset={offset}", disk.display())))
        .context("debugfs: resetting inode times");
        let _ = std::fs::remove_file(&script);
        let out = result?;
        // debugfs reports per-command errors on stderr but still exits 0.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = stderr
            .lines()
            .find(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        {
            bail!("debugfs: {line}");
        }
        Ok(())
    }
}

/// Reads a file out of an ext4 image (at `offset` bytes into `image`) without mounting it.
pub fn read_file(image: &Path, offset: u64, path: &str) -> Result<Vec<u8>> {
    let out = run(command("debugfs")
        .arg("-R")
        .arg(format!("cat \"{path}\""))
        .arg(format!("{}?offset={offset}", image.display())))?;
    Ok(out.stdout)
}

/// Runs one read-only debugfs request (e.g. `ls -l /etc`, `stat /usr/bin/x`).
pub fn debugfs(image: &Path, offset: u64, request: &str) -> Result<String> {
    let out = run(command("debugfs")
        .arg("-R")
        .arg(request)
        .arg(format!("{}?offset={offset}", image.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
