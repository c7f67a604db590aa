//! `apply`: under the lock, stale ESP temporaries are removed and the node's memory brought
//! up to date first; everything is checked (`Bundle::open_verified`, then [`plan`], pure:
//! name, version against the running image and the floor, failed before, sizes of the slot
//! and the ESP's free space), then written in an order that never leaves an entry pointing
//! at a half-written slot: stale entries and the slot's old kernel removed (and the ESP
//! synced), the slot's partitions written (re-hashed while writing), their PARTUUIDs set,
//! kernel and initrd (on a Secure Boot node: the bundle's signed UKI, checked by `uki.rs`
//! before anything is written) copied to the ESP, the new entry written last; every ESP file
//! is synced under its final name and the ESP's filesystem before success is printed.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axoha_boot_contract::owner::{self, Place};
use axoha_boot_contract::{budget, entry};
use axoha_root::{is_temp_name, RootDir};

use crate::bundle::{Bundle, Checked, VerifiedBundle, UKI};
use crate::download;
use crate::entries::{self, Entry};
use crate::gpt::{self, Layout, Partition};
use crate::memory::{self, describe, Failure, Floor, Image, Memory, Observed};
use crate::node::{Node, NodePaths};
use crate::paths;
use crate::slot::Slot;
use crate::uki::{self, DbCertificate, VerifiedUki};
use crate::usrhash::UsrHash;
use crate::version::Version;

pub struct ApplyOptions {
    pub node: NodePaths,
    /// A bundle file or an http(s) URL.
    pub bundle: String,
    pub tries: u32,
    pub reboot: bool,
    pub force: Force,
}

/// The refusals an operator may override, each by its own option.
#[derive(Clone, Copy, Debug, Default)]
pub struct Force {
    /// `--allow-downgrade`: older than the running image or the floor.
    pub downgrade: bool,
    /// `--retry-failed`: a /usr whose entry used up its tries on this node.
    pub retry_failed: bool,
    /// `--allow-other-name`: another appliance's bundle (same key).
    pub other_name: bool,
}

/// The ESP's room for a new kernel and initrd.
#[derive(Clone, Copy, Debug)]
pub struct EspSpace {
    /// Free bytes now (statvfs).
    pub free: u64,
    /// Its allocation unit: every file takes whole units.
    pub unit: u64,
    /// Bytes of the target slot's current kernel, initrd and UKI, removed before the new ones.
    pub reclaimable: u64,
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
    /// What the running image is; `None` when its manifest does not say.
    pub running_image: Option<&'a Image>,
    pub floor: Option<&'a Floor>,
    pub failed: &'a std::collections::BTreeMap<UsrHash, Failure>,
    /// The lowest generation a new entry may have (one above every one ever written).
    pub min_generation: u64,
    /// Where the ESP is (for messages) and its room.
    pub esp: &'a Path,
    pub esp_space: EspSpace,
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
    pub boot: SlotBoot,
}

/// What the new entry boots: what the running one does.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotBoot {
    /// `linux` and `initrd`: the bundle's kernel and initrd (a node that boots unsigned).
    KernelInitrd,
    /// `efi`: the bundle's signed UKI of `bytes` (a Secure Boot node), whose `.cmdline` must be
    /// exactly `cmdline`, for the node's state partition `state_partuuid`.
    Uki {
        bytes: u64,
        cmdline: String,
        state_partuuid: String,
    },
}

