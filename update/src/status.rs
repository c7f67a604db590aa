//! `status`: the running slot, the other slot, the boot entries, a pending factory reset.

use anyhow::Result;
use serde::Serialize;

use crate::entries::Tries;
use crate::node::{Node, NodePaths};
use crate::paths;
use crate::slot::Slot;

#[derive(Debug, Serialize)]
pub struct Status {
    pub running_slot: String,
    pub running_usrhash: String,
    /// `build_key` of the running image (its /usr/lib/axoha/manifest.json).
    pub running_build_key: Option<String>,
    pub other_slot: String,
    /// The /usr the other slot's PARTUUIDs name (usr half + verity half).
    pub other_usrhash: String,
    pub entries: Vec<EntryStatus>,
    pub factory_reset_pending: bool,
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
    let build_key = node
        .image_file(paths::IMAGE_MANIFEST)
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| {
            v.get("build_key")
                .and_then(|k| k.as_str())
                .map(str::to_owned)
        });
    let mut entries: Vec<EntryStatus> = node
        .entries()?
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
    Ok(Status {
        running_slot: node.running.to_string(),
        running_usrhash: node.running_hash.to_string(),
        running_build_key: build_key,
        other_slot: other.to_string(),
        other_usrhash: format!("{usr}{verity}"),
        entries,
        factory_reset_pending: node.root.exists(paths::FACTORY_RESET_FLAG),
    })
}

/// The human form.
pub fn render(s: &Status) -> String {
    let mut out = format!(
        "running: slot {}  usrhash {}\n",
        s.running_slot, s.running_usrhash
    );
    if let Some(key) = &s.running_build_key {
        out.push_str(&format!("  build_key {key}\n"));
    }
    out.push_str(&format!(
        "other:   slot {}  usrhash {} (from its PARTUUIDs)\nentries (newest first):\n",
        s.other_slot, s.other_usrhash
    ));
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
    if s.factory_reset_pending {
        out.push_str("factory reset: pending (at the next boot)\n");
    }
    out
}
