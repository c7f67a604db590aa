//! `apply`: everything is checked first (`Bundle::open_verified`, then [`plan`], pure), then
//! written in an order that never leaves an entry pointing at a half-written slot: stale
//! entries removed, the slot's partitions written (re-hashed while writing), their PARTUUIDs
//! set, kernel and initrd copied to the ESP, the new entry written last.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use axoha_boot_contract::owner::{self, Place};
use axoha_boot_contract::{budget, entry};
use axoha_firstboot::root::RootDir;

use crate::bundle::{Bundle, Checked, VerifiedBundle};
use crate::download;
use crate::entries::{self, Entry};
use crate::gpt::{self, Layout, Partition};
use crate::node::{Node, NodePaths};
use crate::paths;
use crate::slot::Slot;
use crate::usrhash::UsrHash;

pub struct ApplyOptions {
    pub node: NodePaths,
    /// A bundle file or an http(s) URL.
    pub bundle: String,
    pub tries: u32,
    pub reboot: bool,
}

/// What the node is, for [`plan`].
pub struct Facts<'a> {
    pub profile: &'a str,
    pub layout: &'a Layout,
    pub running: Slot,
    pub running_hash: UsrHash,
    pub entries: &'a [Entry],
    /// The running image's definition `kernel_cmdline`.
    pub definition_cmdline: &'a str,
}

/// What an apply will do.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub target: Slot,
    pub generation: u64,
    pub entry_file: String,
    pub entry_text: String,
    /// Entries booting another /usr than the running one: they name the slot overwritten.
    pub stale: Vec<String>,
}

/// Decides an apply from the node's facts and a verified bundle; refuses a bundle of another
/// profile, the running /usr again, or payloads larger than the inactive slot.
pub fn plan(facts: &Facts, bundle: &Checked, tries: u32) -> Result<Plan> {
    let m = &bundle.manifest;
    if m.profile != facts.profile {
        bail!(
            "bundle profile {:?} does not match this node's profile {:?}",
            m.profile,
            facts.profile
        );
    }
    // The new image's definition arguments reach every boot of the node: the same rule as
    // the builder's (one word each, nothing the image, the metadata or one boot owns).
    if m.kernel_cmdline.len() > budget::DEFINITION_MAX {
        bail!(
            "bundle manifest kernel_cmdline is {} bytes, at most {}",
            m.kernel_cmdline.len(),
            budget::DEFINITION_MAX
        );
    }
    owner::check_line(Place::Definition, &m.kernel_cmdline)
        .map_err(|e| anyhow::anyhow!("bundle manifest: {e}"))?;
    if bundle.usrhash == facts.running_hash {
        bail!(
            "bundle usrhash {} is the running /usr: nothing to update",
            bundle.usrhash
        );
    }
    // An ESP that is not mounted (an empty /efi on the state partition) has no entry of the
    // running /usr: refuse rather than put a kernel where no firmware looks. The newest entry
    // of the running /usr is the one that booted; the new entry takes the node's arguments
    // from it.
    let Some(running_entry) = facts
        .entries
        .iter()
        .filter(|e| e.usrhash == Some(facts.running_hash))
        .max_by_key(|e| e.generation)
    else {
        bail!(
            "no boot entry on the ESP boots the running usrhash {}: is the ESP mounted at /efi?",
            facts.running_hash
        );
    };
    let target = facts.running.other();
    for (name, part, (_, bytes)) in [
        ("usr.img", facts.layout.usr(target), bundle.payloads[0]),
        (
            "usr.verity",
            facts.layout.verity(target),
            bundle.payloads[1],
        ),
    ] {
        if bytes > part.bytes {
            bail!(
                "{name} is {bytes} bytes; slot {target}'s partition {} holds {}",
                part.number,
                part.bytes
            );
        }
    }
    let generation = entries::next_generation(facts.entries);
    let stale = facts
        .entries
        .iter()
        .filter(|e| e.usrhash.is_some_and(|h| h != facts.running_hash))
        .map(|e| e.file.clone())
        .collect();
    let entry_text = entries::render(
        &entries::Titled {
            name: &m.name,
            version: &m.version,
            slot: target,
            usrhash: bundle.usrhash,
        },
        running_entry,
        facts.definition_cmdline,
        &m.kernel_cmdline,
    )?;
    if let Err(total) = budget::check_options(entry::options_of(&entry_text)) {
        bail!(
            "the new entry's kernel command line would be {total} bytes, more than the \
             kernel's {}: the node's arguments and the bundle's kernel_cmdline do not fit together",
            budget::MAX
        );
    }
    Ok(Plan {
        target,
        generation,
        entry_file: entries::file_name(generation, tries),
        entry_text,
        stale,
    })
}

fn is_url(bundle: &str) -> bool {
    bundle.starts_with("http://") || bundle.starts_with("https://")
}

