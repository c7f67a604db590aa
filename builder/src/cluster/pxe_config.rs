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
//! Every node is validated with axoha-firstboot's rules (through `node::node`) before any
//! file is written, so an entry that would fail on first boot is never published.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use axoha_boot_contract::budget;
use axoha_boot_contract::owner::{self, Place};

use super::description::{self, ClusterFile, Mac};
use super::node::{self, Secrets};

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

/// Bytes a value may have where it lands in an iPXE, GRUB or pxelinux script. iPXE has no
/// quoting at all (`${...}` always expands), GRUB splits on `;`, `|`, `&`, braces and
/// expands `$`, pxelinux ends a line at a newline: so arguments and URLs are refused unless
/// every byte is one of these, which none of the three languages treats specially.
fn script_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:/,=@+-%".contains(&b)
}

/// One kernel argument (or URL) that every boot loader script passes through as it is.
fn check_arg(a: &str) -> Result<()> {
    if a.is_empty() || !a.bytes().all(script_safe) {
        bail!(
            "kernel argument {a:?}: one word of letters, digits and . _ : / , = @ + - % \
             (iPXE, GRUB and pxelinux would read anything else as script)"
        );
    }
    Ok(())
}

/// A GRUB word in single quotes: nothing expands inside them; a quote itself is closed,
/// escaped and reopened (GRUB's shell-like quoting).
fn grub_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Text for an iPXE comment or a pxelinux menu label: one line, and nothing either language
/// could expand (iPXE expands `${...}` wherever it stands); anything else becomes `_`.
fn label(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if script_safe(b) || b == b' ' {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

/// The installer arguments of one node (pure): its `axoha.*` keys as first boot reads them,
/// then where the image is, its sha256, the target disk and extra persisted arguments. An
/// extra argument is never one the image, the node's metadata or the installer owns
/// (`owner::check`): the metadata comes only from the validated cluster description.
pub fn node_args(
    c: &ClusterFile,
    name: &str,
    url: &str,
    sha256: &str,
    disk: &str,
    kargs: &[String],
) -> Result<Vec<String>> {
    // Validation only: the seed files themselves are not needed here.
    node::node(c, name, &Secrets::default())?;
    let node = c.nodes.iter().find(|n| n.name == name).context("node")?;
    let mut args: Vec<String> = node::node_values(c, node, &Secrets::default())
        .iter()
        .map(|(k, v)| format!("axoha.{}={v}", k.name()))
        .collect();
    // What the installed system's entry gets: the metadata and the extra arguments.
    let persisted: usize = args.iter().chain(kargs).map(|a| a.len() + 1).sum();
    args.push(format!("axoha.install_url={url}disk.raw.zst"));
    args.push(format!("axoha.install_sha256={sha256}"));
    args.push(format!("axoha.install_disk={disk}"));
    args.extend(kargs.iter().map(|k| format!("axoha.install_karg={k}")));
    for a in &args {
        check_arg(a)?;
    }
    for k in kargs {
        owner::check(Place::NodeExtra, k).map_err(anyhow::Error::msg)?;
    }
    if persisted > budget::node_max() {
        bail!(
            "node {name}: its arguments for the installed system take {persisted} bytes, at most \
             {} fit beside the entry's own and the image's kernel_cmdline (the kernel's \
             command line is {} bytes on x86)",
            budget::node_max(),
            budget::MAX
        );
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
    check_arg(url).with_context(|| format!("--bundle-url {url:?}"))?;
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
    mac: &Mac,
    args: &[String],
    url: &str,
) -> Result<Vec<(String, String)>> {
    let l = locations(url)?;
    let m = mac.hexhyp();
    let line = format!("{CONSOLE} BOOTIF=01-{m} {}", args.join(" "));
    // iPXE passes `initrd=...` on the line too; the longest form must fit.
    let longest = format!("initrd=installer.img {line}");
    if longest.len() > budget::MAX {
        bail!(
            "node {name}: the installer's kernel command line is {} bytes, more than the \
             kernel's {} on x86",
            longest.len(),
            budget::MAX
        );
    }
    let title = format!("axoha network install of {name}");
    Ok(vec![
        (
            format!("ipxe/{m}.ipxe"),
            format!(
                "#!ipxe\n# {1}\nkernel {0}vmlinuz initrd=installer.img {line}\ninitrd {0}installer.img\nboot\n",
                l.ipxe,
                label(&title)
            ),
        ),
        (
            format!("grub/grub.cfg-01-{m}"),
            format!(
                "set timeout=1\nmenuentry {1} {{\n  linux {0}vmlinuz {line}\n  initrd {0}installer.img\n}}\n",
                l.grub,
                grub_quote(&title)
            ),
        ),
        (
            format!("pxelinux.cfg/01-{m}"),
            format!(
                "DEFAULT axoha\nLABEL axoha\n  MENU LABEL {1}\n  KERNEL {0}vmlinuz\n  INITRD {0}installer.img\n  APPEND {line}\n",
                l.pxelinux,
                label(&title)
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
    let cluster = description::load(&opts.cluster)?;
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

    fn mac(s: &str) -> Mac {
        Mac::try_from(s.to_owned()).unwrap()
    }

    fn args(c: &ClusterFile, node: &str, kargs: &[&str]) -> Result<Vec<String>> {
        let kargs: Vec<String> = kargs.iter().map(|k| k.to_string()).collect();
        node_args(c, node, "tftp:///axoha/", SHA, "/dev/vda", &kargs)
    }

    /// Every value that could reach a script is refused by name, whatever the language.
    #[test]
    fn script_metacharacters_are_refused() {
        let c = cluster(CLUSTER);
        for bad in [
            "a;reboot",
            "a|b",
            "a&b",
            "a<b",
            "a>b",
            "${net0/mac}",
            "$x",
            "a{b}",
            "a\"b",
            "a'b",
            "a\nb",
            "a\\b",
            "a`b`",
            "a#b",
            "a b",
            "a\tb",
        ] {
            let err = format!("{:#}", args(&c, "router-a", &[bad]).unwrap_err());
            assert!(
                err.contains("kernel argument")
                    && err.contains(&format!(
                        "\"axoha.install_karg={}",
                        &format!("{bad:?}")[1..]
                    )),
                "{bad:?}: {err}"
            );
        }
        for url in [
            "tftp:///a;b/",
            "http://192.0.2.5/${x}/",
            "http://192.0.2.5/a b/",
            "tftp:///a\nboot/",
        ] {
            let err = format!("{:#}", locations(url).err().expect("refused"));
            assert!(err.contains("--bundle-url"), "{url:?}: {err}");
        }
        let disk = node_args(&c, "router-a", "tftp:///", SHA, "/dev/vda;reboot", &[]);
        assert!(format!("{:#}", disk.unwrap_err()).contains("/dev/vda;reboot"));
    }

    #[test]
    fn the_command_line_fits_the_kernel() {
        let c = cluster(CLUSTER);
        let long = format!("x={}", "a".repeat(budget::node_max()));
        let err = format!("{:#}", args(&c, "router-a", &[&long]).unwrap_err());
        assert!(err.contains("at most") && err.contains("2047"), "{err}");
        let fits = args(&c, "router-a", &["quiet"]).unwrap();
        let files = node_files(
            "router-a",
            &mac("52:54:00:0a:00:0a"),
            &fits,
            "tftp:///axoha/",
        )
        .unwrap();
        assert!(files
            .iter()
            .all(|(_, t)| t.lines().all(|l| l.len() < budget::MAX + 64)));
        // The installer's own line is checked too (console, BOOTIF, initrd= on top).
        let many: Vec<String> = (0..300)
            .map(|i| format!("axoha.install_karg=k{i}=v"))
            .collect();
        let err = node_files("r", &mac("52:54:00:0a:00:0a"), &many, "tftp:///a/").unwrap_err();
        assert!(err.to_string().contains("kernel's 2047"), "{err}");
    }

    /// One owner per argument: what the image, the node's metadata, the installer or one
    /// boot owns is never a node's extra argument.
    #[test]
    fn owned_arguments_are_refused() {
        let c = cluster(CLUSTER);
        for owned in [
            "axoha.role=secondary",
            "axoha.vrid=999",
            "axoha.install_disk=/dev/sdb",
            "axoha.factory_reset",
            "usrhash=00",
            "root=/dev/sda1",
            "rw",
            "ro",
            "init=/bin/sh",
            "mount.usr=/dev/sda2",
            "systemd.unit=rescue.target",
            "systemd.mask=axoha-boot-check.service",
        ] {
            let err = format!("{:#}", args(&c, "router-a", &[owned]).unwrap_err());
            assert!(err.contains(&format!("{owned:?}")), "{owned}: {err}");
        }
        assert!(args(&c, "router-a", &["net.ifnames=0", "console=ttyS1"]).is_ok());
    }

    #[test]
    fn labels_are_one_inert_line() {
        assert_eq!(label("a ${x}\nboot;"), "a __x__boot_");
    }

    #[test]
    fn grub_titles_are_quoted() {
        assert_eq!(grub_quote("it's $x; {y}"), "'it'\\''s $x; {y}'");
    }

    /// GRUB's own parser accepts what we write (grub-script-check, Debian's grub-common).
    #[test]
    fn grub_script_check_accepts_the_entries() {
        if axoha_disk::tool::require(&["grub-script-check"]).is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "grub-script-check missing (scripts/install-deps test)"
            );
            eprintln!("skipped: grub-script-check is not installed (scripts/install-deps test)");
            return;
        }
        let c = cluster(CLUSTER);
        let dir = tempfile::tempdir().unwrap();
        for (node, url) in [
            ("router-a", "tftp:///axoha/"),
            ("router-b", "http://192.0.2.5:8080/pxe/"),
        ] {
            let a = node_args(&c, node, url, SHA, "/dev/vda", &["net.ifnames=0".into()]).unwrap();
            let n = c.nodes.iter().find(|n| n.name == node).unwrap();
            let files = node_files(node, &n.mac, &a, url).unwrap();
            let (_, grub) = files.iter().find(|(p, _)| p.starts_with("grub/")).unwrap();
            grub_script_check(&dir.path().join(format!("{node}.cfg")), grub);
        }
        // A title with quotes and metacharacters stays one word to GRUB.
        let hostile = format!(
            "set timeout=1\nmenuentry {} {{\n  true\n}}\n",
            grub_quote("a'b;c}$d\"e")
        );
        grub_script_check(&dir.path().join("hostile.cfg"), &hostile);
    }

    fn grub_script_check(path: &Path, script: &str) {
        std::fs::write(path, script).unwrap();
        let out = std::process::Command::new("grub-script-check")
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{script}\n{err}");
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
            &mac("52:54:00:0A:00:0A"),
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
        let http = node_files(
            "r",
            &mac("52:54:00:0a:00:0a"),
            &[],
            "http://192.0.2.5/axoha/",
        )
        .unwrap();
        assert!(http[1].1.contains("(http,192.0.2.5)/axoha/vmlinuz"));
        assert!(locations("ftp://x/").is_err());
    }
}
