//! How long a kernel command line may be, and how it is shared out.
//!
//! x86's `COMMAND_LINE_SIZE` is 2048 (Linux `arch/x86/include/asm/setup.h`), counting the
//! terminating NUL; the boot protocol (`Documentation/arch/x86/boot.rst`, `cmdline_size`,
//! protocol 2.06+) reports the longest line without it: 2047 bytes. A longer line is cut by
//! the boot loader or the kernel, silently losing the last arguments, which are ours.

/// The longest command line the kernel takes on x86, in bytes (without the NUL).
pub const MAX: usize = 2047;

/// The definition's `kernel_cmdline`: at most this much, so that `root=UUID=... ro` and
/// every node's `axoha.*` arguments always fit beside it.
pub const DEFINITION_MAX: usize = 512;

/// `root=UUID=<36> ro ` that the loader entry starts with.
pub const ROOT_ARGS: usize = "root=UUID= ro ".len() + 36;

/// What is left for a node's persisted arguments (its `axoha.*` keys and `install_karg`s).
pub const NODE_MAX: usize = MAX - ROOT_ARGS - DEFINITION_MAX - 1;
