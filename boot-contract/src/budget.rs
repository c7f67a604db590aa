//! How long a kernel command line may be, and how it is shared out.
//!
//! x86's `COMMAND_LINE_SIZE` is 2048 (Linux `arch/x86/include/asm/setup.h`), counting the
//! terminating NUL; the boot protocol (`Documentation/arch/x86/boot.rst`, `cmdline_size`,
//! protocol 2.06+) reports the longest line without it: 2047 bytes. A longer line is cut by
//! the boot loader or the kernel, silently losing the last arguments, which are the node's.
//!
//! What the entry itself needs is computed from the entry's own format ([`entry::options`]
//! with the longest values) and what systemd-boot adds for its `initrd` line
//! (`initrd=\axoha\a\initrd.img`, seen in every node's /proc/cmdline), never restated.

use crate::entry;
use crate::layout::Slot;

/// The longest command line the kernel takes on x86, in bytes (without the NUL).
pub const MAX: usize = 2047;

/// The definition's `kernel_cmdline`: at most this much, so that every node's arguments
/// always fit beside it.
pub const DEFINITION_MAX: usize = 512;

/// `initrd=\axoha\b\initrd.img`, which systemd-boot passes for the entry's `initrd` line.
pub fn loader_initrd_arg(slot: Slot) -> String {
    format!("initrd=\\{}", slot.initrd().replace('/', "\\"))
}

/// Bytes of the command line that are the entry's own: `usrhash=` (64 hex digits),
/// `root=PARTUUID=` (36), `rw` and the loader's `initrd=`, with the spaces after them.
pub fn entry_own() -> usize {
    let own = entry::options(&"0".repeat(64), &"0".repeat(36), "", &[]);
    own.len() + 1 + loader_initrd_arg(Slot::A).len() + 1
}

/// What is left for a node's persisted arguments (its `axoha.*` keys and extra arguments,
/// each with the space before it) beside the entry's own and the longest definition.
pub fn node_max() -> usize {
    MAX - entry_own() - DEFINITION_MAX
}

/// Whether `options` in an entry fit the kernel's command line once the loader adds its
/// `initrd=`; else the number of bytes they would take.
pub fn check_options(options: &str) -> Result<(), usize> {
    let total = options.len() + 1 + loader_initrd_arg(Slot::A).len();
    if total > MAX {
        Err(total)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_entry_fits() {
        assert_eq!(loader_initrd_arg(Slot::B), "initrd=\\axoha\\b\\initrd.img");
        let definition = format!("x={}", "d".repeat(DEFINITION_MAX - 2));
        let node = format!("y={}", "n".repeat(node_max() - 3));
        let longest = entry::options(&"f".repeat(64), &"e".repeat(36), &definition, &[&node]);
        assert_eq!(check_options(&longest), Ok(()));
        let too_long = format!("{longest}z");
        assert_eq!(check_options(&too_long), Err(MAX + 1));
        // The line as the kernel gets it, loader's initrd= first.
        let line = format!("{} {longest}", loader_initrd_arg(Slot::A));
        assert_eq!(line.len(), MAX);
    }
}
