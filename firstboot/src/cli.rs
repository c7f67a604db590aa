//! Command-line types only (clap); the work happens in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "axoha-firstboot",
    version,
    about = "Configure an axoha node from its metadata on first boot",
    long_about = "Reads this node's role and addresses (kernel command line axoha.* keys, \
                  cloud-init instance data, NoCloud seed, OpenStack config drive or metadata \
                  service, cluster.toml), validates them and \
                  writes keepalived.conf, the firewalld HA zone, node.toml and network config. \
                  Without a subcommand it runs `apply` on /, as the systemd unit does."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the metadata, write the node's files atomically, then start keepalived and axorouter.
    Apply(ApplyArgs),
    /// Print the keepalived.conf that apply would write.
    Render(RenderArgs),
    /// Validate the metadata only.
    Check(SourceArgs),
    /// Show this node's VRRP state, whether it holds the VIP, which peers it hears on which
    /// heartbeat path, and the last state changes.
    Status(StatusArgs),
    /// Log a line whenever a heartbeat path is lost or comes back (runs until stopped; the
    /// unit axoha-heartbeat.service runs it beside keepalived).
    Watch(SourceArgs),
    /// Check that this node does its job: keepalived active with axoha's keepalived.conf,
    /// VRRP state MASTER or BACKUP, axorouter active. Prints one line; exit code 6 when
    /// still unhealthy at the end of the wait (axoha-boot-check.service runs it before
    /// boot-complete.target, so that only a healthy boot gets blessed).
    Health(HealthArgs),
    /// Hand the VIP to a healthy peer by priority and stay a healthy BACKUP advertising
    /// priority 1, across keepalived restarts and reboots, until `undrain`. Refused (exit 7,
    /// nothing changed) when no healthy peer takes or holds the VIP, unless --force. A drained
    /// node still takes the VIP when no other node can.
    Drain(DrainArgs),
    /// End a drain: back to the configured priority (a primary takes the VIP back).
    Undrain(SourceArgs),
    /// Reboot this node once that cannot leave the VIP unanswered: a node holding the VIP
    /// hands it to a healthy peer first; a node without it reboots while it hears a peer
    /// holding it. Run on both nodes at once, they reboot one after the other. Waits (saying
    /// for what) at most --wait seconds, then refuses (exit 7). `axoha-update apply --reboot`
    /// reboots this way.
    Reboot(RebootArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read and write every file under DIR instead of / (for image builds and tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Kernel command line to read [default: ROOT/proc/cmdline].
    #[arg(long, value_name = "FILE")]
    pub cmdline: Option<PathBuf>,
    /// NoCloud seed directory holding meta-data [default: ROOT/var/lib/cloud/seed/nocloud*,
    /// or a filesystem labelled cidata on a live system].
    #[arg(long, value_name = "DIR")]
    pub seed: Option<PathBuf>,
    /// cloud-init instance data [default: ROOT/run/cloud-init/instance-data*.json].
    #[arg(long, value_name = "FILE")]
    pub instance_data: Option<PathBuf>,
    /// OpenStack config drive directory holding openstack/latest/meta_data.json [default:
    /// ROOT/var/lib/cloud/seed/config_drive, or a filesystem labelled config-2 on a live
    /// system].
    #[arg(long, value_name = "DIR")]
    pub config_drive: Option<PathBuf>,
    /// OpenStack metadata service, asked only when no other per-node source answered
    /// [default on a live system: http://169.254.169.254/openstack/latest/meta_data.json;
    /// under --root: not asked].
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<crate::metadata::MetadataUrl>,
    /// How long to keep trying the metadata service before taking it as absent [default: 20].
    #[arg(long, value_name = "SECONDS")]
    pub metadata_wait: Option<u64>,
    /// Before asking the metadata service, set the links up and take a DHCP lease when none
    /// has an address, as on a live node (for tests in a network namespace).
    #[arg(long, hide = true)]
    pub metadata_links: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Write the files but do not start keepalived and axorouter.
    #[arg(long)]
    pub no_start: bool,
    /// Run even though the first-boot stamp exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Also print each resolved value and the source that set it.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Where the notify script records state changes [default: ROOT/run/axoha].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// How long to listen for VRRP adverts on each path, in milliseconds (0: do not listen)
    /// [default: 4 advert intervals].
    #[arg(long, value_name = "MS")]
    pub listen_ms: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Keep looking (every 2 s) until healthy, for at most SECONDS.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
    /// Read keepalived.conf under DIR instead of / (the units are always those of the
    /// running system).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Where the notify script records state changes [default: ROOT/run/axoha].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Drain even when no healthy peer is heard (this node then keeps the VIP until a peer
    /// can take it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RebootArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Wait at most this long for the peer (a peer that is rebooting itself takes minutes).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub wait: u64,
    /// Decide and drain, then exit 0 instead of rebooting (for tests).
    #[arg(long, hide = true)]
    pub no_reboot: bool,
}
