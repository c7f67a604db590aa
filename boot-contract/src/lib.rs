//! The boot contract of an axoha node: what the image builder writes, the PXE installer
//! edits and the updater reads and writes again, so that all three agree.
//!
//! - [`layout`]: the partitions (names, GPT types, fixed sizes) and where each slot's kernel
//!   and initrd live on the ESP.
//! - [`cmdline`]: the kernel's command-line splitting (`lib/cmdline.c`), bytes in, verbatim
//!   arguments out.
//! - [`owner`]: who owns which argument, and the one rule for adding arguments anywhere.
//! - [`entry`]: the systemd-boot entry (Boot Loader Specification type 1): its file name with
//!   boot counting, its text, its `options` and the one rule for editing them.
//! - [`budget`]: how the kernel's 2047 bytes are shared out, computed from the real entry.
//!
//! std only, and pure: no file is read or written here.

pub mod budget;
pub mod cmdline;
pub mod entry;
pub mod layout;
pub mod owner;
