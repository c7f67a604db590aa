//! Factory reset: `factory-reset` writes the flag; `prepare-root` (initrd) empties the root
//! except `usr` and copies `usr/share/axoha/factory/` back, so the next boot is a first boot.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Result};
use axoha_firstboot::root::{Dir, RootDir};

use crate::paths;
use crate::tree_copy::copy_tree;

/// Writes the factory-reset flag under `root`.
pub fn request(root: &Path) -> Result<()> {
    let root = RootDir::open(root)?;
    let flag = Path::new(paths::FACTORY_RESET_FLAG);
    let parent = flag.parent().expect("a parent").to_string_lossy();
    let name = flag.file_name().expect("a name");
    let dir = root.create_dir_all(&parent, &mut Vec::new())?;
    let tmp = dir.write_temp(name, b"requested by axoha-update factory-reset\n", 0o644)?;
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

/// The reset itself. The flag is removed last: a reset cut short is done again.
pub fn reset(root: &RootDir) -> Result<()> {
    if root.lstat(paths::FACTORY)?.is_none() {
        bail!(
            "no factory tree at {}: refusing to empty the root",
            root.shown(paths::FACTORY).display()
        );
    }
    let top = root.open_dir(".")?.expect("the root exists");
    empty_except(&top, &["usr", paths::FACTORY_RESET_FLAG])?;
    // /usr is the read-only image itself (a mount point in the initrd).
    copy_tree(root, paths::FACTORY, &top, &["usr"])?;
    root.remove_file(paths::FACTORY_RESET_FLAG)?;
    println!("factory reset of {} done", root.path().display());
    Ok(())
}
