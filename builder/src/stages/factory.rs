//! The factory tree (design.md "Immutable /usr: as built"): before /usr becomes its squashfs, the
//! state tree (everything but /usr) is copied into `/usr/share/axoha/factory/`, which factory
//! reset copies back; and `/var/lib/axoha/etc-base.json` (in the state tree only) records
//! what the node's /etc starts from, for the /etc three-way update after a new /usr.

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};

use crate::own_files::{ETC_BASE, FACTORY_DIR};
use crate::tree::Tree;

/// Copies the state tree into the factory directory (owners, modes, xattrs, symlinks as they
/// are), then writes etc-base.json of its /etc into the state tree.
pub fn apply(tree: &Tree) -> Result<()> {
    let factory = FACTORY_DIR.trim_start_matches('/');
    if tree.meta(factory)?.is_some() {
        bail!("{FACTORY_DIR} is already in the image tree");
    }
    tree.create_dir_all(factory, &mut Vec::new())?;
    let dest = tree.host_path(factory)?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(tree.path())
        .with_context(|| format!("reading {}", tree.path().display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.retain(|n| n != "usr");
    names.sort();
    if names.is_empty() {
        return Ok(());
    }
    let mut cp = command("cp");
    cp.args(["-a", "--no-dereference", "--reflink=never", "-t"])
        .arg(&dest);
    for n in &names {
        cp.arg(tree.path().join(n));
    }
    run(&mut cp).context("copying the state tree into the factory directory")?;
    // Read by `axoha-update prepare-root` (the /etc three-way update after a new /usr): made
    // by the updater's own scan of the factory /etc, so writer and reader agree on the format
    // (`{"format": 1, "files": {PATH: {"sha256": HEX} | {"link": TARGET}}}`, PATH relative
    // to /etc: every regular file by its contents' sha256, every symlink by its target).
    let base = axoha_update::etc_update::base_of(tree.path())
        .context("etc-base.json of the factory /etc")?;
    tree.write(ETC_BASE, &base.to_json()?, 0o644)?;
    Ok(())
}
