//! `status`: the running slot and image, the other slot, the floor, remembered failures, the
//! boot entries, a pending factory reset, and the one-line verdict (`memory::outcome`) that
//! `status --check` exits by. Read-only: the memory is folded in memory, not written back.

use anyhow::Result;
use serde::Serialize;

use crate::entries::Tries;
use crate::memory::{self, Observed, Outcome};
use crate::node::{Node, NodePaths};
use crate::paths;
use crate::slot::Slot;
use crate::usrhash::UsrHash;

#[derive(Debug, Serialize)]
pub struct Status {
    /// The verdict: `ok`, `pending` or `rolled-back`, and its line.
    pub outcome: &'static str,
    pub summary: String,
    pub running_slot: String,
    pub running_usrhash: String,
    pub running_name: Option<String>,
    pub running_version: Option<String>,
    /// `inputs.build_key` of the running image's /usr/lib/axoha/manifest.json.
    pub running_build_key: Option<String>,
    pub other_slot: String,
    /// The /usr the other slot's PARTUUIDs name (usr half + verity half).
    pub other_usrhash: String,
    /// Its version when this node wrote or ran it.
    pub other_version: Option<String>,
    /// The lowest version `apply` takes without `--allow-downgrade`.
    pub floor: Option<String>,
    pub failed: Vec<FailedStatus>,
    pub entries: Vec<EntryStatus>,
    pub factory_reset_pending: bool,
    /// /etc files the last update kept over the image's (changed here and in the image).
    pub etc_kept: Vec<String>,
    #[serde(skip)]
    pub exit_code: u8,
}

#[derive(Debug, Serialize)]
pub struct FailedStatus {
    pub usrhash: String,
    pub version: Option<String>,
    pub tries: u32,
    pub entry: String,
}

#[derive(Debug, Serialize)]
pub struct EntryStatus {
    pub file: String,
    pub generation: u64,
    pub title: Option<String>,
    pub usrhash: Option<String>,
    /// The slot whose partitions carry the entry's usrhash, if any.
    pub slot: Option<String>,
    pub running: bool,
    /// `None`: blessed (no boot counting left).
    pub tries: Option<Tries>,
}

pub fn gather(paths: &NodePaths) -> Result<Status> {
    let node = Node::load(paths)?;
    let other = node.running.other();
    let usr = node.layout.usr(other).uuid.to_string().replace('-', "");
    let verity = node.layout.verity(other).uuid.to_string().replace('-', "");
    let other_usrhash = format!("{usr}{verity}");
    let running_image = node.running_image()?;
    let found = node.entries()?;
    let (memory, _) = memory::observe(
        &memory::load(&node.root)?,
        &Observed {
            running_hash: node.running_hash,
            running: running_image.as_ref(),
            running_blessed: memory::running_blessed(&found, node.running_hash),
            entries: &found,
        },
    );
    let (outcome, summary) = memory::outcome(&memory, &found, node.running_hash, node.running);
    let mut entries: Vec<EntryStatus> = found
        .into_iter()
        .map(|e| {
            let slot = e.usrhash.and_then(|h| {
                [Slot::A, Slot::B].into_iter().find(|s| {
                    node.layout.usr(*s).uuid == h.usr_partuuid()
                        && node.layout.verity(*s).uuid == h.verity_partuuid()
                })
            });
            EntryStatus {
                running: e.usrhash == Some(node.running_hash),
                file: e.file,
                generation: e.generation,
                title: e.title,
                usrhash: e.usrhash.map(|h| h.to_string()),
                slot: slot.map(|s| s.to_string()),
                tries: e.tries,
            }
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.generation));
    let other_version = UsrHash::parse(&other_usrhash)
        .ok()
        .and_then(|h| memory.images.get(&h))
        .map(|i| format!("{} {}", i.name, i.version));
    Ok(Status {
        outcome: match outcome {
            Outcome::Ok => "ok",
            Outcome::Pending => "pending",
            Outcome::RolledBack => "rolled-back",
        },
        exit_code: outcome.exit_code(),
        summary,
        running_slot: node.running.to_string(),
        running_usrhash: node.running_hash.to_string(),
        running_name: running_image.as_ref().map(|i| i.name.clone()),
        running_version: running_image.as_ref().map(|i| i.version.to_string()),
        running_build_key: running_image.and_then(|i| i.build_key),
        other_slot: other.to_string(),
        other_usrhash,
        other_version,
        floor: memory.floor.map(|f| f.version.to_string()),
        failed: memory
            .failed
            .iter()
            .map(|(h, f)| FailedStatus {
                usrhash: h.to_string(),
                version: f
                    .image
                    .as_ref()
                    .map(|i| format!("{} {}", i.name, i.version)),
                tries: f.tries,
                entry: f.entry.clone(),
            })
            .collect(),
        entries,
        factory_reset_pending: node.root.exists(paths::FACTORY_RESET_FLAG),
        etc_kept: crate::etc_update::kept(&node.root)?,
    })
}

/// The human form: the verdict first.
pub fn render(s: &Status) -> String {
    let mut out = format!("{}\n", s.summary);
    out.push_str(&format!(
        "running: slot {}  {}  usrhash {}\n",
        s.running_slot,
        match (&s.running_name, &s.running_version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            _ => "(version unknown)".to_owned(),
        },
        s.running_usrhash
    ));
    if let Some(key) = &s.running_build_key {
        out.push_str(&format!("  build_key {key}\n"));
    }
    out.push_str(&format!(
        "other:   slot {}  {}  usrhash {} (from its PARTUUIDs)\n",
        s.other_slot,
        s.other_version.as_deref().unwrap_or("(version unknown)"),
        s.other_usrhash
    ));
    out.push_str(&format!(
        "floor:   {} (apply refuses older bundles without --allow-downgrade)\n",
        s.floor.as_deref().unwrap_or("none yet")
    ));
    for f in &s.failed {
        out.push_str(&format!(
            "failed:  {}  usrhash {}  {} tries ({}); apply refuses it without --retry-failed\n",
            f.version.as_deref().unwrap_or("?"),
            f.usrhash,
            f.tries,
            f.entry
        ));
    }
    out.push_str("entries (newest first):\n");
    for e in &s.entries {
        let tries = match e.tries {
            None => "blessed".to_owned(),
            Some(t) => format!("{} tries left, {} failed", t.left, t.done),
        };
        out.push_str(&format!(
            "  {}{}  slot {}  {}  {}\n",
            e.file,
            if e.running { " (running)" } else { "" },
            e.slot.as_deref().unwrap_or("?"),
            tries,
            e.title.as_deref().unwrap_or("")
        ));
    }
    for path in &s.etc_kept {
        out.push_str(&format!(
            // Quoted and escaped like Rust's `{:?}`: a control or bidi character in a
            // path name reaches the terminal as an escape, never as itself.
            "kept:    {path:?} (changed on this node and in the image: this node's kept)\n"
        ));
    }
    if s.factory_reset_pending {
        out.push_str("factory reset: pending (at the next boot)\n");
    }
    out
}