pub fn apply(opts: &ApplyOptions) -> Result<()> {
    let node = Node::load(&opts.node)?;
    let key = node.update_key()?;
    let profile = node.profile()?;
    let _lock = node.root.lock(paths::APPLY_LOCK)?;
    let (path, downloaded) = if is_url(&opts.bundle) {
        let cap = node.layout.usr(Slot::A).bytes
            + node.layout.verity(Slot::A).bytes
            + node.layout.esp.bytes;
        (download::fetch(&opts.bundle, &node.root, cap)?, true)
    } else {
        (PathBuf::from(&opts.bundle), false)
    };
    let bundle = Bundle::open_verified(&path, &key)?;
    let entries = node.entries()?;
    let checked = bundle.checked();
    let definition_cmdline = node.definition_cmdline()?;
    let facts = Facts {
        profile: &profile,
        layout: &node.layout,
        running: node.running,
        running_hash: node.running_hash,
        entries: &entries,
        definition_cmdline: &definition_cmdline,
    };
    let plan = plan(&facts, checked, opts.tries)?;
    let m = bundle.manifest();
    println!(
        "bundle {} {} ({}) verified: usrhash {}",
        m.name, m.version, m.profile, checked.usrhash
    );
    write(&node, &bundle, &plan)?;
    println!(
        "slot {} written; boot entry {} added: the next boot starts slot {} ({} tries)",
        plan.target, plan.entry_file, plan.target, opts.tries
    );
    if downloaded {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    if opts.reboot {
        reboot()?;
    }
    Ok(())
}

/// Reboots through the pair's gate (axoha-firstboot's `handover::reboot_node`): a node holding
/// the VIP hands it over first, and the reboot waits (at most 30 min, the peer may be
/// rebooting itself) until a peer holds the VIP; see docs/pair-operations.md.
pub fn reboot() -> Result<()> {
    axoha_firstboot::handover::reboot_node(std::time::Duration::from_secs(30 * 60))
}

/// Writes a payload into a partition's byte range of the disk and syncs.
fn write_partition(
    disk: &Path,
    part: &Partition,
    bundle: &VerifiedBundle,
    name: &str,
) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {} for writing", disk.display()))?;
    let mut file = &file;
    file.seek(SeekFrom::Start(part.offset))
        .with_context(|| format!("seeking to partition {} of {}", part.number, disk.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    bundle.copy_payload(name, &mut w)?;
    w.flush().with_context(|| {
        format!(
            "writing {name} to partition {} of {}",
            part.number,
            disk.display()
        )
    })?;
    file.sync_all()
        .with_context(|| format!("syncing {}", disk.display()))
}

/// Copies a payload to `dir/name` on the ESP (temp + fsync + rename).
fn write_esp_file(esp: &RootDir, dir: &str, name: &str, bundle: &VerifiedBundle) -> Result<()> {
    let d = esp.create_dir_all(dir, &mut Vec::new())?;
    let tmp = d.write_temp_from(OsStr::new(name), 0o644, &mut |f: &mut File| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        bundle.copy_payload(name, &mut w)?;
        w.flush().context("flushing")
    })?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = d.rename(tmp, OsStr::new(name)) {
        let _ = d.unlink(tmp);
        return Err(e).with_context(|| {
            format!(
                "renaming into {}",
                esp.shown(&format!("{dir}/{name}")).display()
            )
        });
    }
    d.sync()
}

fn write(node: &Node, bundle: &VerifiedBundle, plan: &Plan) -> Result<()> {
    for stale in &plan.stale {
        node.esp
            .remove_file(&format!("{}/{stale}", paths::ENTRIES))?;
        println!(
            "removed boot entry {stale} (it booted slot {})",
            plan.target
        );
    }
    let usr = node.layout.usr(plan.target);
    let verity = node.layout.verity(plan.target);
    write_partition(&node.disk, usr, bundle, "usr.img")?;
    write_partition(&node.disk, verity, bundle, "usr.verity")?;
    let hash = bundle.usrhash();
    gpt::set_partuuid(&node.disk, usr.number, hash.usr_partuuid())?;
    gpt::set_partuuid(&node.disk, verity.number, hash.verity_partuuid())?;
    let dir = plan.target.esp_dir();
    write_esp_file(&node.esp, &dir, "vmlinuz", bundle)?;
    write_esp_file(&node.esp, &dir, "initrd.img", bundle)?;
    let entries = node.esp.create_dir_all(paths::ENTRIES, &mut Vec::new())?;
    let name = OsStr::new(&plan.entry_file);
    let tmp = entries.write_temp(name, plan.entry_text.as_bytes(), 0o644)?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = entries.rename(tmp, name) {
        let _ = entries.unlink(tmp);
        return Err(e).with_context(|| format!("writing boot entry {}", plan.entry_file));
    }
    entries.sync()
}