/// Decides an apply from the node's facts and a verified bundle; refuses a bundle of another
/// profile, of another appliance name, the running /usr again, a /usr that failed here
/// before, one older than the running image or the floor, payloads larger than the inactive
/// slot, a kernel and initrd the ESP has no room for. `force` overrides the second, fourth
/// and fifth.
pub fn plan(facts: &Facts, bundle: &Checked, tries: u32, force: Force) -> Result<Plan> {
    let m = &bundle.manifest;
    if m.profile != facts.profile {
        bail!(
            "bundle profile {:?} does not match this node's profile {:?}",
            m.profile,
            facts.profile
        );
    }
    // The new image's command line reaches every boot of the node: the builder's rule (one
    // word each; the definition's free arguments and the security module's the image chose,
    // nothing that mounts the system, the metadata or one boot owns).
    if m.kernel_cmdline.len() > budget::DEFINITION_MAX {
        bail!(
            "bundle manifest kernel_cmdline is {} bytes, at most {}",
            m.kernel_cmdline.len(),
            budget::DEFINITION_MAX
        );
    }
    owner::check_line(Place::Bundle, &m.kernel_cmdline)
        .map_err(|e| anyhow::anyhow!("bundle manifest: {e}"))?;
    if bundle.usrhash == facts.running_hash {
        bail!(
            "bundle usrhash {} is the running /usr: nothing to update",
            bundle.usrhash
        );
    }
    let version = Version::parse(&m.version).context("manifest field version")?;
    let shown = format!("{} {}", m.name, m.version);
    match facts.running_image {
        Some(running) if running.name != m.name && !force.other_name => bail!(
            "bundle {shown} is for appliance {:?}; this node runs {:?} \
             (--allow-other-name to replace it)",
            m.name,
            running.name
        ),
        Some(running) if version.order(&running.version).is_lt() && !force.downgrade => bail!(
            "bundle {shown} is older than the running {} {} \
             (--allow-downgrade to go back deliberately)",
            running.name,
            running.version
        ),
        None if !force.downgrade => bail!(
            "the running image's manifest ({}) does not say its name and version: \
             cannot tell whether bundle {shown} is older (--allow-downgrade to apply anyway)",
            paths::IMAGE_MANIFEST
        ),
        _ => {}
    }
    if let Some(floor) = facts.floor {
        if version.order(&floor.version).is_lt() && !force.downgrade {
            bail!(
                "bundle {shown} is older than this node's floor {} (the newest version it \
                 ran blessed, usrhash {}) (--allow-downgrade to go back deliberately)",
                floor.version,
                floor.usrhash
            );
        }
    }
    if let Some(f) = facts.failed.get(&bundle.usrhash) {
        if !force.retry_failed {
            bail!(
                "bundle {shown} (usrhash {}) failed on this node before: its entry {} used up \
                 {} boot tries and the node fell back (--retry-failed to try it again)",
                bundle.usrhash,
                f.entry,
                f.tries
            );
        }
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
    // A node that boots signed (Secure Boot) boots only a signed UKI: an entry of a kernel and
    // initrd would be refused by the firmware, a dead end that boot counting never sees
    // (docs/secure-boot.md). The UKI itself is checked by `uki::check` before any write.
    let boot = if running_entry.uki {
        let Some((_, bytes)) = bundle.uki else {
            bail!(
                "this node boots a signed UKI ({}, Secure Boot) and bundle {shown} carries none \
                 (its image was built without [secure_boot]): the firmware would refuse its \
                 kernel; build the bundle from a definition signed for this node's db certificate",
                running_entry.file
            );
        };
        let state = entry::state_partuuid(&running_entry.options).with_context(|| {
            format!(
                "the running entry {} has no root=PARTUUID= in its options",
                running_entry.file
            )
        })?;
        SlotBoot::Uki {
            bytes,
            cmdline: entry::image_options(&bundle.usrhash.to_string(), state, &m.kernel_cmdline),
            state_partuuid: state.to_owned(),
        }
    } else {
        SlotBoot::KernelInitrd
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
    let files = match &boot {
        SlotBoot::Uki { bytes, .. } => vec![*bytes],
        SlotBoot::KernelInitrd => vec![bundle.payloads[2].1, bundle.payloads[3].1],
    };
    let space = facts.esp_space;
    let whole = |bytes: u64| bytes.div_ceil(space.unit) * space.unit;
    // The entry takes one more unit.
    let needed = files.iter().map(|&b| whole(b)).sum::<u64>() + space.unit;
    if needed > space.free + space.reclaimable {
        bail!(
            "the ESP ({}) has {} bytes free ({} more once slot {target}'s old kernel, \
             initrd and UKI are removed); the new {} need {needed}",
            facts.esp.display(),
            space.free,
            space.reclaimable,
            match boot {
                SlotBoot::Uki { .. } => "signed UKI and entry",
                SlotBoot::KernelInitrd => "kernel, initrd and entry",
            }
        );
    }
    let generation = entries::next_generation(facts.entries).max(facts.min_generation);
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
        matches!(boot, SlotBoot::Uki { .. }),
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
        boot,
    })
}

fn is_url(bundle: &str) -> bool {
    bundle.starts_with("http://") || bundle.starts_with("https://")
}

/// Takes the apply lock, saying what it waits for when another process holds it.
fn take_lock(node: &Node, what: &str) -> Result<axoha_root::Lock> {
    let lock = match node.root.try_lock(paths::APPLY_LOCK)? {
        Ok(lock) => lock,
        Err(holder) => {
            println!(
                "waiting for the update lock {} (held by {}) ...",
                node.root.shown(paths::APPLY_LOCK).display(),
                if holder.is_empty() {
                    "another axoha-update"
                } else {
                    &holder
                }
            );
            node.root.lock(paths::APPLY_LOCK)?
        }
    };
    lock.note(&format!("PID {}: {what}", std::process::id()))?;
    Ok(lock)
}

