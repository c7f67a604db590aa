//! The command line: clap types only. `main.rs` turns them into the option structs of the
//! modules that do the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::node::NodePaths;

/// A/B updates of an axoha node's read-only /usr from signed bundles.
#[derive(Debug, Parser)]
#[command(name = "axoha-update", version)]
pub struct Cli {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the node's facts are; the defaults are the running node's. For tests.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The disk (or a disk image file) holding the partitions; default: the disk of the
    /// state partition named by root=PARTUUID= on the kernel command line.
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    pub disk: Option<PathBuf>,
    /// The mounted ESP.
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "DIR",
        default_value = "/efi"
    )]
    pub esp: PathBuf,
    /// The kernel command line of the running boot.
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "FILE",
        default_value = "/proc/cmdline"
    )]
    pub cmdline: PathBuf,
    /// The node's root (its /usr/lib/axoha and /var/lib/axoha).
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "DIR",
        default_value = "/"
    )]
    pub root: PathBuf,
}

impl NodeArgs {
    /// The paths `node::Node::load` and `status::gather` read.
    pub fn paths(&self) -> NodePaths {
        NodePaths {
            disk: self.disk.clone(),
            esp: self.esp.clone(),
            cmdline: self.cmdline.clone(),
            root: self.root.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a bundle, write it to the inactive slot and add a boot entry for it.
    Apply(ApplyArgs),
    /// Show the running slot and version, the other slot, the floor, failed updates and the
    /// boot entries; the first line is the verdict.
    Status(StatusArgs),
    /// At boot (axoha-update-record.service): remember failed updates and raise the floor
    /// after a blessed boot; say the verdict on the console.
    Record,
    /// Ask for a factory reset at the next boot.
    FactoryReset(FactoryResetArgs),
    /// In the initrd: factory reset when asked, then update /etc from a new /usr.
    PrepareRoot(PrepareRootArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A bundle file, or an http(s):// URL to download it from.
    #[arg(value_name = "BUNDLE|URL")]
    pub bundle: String,
    /// Reboot into the new slot when done.
    #[arg(long)]
    pub reboot: bool,
    /// Boot attempts of the new entry before systemd-boot falls back.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub tries: u32,
    /// Apply a bundle older than the running image or this node's floor (the newest
    /// version it ran blessed): the deliberate way back.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Apply a /usr whose boot entry used up its tries on this node before.
    #[arg(long)]
    pub retry_failed: bool,
    /// Apply a bundle of another appliance name (signed by this image's key).
    #[arg(long)]
    pub allow_other_name: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print only the verdict and exit by it: 0 ok (running a blessed /usr), 3 the newest
    /// update failed and the node fell back, 4 an update waits for a reboot or is on trial
    /// (1: the state could not be read; 2: usage).
    #[arg(long, conflicts_with = "json")]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct FactoryResetArgs {
    /// Reboot at once.
    #[arg(long)]
    pub reboot: bool,
}

#[derive(Debug, Args)]
pub struct PrepareRootArgs {
    /// The root to prepare (/sysroot in the initrd).
    #[arg(value_name = "ROOT")]
    pub root: PathBuf,
}
