//! Copying a tree inside a root (the factory tree back to the state partition, a factory
//! /etc file into /etc): modes and owners kept, links copied as links, never followed.
//! Every path goes through firstboot's root-confined `root.rs`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use axoha_root::{Dir, Last, RootDir};
use rustix::fs::FileType;

/// Copies the non-directory at `from` (a path in `root`) to `name` in `dir`, replacing what
/// is there (a file by rename; a link or other thing removed first). Devices, FIFOs and
/// sockets are skipped (returns false).
pub fn copy_node(root: &RootDir, from: &str, dir: &Dir, name: &OsStr) -> Result<bool> {
    let stat = root
        .lstat(from)?
        .with_context(|| format!("{} vanished", root.shown(from).display()))?;
    let mode = stat.st_mode & 0o7777;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {
            let mut src = root
                .open_regular(from, Last::NoFollow)?
                .with_context(|| format!("{} vanished", root.shown(from).display()))?;
            let tmp = dir.write_temp_from(name, mode, &mut |f: &mut File| {
                std::io::copy(&mut src, f)
                    .map(drop)
                    .with_context(|| format!("copying {}", root.shown(from).display()))
            })?;
            let tmp = OsStr::from_bytes(&tmp);
            let placed = dir.chown(tmp, stat.st_uid, stat.st_gid).and_then(|()| {
                if dir.file_type(name) == Some(FileType::Directory) {
                    dir.remove_tree(name)?;
                }
                dir.rename(tmp, name)
                    .with_context(|| format!("renaming into {}", dir.path().join(name).display()))
            });
            if placed.is_err() {
                let _ = dir.unlink(tmp);
            }
            placed?;
        }
        FileType::Symlink => {
            let target = root.read_link(from)?;
            dir.remove_tree(name)?;
            dir.symlink(&target, name)?;
            dir.chown(name, stat.st_uid, stat.st_gid)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Copies directory `from` (in `root`) into `dir` (which exists), recursively, except the
/// top-level names in `except`.
pub fn copy_tree(root: &RootDir, from: &str, dir: &Dir, except: &[&str]) -> Result<()> {
    for name in root.list(from)? {
        if except.contains(&name.as_str()) {
            continue;
        }
        let src = format!("{from}/{name}");
        let stat = root
            .lstat(&src)?
            .with_context(|| format!("{} vanished", root.shown(&src).display()))?;
        let os = OsString::from(&name);
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            if dir.file_type(&os).is_some_and(|t| t != FileType::Directory) {
                dir.unlink(&os)?;
            }
            dir.mkdir(&os, stat.st_mode & 0o7777)?;
            dir.chown(&os, stat.st_uid, stat.st_gid)?;
            copy_tree(root, &src, &dir.sub(&os)?, &[])?;
        } else if !copy_node(root, &src, dir, &os)? {
            println!(
                "skipped {} (not a file, directory or link)",
                root.shown(&src).display()
            );
        }
    }
    dir.sync()
}
