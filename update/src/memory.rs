//! What the node remembers about its updates, on the state partition
//! (`/var/lib/axoha/update/memory.json`, survives reboots, slot changes and factory resets):
//! the version floor, what each /usr it ran or wrote is, and which /usr used up their boot
//! tries. [`observe`] (pure) folds what the node shows now into it; `apply`, `record` (at
//! boot, `axoha-update-record.service`) and `status` call it; the first two write it back.
//! [`outcome`] (pure) is the one-line verdict `status` prints and `status --check` exits by.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use axoha_root::{Last, RootDir};
use serde::{Deserialize, Serialize};

use crate::entries::Entry;
use crate::paths;
use crate::slot::Slot;
use crate::usrhash::UsrHash;
use crate::version::Version;

pub const FORMAT: u32 = 1;
const MEMORY_MAX: u64 = 1 << 20;
/// The persistent log keeps its last this many bytes.
const LOG_MAX: usize = 64 * 1024;

/// What one /usr is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub name: String,
    pub version: Version,
    pub build_key: Option<String>,
}

/// The lowest version `apply` takes without `--allow-downgrade`, and the /usr it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    pub version: Version,
    pub usrhash: UsrHash,
}

/// A /usr whose entry used up its tries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// What it was, when known.
    pub image: Option<Image>,
    /// Failed boots (the `-DONE` of `+0-DONE`).
    pub tries: u32,
    /// The entry that recorded it and its generation.
    pub entry: String,
    pub generation: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub format: u32,
    pub floor: Option<Floor>,
    /// A deliberate way back (`apply --allow-downgrade`): once this /usr runs blessed, the
    /// floor follows it down.
    pub downgrade_to: Option<UsrHash>,
    /// The highest entry generation this node has written: never used again, so a failure's
    /// generation stays older than every later entry.
    pub last_generation: u64,
    pub images: BTreeMap<UsrHash, Image>,
    pub failed: BTreeMap<UsrHash, Failure>,
}

/// What the node shows now.
pub struct Observed<'a> {
    pub running_hash: UsrHash,
    /// The running image (from its baked manifest), when it says.
    pub running: Option<&'a Image>,
    /// The running entry has no tries left to count: blessed (or never counted).
    pub running_blessed: bool,
    pub entries: &'a [Entry],
}

/// Whether the running boot's entry is blessed: an entry booting it without a counter.
pub fn running_blessed(entries: &[Entry], running: UsrHash) -> bool {
    entries
        .iter()
        .any(|e| e.usrhash == Some(running) && e.tries.is_none())
}

/// `memory` with what `now` shows folded in; the second value lists the failures seen for
/// the first time.
pub fn observe(memory: &Memory, now: &Observed) -> (Memory, Vec<UsrHash>) {
    let mut m = memory.clone();
    m.format = FORMAT;
    if let Some(image) = now.running {
        m.images.insert(now.running_hash, image.clone());
    }
    let mut new = Vec::new();
    for e in now.entries {
        let (Some(hash), Some(tries)) = (e.usrhash, e.tries) else {
            continue;
        };
        m.last_generation = m.last_generation.max(e.generation);
        if tries.left > 0 || hash == now.running_hash {
            continue;
        }
        let failure = Failure {
            image: m.images.get(&hash).cloned(),
            tries: tries.done,
            entry: e.file.clone(),
            generation: e.generation,
        };
        if m.failed.get(&hash).map(|f| (&f.entry, f.generation))
            != Some((&failure.entry, failure.generation))
        {
            new.push(hash);
        }
        m.failed.insert(hash, failure);
    }
    if now.running_blessed {
        // Blessed here after all (applied again with --retry-failed): it works now.
        m.failed.remove(&now.running_hash);
    }
    if let (true, Some(running)) = (now.running_blessed, now.running) {
        let raise = match (&m.floor, m.downgrade_to) {
            (_, Some(to)) if to == now.running_hash => true,
            (None, _) => true,
            (Some(f), _) => running.version.order(&f.version).is_gt(),
        };
        if m.downgrade_to == Some(now.running_hash) {
            m.downgrade_to = None;
        }
        if raise {
            m.floor = Some(Floor {
                version: running.version.clone(),
                usrhash: now.running_hash,
            });
        }
    }
    (m, new)
}

/// The verdict on the node's updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Running a blessed /usr, nothing failed since the last update.
    Ok,
    /// An update waits for its reboot, or the running one is still on trial.
    Pending,
    /// The newest update used up its tries; the node runs an older /usr.
    RolledBack,
}

