//! `axoha-image pxe-config`: per-node network-install entries from one cluster description
//! (the format of `seed.rs`), keyed by MAC address, in the forms PXE servers use:
//!
//! - `ipxe/MAC.ipxe` (MAC as `52-54-00-0a-00-0a`, iPXE's `${net0/mac:hexhyp}`) and the
//!   dispatcher `ipxe/boot.ipxe`;
//! - `grub/grub.cfg-01-MAC`, which GRUB's network boot looks for first in its prefix;
//! - `pxelinux.cfg/01-MAC`, pxelinux's per-MAC file;
//! - `nodes/01-MAC.cmdline`, the arguments alone, fetched by the installer when it was booted
//!   as one UEFI executable (axoha-install.efi), which firmware cannot give arguments.
//!
//! Every node is validated with axoha-firstboot's rules (through `seed::render`) before any
//! file is written, so an entry that would fail on first boot is never published.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::seed::{self, ClusterFile, Secrets};

pub struct Options {
    pub cluster: PathBuf,
    pub output: PathBuf,
    /// Where the bundle is served: `tftp://HOST/DIR/`, `tftp:///DIR/` (the DHCP boot server),
    /// or `http://HOST[:PORT]/DIR/`.
    pub bundle_url: String,
    /// The bundle directory (`OUT/pxe`), for the image's sha256.
    pub bundle: PathBuf,
    pub disk: String,
    /// Extra kernel arguments for the installed system (e.g. `net.ifnames=0`).
    pub kargs: Vec<String>,
}

const CONSOLE: &str = "console=tty0 console=ttyS0,115200";

/// `52:54:00:0A:00:0A` -> `52-54-00-0a-00-0a`.
pub fn hexhyp(mac: &str) -> String {
    mac.to_ascii_lowercase().replace(':', "-")
}

fn check_arg(a: &str) -> Result<()> {
    if a.is_empty()
        || a.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        bail!("kernel argument {a:?}: one word, without spaces or quotes");
    }
    Ok(())
}

/// The installer arguments of one node (pure): its `axoha.*` keys as first boot reads them,
/// then where the image is, its sha256, the target disk and extra persisted arguments.
pub fn node_args(
    c: &ClusterFile,
    name: &str,
    url: &str,
    sha256: &str,
    disk: &str,
    kargs: &[String],
) -> Result<Vec<String>> {
    // Validation only: the seed files themselves are not needed here.
    seed::render(c, name, &Secrets::default())?;
    let node = c.nodes.iter().find(|n| n.name == name).context("node")?;
    let mut args: Vec<String> = seed::node_values(c, node, &Secrets::default())
        .iter()
        .map(|(k, v)| format!("axoha.{}={v}", k.name()))
        .collect();
    args.push(format!("axoha.install_url={url}disk.raw.zst"));
    args.push(format!("axoha.install_sha256={sha256}"));
    args.push(format!("axoha.install_disk={disk}"));
    args.extend(kargs.iter().map(|k| format!("axoha.install_karg={k}")));
    for a in &args {
        check_arg(a)?;
    }
    Ok(args)
}

/// How each boot loader names a file of the bundle (pure).
struct Locations {
    ipxe: String,
    grub: String,
    pxelinux: String,
}

fn locations(url: &str) -> Result<Locations> {
    if let Some(rest) = url.strip_prefix("tftp://") {
        let (host, path) = rest.split_once('/').context("tftp URL without a path")?;
        return Ok(if host.is_empty() {
            Locations {
                ipxe: format!("tftp://${{next-server}}/{path}"),
                grub: format!("(tftp)/{path}"),
                pxelinux: format!("/{path}"),
            }
        } else {
            Locations {
                ipxe: url.to_owned(),
                grub: format!("(tftp,{host})/{path}"),
                pxelinux: format!("{host}::/{path}"),
            }
        });
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let (host, path) = rest.split_once('/').context("http URL without a path")?;
        return Ok(Locations {
            ipxe: url.to_owned(),
            grub: format!("(http,{host})/{path}"),
            pxelinux: url.to_owned(),
        });
    }
    bail!("--bundle-url {url:?}: expected tftp://[HOST]/DIR/ or http://HOST/DIR/")
}

/// (relative path, contents) of every file for one node (pure).
pub fn node_files(
    name: &str,
    mac: &str,
    args: &[String],
    url: &str,
) -> Result<Vec<(String, String)>> {
    let l = locations(url)?;
    let m = hexhyp(mac);
    let line = format!("{CONSOLE} BOOTIF=01-{m} {}", args.join(" "));
    Ok(vec![
        (
            format!("ipxe/{m}.ipxe"),
            format!(
                "#!ipxe\n# axoha network install of {name}\nkernel {0}vmlinuz initrd=installer.img {line}\ninitrd {0}installer.img\nboot\n",
                l.ipxe
            ),
        ),
        (
            format!("grub/grub.cfg-01-{m}"),
            format!(
                "set timeout=1\nmenuentry \"axoha network install of {name}\" {{\n  linux {0}vmlinuz {line}\n  initrd {0}installer.img\n}}\n",
                l.grub
            ),
        ),
        (
            format!("pxelinux.cfg/01-{m}"),
            format!(
                "DEFAULT axoha\nLABEL axoha\n  MENU LABEL axoha network install of {name}\n  KERNEL {0}vmlinuz\n  INITRD {0}installer.img\n  APPEND {line}\n",
                l.pxelinux
            ),
        ),
        (format!("nodes/01-{m}.cmdline"), format!("{}\n", args.join(" "))),
    ])
}

