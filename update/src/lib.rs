//! axoha-update: signed A/B updates of an axoha node's /usr (see ARCHITECTURE.md).
//!
//! `bundle` (format, builder API, verifying reader) sits on `tar`, `signature` and `digest`;
//! `node` reads the node (`cmdline`, `gpt`, `entries`) at the edge; `apply`, `status`,
//! `factory` and `prepare_root` (with `etc_update`, `tree_copy`) do the commands.

pub mod apply;
pub mod bundle;
pub mod cli;
pub mod cmdline;
pub mod digest;
pub mod download;
pub mod entries;
pub mod etc_update;
pub mod factory;
pub mod gpt;
pub mod memory;
pub mod node;
pub mod paths;
pub mod prepare_root;
pub mod signature;
pub mod slot;
pub mod status;
pub mod tar;
pub mod tree_copy;
pub mod uki;
pub mod usrhash;
pub mod version;
