//! axoha-firstboot: node metadata to keepalived, firewalld and network configuration.
//!
//! Flow (see ARCHITECTURE.md): `sources` read each `metadata` provider -> `Resolved` (value and
//! source per key) -> `config::NodeConfig` (typed, validated) -> `render` (file contents) ->
//! `write`/`apply` (atomic writes, stamp, services). Everything before `write` is pure.

mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod drain;
mod handover;
pub mod health;
mod heartbeat;
pub mod log;
pub mod metadata;
pub mod metrics;
mod pair;
pub mod render;
mod seed_mount;
pub mod sources;
pub mod status;
pub mod types;
mod watch;
mod write;
