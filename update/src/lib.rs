//! axoha-update: signed A/B updates of an axoha node's /usr (see ARCHITECTURE.md).

pub mod bundle;
pub mod cli;
pub mod digest;
pub mod signature;
pub mod slot;
pub mod tar;
pub mod usrhash;
