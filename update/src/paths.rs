//! Where things are on a node, relative to its root (or to the ESP).

/// The image's update key (minisign public key); absent: the image accepts no bundles.
pub const UPDATE_KEY: &str = "usr/lib/axoha/update.pub";
/// A signed image's db certificate (PEM): what a Secure Boot node checks the signature of an
/// update's UKI against (docs/secure-boot.md). Absent in an unsigned image.
pub const DB_CERTIFICATE: &str = "usr/lib/axoha/secure-boot/db.crt";
/// The image's profile (`debian-12`, `almalinux-10`), one line.
pub const PROFILE: &str = "usr/lib/axoha/profile";
/// What the builder baked about the image (its `inputs`, with `build_key`).
pub const IMAGE_MANIFEST: &str = "usr/lib/axoha/manifest.json";
/// The factory-reset flag `factory-reset` writes and `prepare-root` acts on.
pub const FACTORY_RESET_FLAG: &str = "var/lib/axoha/factory-reset";
/// Where downloaded bundles go.
pub const DOWNLOADS: &str = "var/lib/axoha/update";
/// What the node remembers of its updates (`memory.rs`): floor, versions, failures.
pub const MEMORY: &str = "var/lib/axoha/update/memory.json";
/// The persistent log of update outcomes (`memory::log`).
pub const UPDATE_LOG: &str = "var/log/axoha-update.log";
/// sha256 of every file of the factory /etc the node's /etc came from.
pub const ETC_BASE: &str = "var/lib/axoha/etc-base.json";
/// The /etc paths the last update kept over the image's, one per line (`etc_update::kept`).
pub const ETC_KEPT: &str = "var/lib/axoha/etc-kept";
/// The state tree as built (everything but /usr), inside the read-only /usr.
pub const FACTORY: &str = "usr/share/axoha/factory";
/// Held while applying: one apply at a time (on a tmpfs: gone at reboot).
pub const APPLY_LOCK: &str = "run/lock/axoha-update.lock";

/// On the ESP (the boot contract's).
pub use axoha_boot_contract::entry::DIR as ENTRIES;
