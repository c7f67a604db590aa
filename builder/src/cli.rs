//! Command-line types only (clap); the work happens in `build`, `inspect`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::build::Target;
use crate::profile::Profile;

#[derive(Debug, Parser)]
#[command(
    name = "axoha-image",
    version,
    about = "Build and inspect axoha appliance images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the appliance image.
    Build(BuildArgs),
    /// Run only the rootfs stage (the distribution tree from the mirror, cached) and print
    /// the cached tree and its packages: checks a mirror, its signing key and the package
    /// set without building a disk.
    Rootfs(RootfsArgs),
    /// Write a new update signing key pair (minisign, unencrypted) to DIR: axoha-update.key
    /// (secret: for `build --target bundle --signing-key`) and axoha-update.pub (its one line
    /// goes into the definition's `[update] public_key`); and a Secure Boot key set in
    /// DIR/secure-boot (PK, KEK, db: .key, .crt, DER .cer, guid): db.crt and db.key go into the
    /// definition's `[secure_boot]`, the set is enrolled in the firmware (docs/secure-boot.md).
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print what an image contains (manifest, profile, versions, enabled units).
    Inspect {
        /// A .qcow2 or .raw image made by axoha-image.
        image: PathBuf,
    },
    /// Boot an image in QEMU with UEFI; the image itself is never modified (--disk keeps the
    /// node's own disk).
    Boot(BootArgs),
    /// Write per-node metadata ISOs from one cluster description: NoCloud seeds (cidata) or
    /// OpenStack config drives (config-2).
    Seed(SeedArgs),
    /// Write per-node network-install entries (iPXE, GRUB, pxelinux, installer node files).
    PxeConfig(PxeConfigArgs),
    /// Answer one HTTP request on stdin with FILE as the OpenStack metadata document (run by
    /// QEMU for `boot --metadata-service`).
    #[command(hide = true)]
    RespondMetadata { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct PxeConfigArgs {
    /// The cluster description (as for `seed`): each node's entry is keyed by its `mac`.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// Directory for ipxe/, grub/, pxelinux.cfg/ and nodes/ (usually the TFTP root).
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    /// Where the PXE bundle is served: tftp://HOST/DIR/, tftp:///DIR/ (the DHCP boot server)
    /// or http://HOST[:PORT]/DIR/.
    #[arg(long, value_name = "URL")]
    pub bundle_url: String,
    /// The bundle built by `build --target pxe` (its disk.raw.zst.sha256 is read).
    #[arg(long, value_name = "DIR", default_value = "out/pxe")]
    pub bundle: PathBuf,
    /// The disk the installer overwrites on every node.
    #[arg(long, value_name = "DEV", default_value = "/dev/sda")]
    pub disk: String,
    /// Extra kernel argument for the installed system (repeatable), e.g. net.ifnames=0.
    #[arg(long = "karg", value_name = "ARG")]
    pub kargs: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["node", "all"]))]
