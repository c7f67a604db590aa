//! The factory tree (immutable-spec "Factory tree"): before /usr becomes its squashfs, the
//! state tree (everything but /usr) is copied into `/usr/share/axoha/factory/`, which factory
//! reset copies back; and `/var/lib/axoha/etc-base.json` records what the node's /etc starts
//! from, for the /etc three-way update after a new /usr.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use axoha_disk::ext4::walk;
use axoha_disk::hash::{sha256_bytes, sha256_file};
use axoha_disk::tool::{command, run};

use crate::own_files::{ETC_BASE, FACTORY_DIR};
use crate::tree::Tree;

/// `etc-base.json`: path relative to /etc -> sha256 (hex) of every regular file's contents
/// and every symlink's target, sorted. Read by `axoha-update prepare-root`: a file of the
/// node's /etc whose hash is still the base's was never changed on the node, so a new factory
/// version replaces it.
pub fn etc_base(etc: &Path) -> Result<String> {
    let mut base = BTreeMap::new();
    for rel in walk(etc)? {
        let path = etc.join(rel.strip_prefix("/").unwrap_or(&rel));
        let md = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let hash = if md.file_type().is_symlink() {
            let target =
                std::fs::read_link(&path).with_context(|| format!("reading {}", path.display()))?;
            sha256_bytes(target.as_os_str().as_bytes())
        } else if md.is_file() {
            sha256_file(&path)?
        } else {
            continue;
        };
        let key = rel.strip_prefix("/").unwrap_or(&rel);
        let Some(key) = key.to_str() else {
            bail!("{}: a path in /etc that is not UTF-8", path.display());
        };
        base.insert(key.to_owned(), hash);
    }
    Ok(serde_json::to_string_pretty(&base)? + "\n")
}

/// Writes etc-base.json into the state tree, then copies the state tree (with it) into the
/// factory directory: owners, modes, xattrs, symlinks as they are.
pub fn apply(tree: &Tree) -> Result<()> {
    let etc = tree.host_path("etc")?;
    if !std::fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        bail!("the image's /etc is not a directory");
    }
    tree.write(ETC_BASE, etc_base(&etc)?.as_bytes(), 0o644)?;
    let factory = FACTORY_DIR.trim_start_matches('/');
    if tree.meta(factory)?.is_some() {
        bail!("{FACTORY_DIR} is already in the image tree");
    }
    tree.create_dir_all(factory)?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_symlink_targets_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::create_dir_all(etc.join("a/b")).unwrap();
        std::fs::write(etc.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/usr/lib/os-release", etc.join("os-release")).unwrap();
        let v: BTreeMap<String, String> = serde_json::from_str(&etc_base(etc).unwrap()).unwrap();
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v["a/b/f"], sha256_bytes(b"x"));
        assert_eq!(v["os-release"], sha256_bytes(b"/usr/lib/os-release"));
    }
}
