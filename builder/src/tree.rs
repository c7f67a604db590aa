//! An image tree, confined to its root: every path `axoha-image` reads or writes in a tree
//! (the distribution tree, the ESP tree) is resolved by the kernel *inside* that
//! tree, with `openat2(RESOLVE_IN_ROOT)`. An absolute symlink (Debian's `var/run -> /run`),
//! a relative one climbing with `..`, or a `..` in the path itself all stay below the root,
//! exactly as they would once the tree is the root filesystem of a node; none of them can
//! reach the build host's files.
//!
//! The tree is a hard-linked copy of the cached rootfs (`stages/rootfs.rs`), so a file is
//! never written in place: it is unlinked, then created anew (`O_CREAT | O_EXCL`, which
//! follows no symlink), and the cache keeps its bytes. The confinement itself is
//! `axoha-root`'s, the one root-confined file module of the workspace (first boot and the
//! updater use it too); here it is only named for what it holds.

pub use axoha_root::RootDir as Tree;