pub struct SeedArgs {
    /// The cluster description: vip, ha_if, vip_if, vrid and [[nodes]] (name, role, ha_ip, mac).
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The node to write a seed for.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// One seed per node.
    #[arg(long)]
    pub all: bool,
    /// Directory for NAME.iso.
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    /// nocloud: a cloud-init NoCloud seed labelled cidata (libvirt, Proxmox, QEMU);
    /// configdrive: an OpenStack config drive labelled config-2.
    #[arg(long, value_enum, default_value = "nocloud")]
    pub format: crate::cluster::seed::Format,
    /// TOML file with secrets (auth_pass); else $AXOHA_AUTH_PASS. Never on the command line.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// A .qcow2 or .raw image made by axoha-image.
    pub image: PathBuf,
    /// Metadata ISO to attach as a CD-ROM: a NoCloud seed or an OpenStack config drive.
    #[arg(long, value_name = "ISO")]
    pub seed: Option<PathBuf>,
    /// Serve this config drive's meta_data.json (from `seed --format configdrive`) as the
    /// OpenStack metadata service, 169.254.169.254:80 on the VIP NIC's isolated network, instead
    /// of attaching a drive: the path a node without a config drive takes on OpenStack.
    #[arg(long, value_name = "ISO")]
    pub metadata_service: Option<PathBuf>,
    /// Extra kernel argument (repeatable), e.g. --karg axoha.role=primary.
    #[arg(long = "karg", value_name = "K=V")]
    pub kargs: Vec<String>,
    /// Join a loopback-only socket network shared with other VMs on the HA NIC: mcast:PORT.
    #[arg(long, value_name = "mcast:PORT")]
    pub net: Option<String>,
    /// Join the VIP NIC (eth1) to one other VM's, udp:LOCALPORT:REMOTEPORT on 127.0.0.1
    /// (the other VM swaps the two): the pair's public switch. Only one of the two may have
    /// --ssh/--forward/--forward-to (reach the other through it with --forward-to).
    #[arg(long, value_name = "udp:LOCAL:REMOTE")]
    pub vip_net: Option<String>,
    /// Write the serial console to FILE instead of this terminal.
    #[arg(long, value_name = "FILE")]
    pub serial_log: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
    /// MAC address of the HA NIC (eth0) [default: the seed's, else derived from the options].
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Forward 127.0.0.1:PORT to port 22 of this node's own public_ip, or of the VIP when it
    /// has none (`ssh -p PORT USER@127.0.0.1` with a `[[users]]` key); both come from
    /// --karg axoha.public_ip / axoha.vip or the seed.
    #[arg(long, value_name = "PORT")]
    pub ssh: Option<u16>,
    /// Forward 127.0.0.1:HOSTPORT to the node's VIP, port VIPPORT (TCP; repeatable), on the
    /// same isolated network as --ssh: e.g. --forward 4317:4317 reaches AxoRouter.
    #[arg(long, value_name = "HOSTPORT:VIPPORT", value_parser = crate::vm::boot::parse_forward)]
    pub forward: Vec<(u16, u16)>,
    /// Forward 127.0.0.1:HOSTPORT to ADDR:PORT on the VIP network (repeatable), e.g. the SSH
    /// port of the other node of a --vip-net pair: only one VM of a pair may forward.
    #[arg(long, value_name = "HOSTPORT:ADDR:PORT", value_parser = crate::vm::boot::parse_forward_to)]
    pub forward_to: Vec<(u16, std::net::Ipv4Addr, u16)>,
    /// Boot with Secure Boot on: DIR is a key set from `keygen` (DIR/secure-boot), enrolled
    /// (PK, KEK, db) into a fresh OVMF variable store with virt-fw-vars; the firmware is
    /// OVMF_CODE_4M.secboot.fd. The image must be signed for that set's db.
    #[arg(long, value_name = "DIR")]
    pub secure_boot: Option<PathBuf>,
    /// Boot under OVMF_CODE_4M.secboot.fd with no keys enrolled (Setup Mode), as a server
    /// whose keys were cleared: an image built with `[secure_boot] enrol = "force"` enrols its
    /// own set through systemd-boot, which resets the VM; Secure Boot is on from then on.
    #[arg(long, conflicts_with = "secure_boot")]
    pub secure_boot_setup_mode: bool,
    /// Accelerator: auto probes KVM with a short boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: crate::vm::boot::Accel,
    /// Keep the node's disk in FILE (raw, sparse) across boots, as a real machine's: made
    /// from the image (with its --karg arguments) when FILE does not exist, booted as it is
    /// when it does (the same command boots the same node again). QEMU writes it in place:
    /// what the node wrote and synced survives QEMU being killed, as after a power cut.
    #[arg(long, value_name = "FILE")]
    pub disk: Option<PathBuf>,
}

/// What an image is made of: the definition and the command-line values that override it.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Distribution profile [default: the definition's, almalinux-10].
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Appliance definition (axoha.toml) [default: the embedded one].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Package mirror: an http://, https:// or file:/ URL [default: the profile's].
    #[arg(long, value_name = "URL")]
    pub mirror: Option<crate::definition::Url>,
    /// AxoRouter package (.rpm for almalinux-10, .deb for debian-12), from your AxoConsole:
    /// a local file or an http(s) URL (downloaded into the cache).
    #[arg(long, value_name = "PATH|URL")]
    pub axorouter: Option<crate::definition::PackageSource>,
    /// The package's expected sha256: a download (or local file) that differs is refused.
    #[arg(long, value_name = "HEX")]
    pub axorouter_sha256: Option<crate::definition::Sha256>,
    /// Accept the axoha test stand-in as AxoRouter; the image is named and marked as a demo.
    #[arg(long)]
    pub demo: bool,
    /// Rootfs cache [default: $XDG_CACHE_HOME/axoha or ~/.cache/axoha].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// The axoha-firstboot binary to bake in [default: next to this program].
    #[arg(long, value_name = "PATH")]
    pub firstboot_bin: Option<PathBuf>,
    /// The axoha-update binary to bake in (and into the initrd) [default: next to this program].
    #[arg(long, value_name = "PATH")]
    pub update_bin: Option<PathBuf>,
    /// The axoha-metrics binary to bake in [default: next to this program].
    #[arg(long, value_name = "PATH")]
    pub metrics_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RootfsArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Print, one argument per line, the plain package-manager command this stage is
    /// measured against (bench/build): same mirror, release and packages, none of our
    /// options, writing to OUT. Nothing is built.
    #[arg(long, value_name = "OUT")]
    pub floor_command: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Artifacts to produce (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub target: Vec<Target>,
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Where artifacts land.
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub output: PathBuf,
    /// The axoha-install binary for --target pxe [default: next to this program].
    #[arg(long, value_name = "PATH")]
    pub installer_bin: Option<PathBuf>,
    /// The secret key (from `keygen`) that signs --target bundle; its public key must be the
    /// definition's `[update] public_key`.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Write each stage's duration as JSON (used by bench/build).
    #[arg(long, value_name = "FILE")]
    pub timings_json: Option<PathBuf>,
}