impl Outcome {
    /// `status --check`'s exit code (README, "Updates"): 0, 4 pending, 3 rolled back.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::RolledBack => 3,
            Outcome::Pending => 4,
        }
    }
}

/// `once`, `3 times`.
pub fn times(n: u32) -> String {
    match n {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    }
}

/// A /usr for messages: `NAME VERSION (usrhash 0123abcd…)`.
pub fn describe(images: &BTreeMap<UsrHash, Image>, hash: UsrHash) -> String {
    let short = &hash.to_string()[..12];
    match images.get(&hash) {
        Some(i) => format!("{} {} (usrhash {short}…)", i.name, i.version),
        None => format!("usrhash {short}…"),
    }
}

/// The failure that is the latest word on the node's updates: newer than every entry on
/// the ESP (nothing was applied since), not the running /usr.
pub fn outstanding<'m>(
    memory: &'m Memory,
    entries: &[Entry],
    running: UsrHash,
) -> Option<(UsrHash, &'m Failure)> {
    let newest = entries.iter().map(|e| e.generation).max().unwrap_or(0);
    memory
        .failed
        .iter()
        .filter(|(h, f)| **h != running && f.generation >= newest)
        .max_by_key(|(_, f)| f.generation)
        .map(|(h, f)| (*h, f))
}

/// The verdict and its line, e.g. `update axoha 3 (usrhash 0123abcd…) failed 3 times;
/// running axoha 2 (usrhash …) on slot b`.
pub fn outcome(
    memory: &Memory,
    entries: &[Entry],
    running: UsrHash,
    slot: Slot,
) -> (Outcome, String) {
    let running_text = format!("{} on slot {slot}", describe(&memory.images, running));
    if let Some((hash, f)) = outstanding(memory, entries, running) {
        return (
            Outcome::RolledBack,
            format!(
                "update {} failed {} ({}); running {running_text}",
                describe(&memory.images, hash),
                times(f.tries),
                f.entry
            ),
        );
    }
    if let Some(e) = entries
        .iter()
        .filter(|e| e.usrhash.is_some_and(|h| h != running) && e.tries.is_some_and(|t| t.left > 0))
        .max_by_key(|e| e.generation)
    {
        let t = e.tries.expect("filtered");
        return (
            Outcome::Pending,
            format!(
                "update {} waits for a reboot ({}, {} tries left); running {running_text}",
                describe(&memory.images, e.usrhash.expect("filtered")),
                e.file,
                t.left
            ),
        );
    }
    if !running_blessed(entries, running) {
        return (
            Outcome::Pending,
            format!("running {running_text} on trial: not blessed yet"),
        );
    }
    (Outcome::Ok, format!("running {running_text}, blessed"))
}

/// The memory on the node; empty when there is none yet.
pub fn load(root: &RootDir) -> Result<Memory> {
    let Some(bytes) = root.read(paths::MEMORY, MEMORY_MAX, Last::NoFollow)? else {
        return Ok(Memory {
            format: FORMAT,
            ..Memory::default()
        });
    };
    let shown = root.shown(paths::MEMORY);
    let m: Memory = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid memory file", shown.display()))?;
    if m.format != FORMAT {
        bail!(
            "{} has format {}; this updater reads {FORMAT}",
            shown.display(),
            m.format
        );
    }
    Ok(m)
}

/// Writes the memory (temp + fsync + rename + directory fsync).
pub fn save(root: &RootDir, memory: &Memory) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(memory).context("serializing the memory")?;
    json.push(b'\n');
    replace(root, paths::MEMORY, &json)
}

fn replace(root: &RootDir, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = Path::new(rel);
    let dir = root.create_dir_all(
        &path.parent().expect("a parent").to_string_lossy(),
        &mut Vec::new(),
    )?;
    let name = path.file_name().expect("a name");
    let tmp = dir.write_temp(name, bytes, 0o644)?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = dir.rename(tmp, name) {
        let _ = dir.unlink(tmp);
        return Err(anyhow::Error::from(e))
            .with_context(|| format!("writing {}", root.shown(rel).display()));
    }
    dir.sync()
}