pub const DISPATCHER: &str = "#!ipxe\n# axoha: chain to this machine's entry (written by axoha-image pxe-config)\n\
chain ${net0/mac:hexhyp}.ipxe || goto none\n:none\necho axoha: no entry ${net0/mac:hexhyp}.ipxe for this machine\nsleep 30\nexit 1\n";

/// Reads the image's sha256 from the bundle's `disk.raw.zst.sha256`.
fn bundle_sha256(bundle: &Path) -> Result<String> {
    let p = bundle.join("disk.raw.zst.sha256");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("reading {} (build with --target pxe)", p.display()))?;
    let sha = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{}: no sha256 in it", p.display());
    }
    Ok(sha)
}

/// Validates every node, then writes all entries; returns the files written.
pub fn run(opts: &Options) -> Result<Vec<PathBuf>> {
    let cluster = seed::load(&opts.cluster)?;
    let url = if opts.bundle_url.ends_with('/') {
        opts.bundle_url.clone()
    } else {
        format!("{}/", opts.bundle_url)
    };
    if !opts.disk.starts_with("/dev/") {
        bail!("--disk {:?}: expected a /dev/ path", opts.disk);
    }
    let sha = bundle_sha256(&opts.bundle)?;
    let mut files = vec![("ipxe/boot.ipxe".to_owned(), DISPATCHER.to_owned())];
    for n in &cluster.nodes {
        let args = node_args(&cluster, &n.name, &url, &sha, &opts.disk, &opts.kargs)?;
        files.extend(node_files(&n.name, &n.mac, &args, &url)?);
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let p = opts.output.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "vip = \"198.51.100.64/24\"\nha_if = \"eth0\"\nvip_if = \"eth1\"\nvrid = 51\n\
        gateway = \"198.51.100.1\"\ndns = [\"203.0.113.53\", \"203.0.113.54\"]\nntp = [\"ntp.example.org\"]\n\n\
        [[nodes]]\nname = \"router-a\"\nrole = \"primary\"\nha_ip = \"192.0.2.10/24\"\nmac = \"52:54:00:0A:00:0A\"\npublic_ip = \"198.51.100.10/24\"\n\n\
        [[nodes]]\nname = \"router-b\"\nrole = \"secondary\"\nha_ip = \"192.0.2.11/24\"\nmac = \"52:54:00:0a:00:0b\"\npublic_ip = \"198.51.100.11/24\"\n";
    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn cluster(text: &str) -> ClusterFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn args_carry_role_image_and_disk() {
        let c = cluster(CLUSTER);
        let a = node_args(
            &c,
            "router-a",
            "tftp:///",
            SHA,
            "/dev/vda",
            &["net.ifnames=0".into()],
        )
        .unwrap();
        for want in [
            "axoha.role=primary",
            "axoha.ha_ip=192.0.2.10/24",
            "axoha.peers=192.0.2.11",
            "axoha.hostname=router-a",
            "axoha.gateway=198.51.100.1",
            "axoha.dns=203.0.113.53,203.0.113.54",
            "axoha.ntp=ntp.example.org",
            "axoha.install_url=tftp:///disk.raw.zst",
            "axoha.install_disk=/dev/vda",
            "axoha.install_karg=net.ifnames=0",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        assert!(a.contains(&format!("axoha.install_sha256={SHA}")));
    }

    #[test]
    fn args_carry_the_second_heartbeat_path() {
        let c = cluster(CLUSTER);
        let a = node_args(&c, "router-b", "tftp:///", SHA, "/dev/vda", &[]).unwrap();
        for want in [
            "axoha.public_ip=198.51.100.11/24",
            "axoha.public_peers=198.51.100.10",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
    }

    #[test]
    fn invalid_nodes_are_refused_by_firstboot_rules() {
        let bad = CLUSTER.replace("192.0.2.11/24", "192.0.2.300/24");
        assert!(node_args(&cluster(&bad), "router-b", "tftp:///", SHA, "/dev/vda", &[]).is_err());
        let two_primaries = CLUSTER.replace("secondary", "primary");
        assert!(node_args(
            &cluster(&two_primaries),
            "router-a",
            "tftp:///",
            SHA,
            "/dev/vda",
            &[]
        )
        .is_err());
        assert!(node_args(
            &cluster(CLUSTER),
            "router-a",
            "tftp:///",
            SHA,
            "/dev/vda",
            &["a b".into()]
        )
        .is_err());
    }

    #[test]
    fn files_per_boot_loader() {
        let files = node_files(
            "router-a",
            "52:54:00:0A:00:0A",
            &["axoha.role=primary".into()],
            "tftp:///axoha/",
        )
        .unwrap();
        let get = |p: &str| {
            files
                .iter()
                .find(|(n, _)| n == p)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let ipxe = get("ipxe/52-54-00-0a-00-0a.ipxe");
        assert!(ipxe.contains(
            "kernel tftp://${next-server}/axoha/vmlinuz initrd=installer.img console=tty0"
        ));
        assert!(ipxe.contains("BOOTIF=01-52-54-00-0a-00-0a axoha.role=primary"));
        assert!(get("grub/grub.cfg-01-52-54-00-0a-00-0a").contains("linux (tftp)/axoha/vmlinuz "));
        assert!(get("pxelinux.cfg/01-52-54-00-0a-00-0a").contains("KERNEL /axoha/vmlinuz"));
        assert_eq!(
            get("nodes/01-52-54-00-0a-00-0a.cmdline"),
            "axoha.role=primary\n"
        );
        let http = node_files("r", "52:54:00:0a:00:0a", &[], "http://192.0.2.5/axoha/").unwrap();
        assert!(http[1].1.contains("(http,192.0.2.5)/axoha/vmlinuz"));
        assert!(locations("ftp://x/").is_err());
    }
}
