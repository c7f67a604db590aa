//! Factory reset: `factory-reset` writes the flag (and so does `prepare-root` for
//! `axoha.factory_reset` typed at the boot menu, before it deletes anything: a reset cut
//! short is done again at the next boot, whichever way it was asked for); `prepare-root`
//! (initrd) empties the root except `usr` (and the update memory) and copies
//! `usr/share/axoha/factory/` back, so the next boot is a first boot.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Result};
use axoha_root::{Dir, RootDir};

use crate::paths;
use crate::tree_copy::copy_tree;

/// Writes the factory-reset flag under `root`.
pub fn request(root: &Path) -> Result<()> {
    flag(&RootDir::open(root)?, "axoha-update factory-reset")
}

/// Writes the factory-reset flag (durably: file and directory synced) saying who asked.
pub fn flag(root: &RootDir, by: &str) -> Result<()> {
    let flag = Path::new(paths::FACTORY_RESET_FLAG);
    let parent = flag.parent().expect("a parent").to_string_lossy();
    let name = flag.file_name().expect("a name");
    let dir = root.create_dir_all(&parent, &mut Vec::new())?;
    let tmp = dir.write_temp(name, format!("requested by {by}\n").as_bytes(), 0o644)?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = dir.rename(tmp, name) {
        let _ = dir.unlink(tmp);
        return Err(anyhow::Error::from(e).context(format!(
            "writing {}",
            root.shown(paths::FACTORY_RESET_FLAG).display()
        )));
    }
    dir.sync()
}

/// Removes everything in `dir` but the paths of `keep` (relative, `/`-separated), going
/// down only where a kept path leads.
fn empty_except(dir: &Dir, keep: &[&str]) -> Result<()> {
    for name in dir.names()? {
        let n = name.to_string_lossy();
        let below: Vec<&str> = keep
            .iter()
            .filter_map(|k| k.strip_prefix(&*n).and_then(|r| r.strip_prefix('/')))
            .collect();
        if keep.contains(&&*n) {
            continue;
        }
        if below.is_empty() {
            dir.remove_tree(&name)?;
        } else {
            empty_except(&dir.sub(&name)?, &below)?;
        }
    }
    dir.sync()
}

/// The reset itself. The flag is written first when it is not there yet (`unflagged_by`:
/// who asked instead) and removed last: a reset cut short is done again.
pub fn reset(root: &RootDir, unflagged_by: Option<&str>) -> Result<()> {
    if root.lstat(paths::FACTORY)?.is_none() {
        bail!(
            "no factory tree at {}: refusing to empty the root",
            root.shown(paths::FACTORY).display()
        );
    }
    if let Some(by) = unflagged_by {
        flag(root, by)?;
    }
    let top = root.open_dir(".")?.expect("the root exists");
    // The update memory stays: a reset forgets the node's configuration, not which /usr
    // failed here or how new a version it ran.
    empty_except(&top, &["usr", paths::FACTORY_RESET_FLAG, paths::MEMORY])?;
    // /usr is the read-only image itself (a mount point in the initrd).
    copy_tree(root, paths::FACTORY, &top, &["usr"])?;
    root.remove_file(paths::FACTORY_RESET_FLAG)?;
    println!("factory reset of {} done", root.path().display());
    Ok(())
}

/// Files every boot of the appliance needs on the state partition: without them the real
/// root stops in emergency mode (no fstab, no accounts) where no deadline reboots it.
pub const REQUIRED: [&str; 4] = ["etc/fstab", "etc/passwd", "etc/group", "etc/shadow"];

/// Refuses a root that lacks a [`REQUIRED`] file: `prepare-root` then fails, the initrd
/// stops (emergency) and its deadline reboots, and nothing records the loss as the new base.
pub fn check_complete(root: &RootDir) -> Result<()> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|rel| !root.is_file(rel))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} lacks {}, which every boot needs: not safe to boot (a factory reset cut short \
             without its flag? axoha.factory_reset at the boot menu resets it)",
            root.path().display(),
            missing.join(", ")
        );
    }
    Ok(())
}