/// Removes the temporaries a killed apply left on the ESP (where `write_esp_file` and the
/// entry write them); the lock is held, so none is in use.
fn remove_stale_temporaries(esp: &RootDir) -> Result<()> {
    let dirs = [
        paths::ENTRIES.to_owned(),
        Slot::A.esp_dir(),
        Slot::B.esp_dir(),
    ];
    for dir in dirs {
        for name in esp.list(&dir)? {
            if is_temp_name(name.as_bytes()) {
                esp.remove_file(&format!("{dir}/{name}"))?;
                println!(
                    "removed {} (left by an interrupted apply)",
                    esp.shown(&format!("{dir}/{name}")).display()
                );
            }
        }
    }
    Ok(())
}

/// The node's memory with what it shows now folded in, written back when it changed.
pub fn remember(node: &Node) -> Result<(Memory, Vec<UsrHash>)> {
    let memory = memory::load(&node.root)?;
    let entries = node.entries()?;
    let running = node.running_image()?;
    let (now, fresh) = memory::observe(
        &memory,
        &Observed {
            running_hash: node.running_hash,
            running: running.as_ref(),
            running_blessed: memory::running_blessed(&entries, node.running_hash),
            entries: &entries,
        },
    );
    if now != memory {
        memory::save(&node.root, &now)?;
    }
    for hash in &fresh {
        memory::log(
            &node.root,
            &format!(
                "update {} failed {}; running {} on slot {}",
                describe(&now.images, *hash),
                memory::times(now.failed[hash].tries),
                describe(&now.images, node.running_hash),
                node.running
            ),
        )?;
    }
    Ok((now, fresh))
}

/// What a slot's directory on the ESP may hold: kernel and initrd, or a signed UKI.
const SLOT_FILES: [&str; 3] = ["vmlinuz", "initrd.img", UKI];

/// The bundle's signed UKI read and checked against the db certificate the running /usr
/// carries (`uki::check`); nothing is written.
fn verified_uki(
    node: &Node,
    bundle: &VerifiedBundle,
    cmdline: &str,
    state_partuuid: &str,
) -> Result<VerifiedUki> {
    let shown = node.root.shown(paths::DB_CERTIFICATE).display().to_string();
    let pem = node
        .root
        .read(paths::DB_CERTIFICATE, 64 * 1024, axoha_root::Last::Follow)?
        .with_context(|| {
            format!(
                "this node boots a signed UKI but {shown} is missing: its image carries no db \
                 certificate to check an update's UKI against; reinstall it from a signed image"
            )
        })?;
    let db = DbCertificate::from_pem(&pem, &shown)?;
    let bytes = bundle.read_payload(UKI)?;
    uki::check(bytes, &db, bundle.usrhash(), state_partuuid, cmdline).with_context(|| {
        format!(
            "bundle {} refused: its signed UKI ({UKI}) is not one this node's firmware \
             boots for it (db certificate {shown}, {:?})",
            bundle.path().display(),
            db.subject()
        )
    })
}

fn esp_space(node: &Node, target: Slot) -> Result<EspSpace> {
    let (free, unit) = node.esp.free_space()?;
    let mut reclaimable = 0;
    for name in SLOT_FILES {
        if let Some(st) = node.esp.lstat(&format!("{}/{name}", target.esp_dir()))? {
            reclaimable += (st.st_size as u64) / unit * unit;
        }
    }
    Ok(EspSpace {
        free,
        unit,
        reclaimable,
    })
}

