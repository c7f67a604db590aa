//! axoha-firstboot: node metadata to keepalived, firewalld and network configuration.
//!
//! Flow (see ARCHITECTURE.md): `sources` read each `metadata` provider -> `Resolved` (value and
//! source per key) -> `config::NodeConfig` (typed, validated) -> `render` (file contents) ->
//! `write`/`apply` (atomic writes, stamp, services). Everything before `write` is pure.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod drain;
pub mod handover;
pub mod health;
pub mod heartbeat;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod pair;
pub mod render;
mod seed_mount;
pub mod sources;
pub mod status;
pub mod types;
pub mod watch;
pub mod write;