/// Adds `line` to the persistent log (`/var/log/axoha-update.log`), which keeps its last
/// 64 KiB: the journal may be volatile, this file is not.
pub fn log(root: &RootDir, line: &str) -> Result<()> {
    let mut text = root
        .read(paths::UPDATE_LOG, LOG_MAX as u64 * 2, Last::NoFollow)
        .ok()
        .flatten()
        .unwrap_or_default();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    text.extend_from_slice(format!("{stamp} {line}\n").as_bytes());
    if text.len() > LOG_MAX {
        let cut = text.len() - LOG_MAX;
        let cut = text[cut..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(cut, |p| cut + p + 1);
        text.drain(..cut);
    }
    replace(root, paths::UPDATE_LOG, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::parse;

    fn h(fill: &str) -> UsrHash {
        UsrHash::parse(&fill.repeat(32)).unwrap()
    }

    fn entry(file: &str, hash: UsrHash) -> Entry {
        parse(file, &format!("options usrhash={hash}\n")).unwrap()
    }

    fn image(version: &str) -> Image {
        Image {
            name: "edge".into(),
            version: Version::parse(version).unwrap(),
            build_key: None,
        }
    }

    #[test]
    fn a_failure_is_remembered_and_outstanding_until_the_next_apply() {
        let (old, new) = (h("a1"), h("b2"));
        let v1 = image("1");
        let mut m = Memory::default();
        m.images.insert(new, image("2"));
        let entries = [entry("axoha-1.conf", old), entry("axoha-2+0-3.conf", new)];
        let now = Observed {
            running_hash: old,
            running: Some(&v1),
            running_blessed: running_blessed(&entries, old),
            entries: &entries,
        };
        let (m, fresh) = observe(&m, &now);
        assert_eq!(fresh, [new]);
        assert_eq!(m.failed[&new].tries, 3);
        assert_eq!(m.floor.as_ref().unwrap().version.as_str(), "1");
        assert_eq!(m.last_generation, 2);
        // Seen again: not new.
        assert!(observe(&m, &now).1.is_empty());
        let (o, line) = outcome(&m, &entries, old, Slot::A);
        assert_eq!(o, Outcome::RolledBack);
        assert!(
            line.starts_with("update edge 2 (usrhash b2b2b2b2b2b2…) failed 3 times (axoha-2+0-3.conf); running edge 1"),
            "{line}"
        );
        // The next apply (generation 3) replaces the failed entry: no longer outstanding,
        // still remembered.
        let later = [entry("axoha-1.conf", old), entry("axoha-3+3.conf", h("c3"))];
        assert_eq!(outcome(&m, &later, old, Slot::A).0, Outcome::Pending);
        // The failed entry removed by an apply cut short: still the latest word.
        assert_eq!(
            outcome(&m, &entries[..1], old, Slot::A).0,
            Outcome::RolledBack
        );
    }

    #[test]
    fn the_floor_rises_when_blessed_and_follows_a_deliberate_downgrade() {
        let (a, b) = (h("a1"), h("b2"));
        let (v2, v3) = (image("2"), image("3"));
        let counted = [entry("axoha-1.conf", a), entry("axoha-2+2-1.conf", b)];
        let mut m = Memory::default();
        let seen = |m: &Memory, running, image, entries: &[Entry]| {
            observe(
                m,
                &Observed {
                    running_hash: running,
                    running: Some(image),
                    running_blessed: running_blessed(entries, running),
                    entries,
                },
            )
            .0
        };
        m = seen(&m, a, &v2, &counted);
        assert_eq!(m.floor.as_ref().unwrap().version.as_str(), "2");
        // On trial: the floor stays.
        m = seen(&m, b, &v3, &counted);
        assert_eq!(m.floor.as_ref().unwrap().usrhash, a);
        assert_eq!(outcome(&m, &counted, b, Slot::B).0, Outcome::Pending);
        let blessed = [entry("axoha-1.conf", a), entry("axoha-2.conf", b)];
        m = seen(&m, b, &v3, &blessed);
        assert_eq!(m.floor.as_ref().unwrap().version.as_str(), "3");
        assert_eq!(outcome(&m, &blessed, b, Slot::B).0, Outcome::Ok);
        // Booted back into 2 by hand: the floor stays at 3.
        m = seen(&m, a, &v2, &blessed);
        assert_eq!(m.floor.as_ref().unwrap().version.as_str(), "3");
        // Downgraded on purpose to 2: once 2 runs blessed, the floor is 2.
        m.downgrade_to = Some(a);
        m = seen(&m, a, &v2, &blessed);
        assert_eq!(m.floor.as_ref().unwrap().version.as_str(), "2");
        assert_eq!(m.downgrade_to, None);
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(serde_json::from_slice::<Memory>(&json).unwrap(), m);
    }
}
