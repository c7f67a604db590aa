//! The cluster tools: everything made from one cluster description (`cluster.toml`) for its
//! nodes, without building anything. `description` is the file and the rules spanning nodes,
//! `node` one node validated by first boot's own rules; from it `nocloud` and `config_drive`
//! render the per-node metadata that `seed` writes as ISOs, and `pxe_config` the PXE entries.

pub mod config_drive;
pub mod description;
pub mod nocloud;
pub mod node;
pub mod pxe_config;
pub mod seed;