pub fn apply(opts: &ApplyOptions) -> Result<()> {
    let node = Node::load(&opts.node)?;
    let key = node.update_key()?;
    let profile = node.profile()?;
    let lock = take_lock(&node, &format!("apply {}", opts.bundle))?;
    remove_stale_temporaries(&node.esp)?;
    let (mut memory, _) = remember(&node)?;
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
    let running_image = node.running_image()?;
    let facts = Facts {
        profile: &profile,
        layout: &node.layout,
        running: node.running,
        running_hash: node.running_hash,
        entries: &entries,
        definition_cmdline: &definition_cmdline,
        running_image: running_image.as_ref(),
        floor: memory.floor.as_ref(),
        failed: &memory.failed,
        min_generation: memory.last_generation + 1,
        esp: node.esp.path(),
        esp_space: esp_space(&node, node.running.other())?,
    };
    let plan = plan(&facts, checked, opts.tries, opts.force)?;
    let m = bundle.manifest();
    let uki = match &plan.boot {
        SlotBoot::Uki {
            cmdline,
            state_partuuid,
            ..
        } => Some(verified_uki(&node, &bundle, cmdline, state_partuuid)?),
        SlotBoot::KernelInitrd => None,
    };
    println!(
        "bundle {} {} ({}) verified: usrhash {}",
        m.name, m.version, m.profile, checked.usrhash
    );
    match (&uki, checked.uki) {
        (Some(_), _) => println!(
            "signed UKI verified: signed for this node's db certificate, its .cmdline boots usrhash {}",
            checked.usrhash
        ),
        (None, Some(_)) => println!(
            "the bundle's signed UKI is not used: this node boots unsigned (kernel and initrd)"
        ),
        (None, None) => {}
    }
    // Remembered before the slot is written: `status` names what the other slot holds.
    memory.images.insert(
        checked.usrhash,
        Image {
            name: m.name.clone(),
            version: Version::parse(&m.version).context("manifest field version")?,
            build_key: Some(m.build_key.clone()),
        },
    );
    memory.last_generation = memory.last_generation.max(plan.generation);
    memory.downgrade_to = opts.force.downgrade.then_some(checked.usrhash);
    memory::save(&node.root, &memory)?;
    write(&node, &bundle, &plan, uki.as_ref())?;
    println!(
        "slot {} written; boot entry {} added: the next boot starts slot {} ({} tries)",
        plan.target, plan.entry_file, plan.target, opts.tries
    );
    if downloaded {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    if opts.reboot {
        lock.note(&format!(
            "PID {}: rebooting into slot {}",
            std::process::id(),
            plan.target
        ))?;
        reboot()?;
        // Hold the lock until the node goes down: another apply now would replace the
        // entry this one just promised to boot.
        println!("rebooting; the update lock is held until the node goes down");
        std::thread::sleep(Duration::from_secs(300));
        bail!("the reboot asked for 300 s ago did not happen");
    }
    drop(lock);
    Ok(())
}

/// Reboots through the pair's gate, `axoha-firstboot reboot`: a node holding the VIP hands it
/// over first, and the reboot waits (at most 30 min, the peer may be rebooting itself) until
/// a peer holds the VIP; see docs/pair-operations.md. A program of its own, not a library
/// call: the updater runs in the initrd too, where first boot's renderers have no place.
pub fn reboot() -> Result<()> {
    let status = std::process::Command::new(FIRSTBOOT)
        .args(["reboot", "--wait", "1800"])
        .status()
        .with_context(|| format!("running {FIRSTBOOT} reboot"))?;
    if !status.success() {
        bail!("{FIRSTBOOT} reboot refused or failed ({status}); the node was not rebooted");
    }
    Ok(())
}

/// The pair's own tool, on every image's /usr.
const FIRSTBOOT: &str = "/usr/bin/axoha-firstboot";

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

/// Writes `dir/name` on the ESP from `fill` (temp + fsync + rename).
fn write_esp_file(
    esp: &RootDir,
    dir: &str,
    name: &str,
    fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let d = esp.create_dir_all(dir, &mut Vec::new())?;
    let tmp = d.write_temp_from(OsStr::new(name), 0o644, &mut |f: &mut File| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        fill(&mut w)?;
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
    d.sync_file(OsStr::new(name))?;
    d.sync()
}

/// The writes, in their order; `uki` is the checked UKI of a [`SlotBoot::Uki`] plan.
fn write(
    node: &Node,
    bundle: &VerifiedBundle,
    plan: &Plan,
    uki: Option<&VerifiedUki>,
) -> Result<()> {
    for stale in &plan.stale {
        node.esp
            .remove_file(&format!("{}/{stale}", paths::ENTRIES))?;
        println!(
            "removed boot entry {stale} (it booted slot {})",
            plan.target
        );
    }
    let dir = plan.target.esp_dir();
    // Nothing boots them now; their room is what plan() counted on.
    for name in SLOT_FILES {
        node.esp.remove_file(&format!("{dir}/{name}"))?;
    }
    // No entry may survive a power cut that the slot's new bytes would then betray.
    node.esp.sync_fs()?;
    let usr = node.layout.usr(plan.target);
    let verity = node.layout.verity(plan.target);
    write_partition(&node.disk, usr, bundle, "usr.img")?;
    write_partition(&node.disk, verity, bundle, "usr.verity")?;
    let hash = bundle.usrhash();
    gpt::set_partuuid(&node.disk, usr.number, hash.usr_partuuid())?;
    gpt::set_partuuid(&node.disk, verity.number, hash.verity_partuuid())?;
    match uki {
        // The bytes that were checked, not the bundle's again.
        Some(uki) => write_esp_file(&node.esp, &dir, UKI, &mut |w| {
            w.write_all(uki.bytes()).context("writing")
        })?,
        None => {
            for name in ["vmlinuz", "initrd.img"] {
                write_esp_file(&node.esp, &dir, name, &mut |w| bundle.copy_payload(name, w))?;
            }
        }
    }
    let entries = node.esp.create_dir_all(paths::ENTRIES, &mut Vec::new())?;
    let name = OsStr::new(&plan.entry_file);
    let tmp = entries.write_temp(name, plan.entry_text.as_bytes(), 0o644)?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = entries.rename(tmp, name) {
        let _ = entries.unlink(tmp);
        return Err(e).with_context(|| format!("writing boot entry {}", plan.entry_file));
    }
    entries.sync_file(name)?;
    entries.sync()?;
    node.esp.sync_fs()
}
