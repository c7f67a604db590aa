//! Draining a node: it keeps running as a healthy VRRP BACKUP but advertises priority
//! [`DRAINED_PRIORITY`], so every healthy peer outranks it and takes the VIP by preemption (a
//! handover by priority: the old holder keeps the VIP until the new one's first advert, so a
//! client loses at most the line in flight, where `systemctl stop keepalived` loses a dozen).
//!
//! keepalived tracks two files (`track_file`, weight [`WEIGHT`]); a non-zero number in either
//! lowers the priority by 253 (keepalived clamps the result to 1):
//! - [`DRAIN_FILE`] under /var/lib/axoha, the operator's `drain`/`undrain`: it survives a
//!   keepalived restart and a reboot;
//! - [`REBOOT_DRAIN_FILE`] under /run/axoha, set by a reboot axoha starts (`reboot_gate`):
//!   gone after the reboot, so the node comes back at its full priority.
//!
//! Both directories must exist before keepalived starts: it watches them with inotify
//! (`/var/lib/axoha` holds the first-boot stamp keepalived's unit is conditioned on;
//! `/run/axoha` is keepalived's `RuntimeDirectory` in the image's drop-in).

use anyhow::{Context, Result};

use crate::render::RenderedFile;
use crate::write::write_files;
use axoha_root::{Last, RootDir};

/// The operator's drain (relative to the root, like every path firstboot writes).
pub const DRAIN_FILE: &str = "var/lib/axoha/drain";
/// The drain a reboot axoha starts sets; on a tmpfs, so a reboot clears it.
pub const REBOOT_DRAIN_FILE: &str = "run/axoha/reboot-drain";
/// The `track_file` weight: 254 (the highest priority) - 253 = 1.
pub const WEIGHT: i32 = -253;
/// What a drained node advertises (keepalived clamps any lower result to 1).
pub const DRAINED_PRIORITY: u8 = 1;

/// Who drained this node, as the two files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Drain {
    /// `axoha-firstboot drain` (survives reboots).
    pub operator: bool,
    /// A reboot axoha started is handing the VIP over (gone after the reboot).
    pub reboot: bool,
}

impl Drain {
    pub fn any(self) -> bool {
        self.operator || self.reboot
    }

    /// One line for `status` and `health`.
    pub fn describe(self) -> &'static str {
        match (self.operator, self.reboot) {
            (false, false) => "not drained",
            (true, false) => "drained by the operator (axoha-firstboot undrain ends it)",
            (false, true) => "drained for a reboot",
            (true, true) => "drained by the operator and for a reboot",
        }
    }
}

/// Whether keepalived reads `contents` as a drain: like keepalived, the first number in the
/// file times the weight; anything that is not a non-zero number is 0.
pub fn is_set(contents: &[u8]) -> bool {
    String::from_utf8_lossy(contents)
        .split_whitespace()
        .next()
        .and_then(|w| w.parse::<i64>().ok())
        .is_some_and(|v| v != 0)
}

fn read_one(root: &RootDir, rel: &str) -> Result<bool> {
    let bytes = root
        .read(rel, 4096, Last::NoFollow)
        .with_context(|| format!("reading {}", root.shown(rel).display()))?;
    Ok(bytes.is_some_and(|b| is_set(&b)))
}

/// The drain files under `root`.
pub fn read(root: &RootDir) -> Result<Drain> {
    Ok(Drain {
        operator: read_one(root, DRAIN_FILE)?,
        reboot: read_one(root, REBOOT_DRAIN_FILE)?,
    })
}

/// Writes `rel` (one of the drain files) atomically: `1` drains, `0` undrains. keepalived
/// sees the rename through inotify and changes the priority of its next advert.
pub fn set(root: &RootDir, rel: &str, drained: bool) -> Result<()> {
    let file = RenderedFile {
        path: rel.to_owned(),
        contents: if drained { "1\n" } else { "0\n" }.to_owned(),
        mode: 0o644,
    };
    write_files(root, &[file])
        .map(|_| ())
        .with_context(|| format!("writing {}", root.shown(rel).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_as_keepalived_reads_it() {
        assert!(is_set(b"1\n"));
        assert!(is_set(b" 7 trailing"));
        assert!(!is_set(b"0\n"));
        assert!(!is_set(b""));
        assert!(!is_set(b"drained"));
        assert!(WEIGHT + 254 == i32::from(DRAINED_PRIORITY));
    }

    #[test]
    fn every_combination_is_described() {
        let d = Drain::default();
        assert!(!d.any());
        assert_eq!(d.describe(), "not drained");
        let both = Drain {
            operator: true,
            reboot: true,
        };
        assert!(both.any());
        assert!(both.describe().contains("operator and for a reboot"));
    }
}
