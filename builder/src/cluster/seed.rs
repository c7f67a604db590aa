//! `axoha-image seed`: per-node metadata ISOs from one cluster description, in either format
//! first boot reads ([`Format`]): NoCloud (`nocloud.rs`) or the OpenStack config drive
//! (`config_drive.rs`).
//!
//! Every node is validated here with axoha-firstboot's own rules, so a seed that would fail
//! on first boot is never written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use axoha_disk::tool::{command, require, run};

use super::description::ClusterFile;
use super::node::{node, Secrets, SeedFiles};

/// What `seed` writes for each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// cloud-init NoCloud: an ISO labelled `cidata` (libvirt, Proxmox, QEMU).
    Nocloud,
    /// OpenStack config drive: an ISO labelled `config-2` with openstack/latest/meta_data.json.
    Configdrive,
}

/// Validates one node and renders its ISO's files in `format` (pure).
pub fn render_as(
    format: Format,
    c: &ClusterFile,
    name: &str,
    secrets: &Secrets,
) -> Result<SeedFiles> {
    match format {
        Format::Nocloud => super::nocloud::render(c, name, secrets),
        Format::Configdrive => super::config_drive::render(&node(c, name, secrets)?),
    }
}

/// Writes `out_dir/NAME.iso` (labelled `files.label`). Everything is made in a private (0700)
/// directory inside `out_dir`, files created with their final mode: a seed with a secret is
/// never readable by others, not even while xorriso writes it. Then it is renamed into place.
pub fn write_iso(files: &SeedFiles, out_dir: &Path, name: &str) -> Result<PathBuf> {
    require(&["xorriso"])?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".axoha-seed-")
        .tempdir_in(out_dir)
        .with_context(|| format!("a private directory in {}", out_dir.display()))?;
    let public = if files.secret { 0o600 } else { 0o644 };
    // The ISO's tree: its files readable by root only on the node when one holds a secret.
    let tree = staging.path().join("tree");
    for (file, text) in &files.files {
        let path = tree.join(file);
        let parent = path.parent().expect("a file in the tree");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        create_with_mode(&path, text.as_bytes(), public)?;
    }
    let tmp = staging.path().join("seed.iso");
    // xorriso creates its output with 0666 & ~umask; made 0600 empty first, it writes into it.
    create_with_mode(&tmp, b"", public)?;
    run(command("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            files.label,
            "-J",
            "-R",
            "-o",
        ])
        .arg(&tmp)
        .arg(&tree))
    .with_context(|| format!("xorriso: writing the {} ISO", files.label))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(public))
            .with_context(|| format!("chmod {}", tmp.display()))?;
    }
    let iso = out_dir.join(format!("{name}.iso"));
    std::fs::rename(&tmp, &iso).with_context(|| format!("publishing {}", iso.display()))?;
    Ok(iso)
}

/// A new file, created with `mode` (O_CREAT's mode, masked only by a stricter umask).
fn create_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}
