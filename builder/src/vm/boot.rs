//! `axoha-image boot`: boots an image in QEMU with UEFI (OVMF), like `mkosi qemu`.
//!
//! The image is never modified: QEMU runs it with `snapshot=on` (or, with `--disk`, runs the
//! node's own copy, kept across boots: [`persistent_disk`]). Extra kernel arguments
//! (`--karg`, e.g. a node's `axoha.*` keys) go into the loader entry of a temporary sparse
//! raw copy, so the full path firmware -> systemd-boot -> kernel is what boots. KVM is used
//! only when a probe boot shows the kernel really runs under it (PVM-backed KVM on our build
//! machines does not boot stock kernels); otherwise TCG. The CPU model is the same for every
//! profile (`qemu::accel_args`: `max` under TCG, `host` under KVM), so the image's profile
//! need not be known here: both run AlmaLinux 10's x86-64-v3 packages and Debian's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use axoha_boot_contract::entry;
use axoha_boot_contract::owner::{self, Place};
use axoha_disk::gpt::{self, ESP_TYPE};
use axoha_disk::qemu::{self, OVMF_CODE};
use axoha_disk::tool::{command, run, which};

use super::iso::from_iso;
use axoha_disk::{qcow2, sparse};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

pub struct BootOptions {
    pub image: PathBuf,
    pub seed: Option<PathBuf>,
    /// A config drive whose meta_data.json is served as the OpenStack metadata service.
    pub metadata_service: Option<PathBuf>,
    pub kargs: Vec<String>,
    /// Loopback-only multicast socket network shared with other VMs: (port, MAC suffix).
    pub net_mcast_port: Option<u16>,
    /// The VIP NIC (eth1) joined to one other VM's over a loopback UDP pair (local port,
    /// remote port): the two share one VIP network, as nodes on one switch do, so the second
    /// heartbeat path and the VIP's move are real between them.
    pub vip_pair: Option<(u16, u16)>,
    pub serial_log: Option<PathBuf>,
    pub memory_mib: u32,
    pub accel: Accel,
    /// MAC of the HA NIC (eth0); derived from the other options when not given, so VMs
    /// sharing a socket network never collide.
    pub mac: Option<String>,
    /// Forward 127.0.0.1:PORT on this machine to port 22 of the node's own `public_ip`, or
    /// of its VIP when it has none.
    pub ssh_port: Option<u16>,
    /// More forwards from 127.0.0.1:HOST to the VIP's port GUEST: (HOST, GUEST).
    pub forwards: Vec<(u16, u16)>,
    /// Forwards from 127.0.0.1:HOST to ADDR:PORT on the VIP network (e.g. the other node of
    /// a `--vip-net` pair, whose VIP NIC has no user network of its own).
    pub forwards_to: Vec<(u16, std::net::Ipv4Addr, u16)>,
    /// Boot under OVMF's Secure Boot firmware (docs/secure-boot.md); `None`: plain OVMF.
    pub secure_boot: Option<SecureBootFirmware>,
    /// The node's own disk, kept across boots (written in place; made from the image when
    /// missing): see [`persistent_disk`].
    pub disk: Option<PathBuf>,
}

/// The variable store a Secure Boot VM starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureBootFirmware {
    /// A key set from `keygen` (its `secure-boot/` directory) enrolled with Secure Boot on.
    Enrolled(PathBuf),
    /// No keys (Setup Mode): Secure Boot is on only once systemd-boot enrolled the image's
    /// own set (`[secure_boot] enrol`), as on a server whose keys were cleared.
    SetupMode,
}

/// `udp:LOCAL:REMOTE`, two UDP ports on 127.0.0.1 (1024 and up, different), for `--vip-net`.
pub fn parse_vip_pair(s: &str) -> Result<(u16, u16)> {
    let ports: Option<Vec<u16>> = s.strip_prefix("udp:").map(|rest| {
        rest.split(':')
            .filter_map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|n| *n >= 1024 && !p.starts_with('0'))
            })
            .collect()
    });
    match ports.as_deref() {
        Some([local, remote]) if local != remote && s.matches(':').count() == 2 => {
            Ok((*local, *remote))
        }
        _ => {
            bail!("--vip-net {s:?}: expected udp:LOCALPORT:REMOTEPORT, two different ports >= 1024")
        }
    }
}

/// `HOST:ADDR:PORT` for `--forward-to`: a TCP port here, an IPv4 address and a port there.
pub fn parse_forward_to(s: &str) -> Result<(u16, std::net::Ipv4Addr, u16), String> {
    let mut parts = s.splitn(2, ':');
    let (Some(host), Some(rest)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "{s:?}: expected HOSTPORT:ADDR:PORT, e.g. 2223:198.51.100.11:22"
        ));
    };
    let (addr, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected HOSTPORT:ADDR:PORT"))?;
    let (host, port) = parse_forward(&format!("{host}:{port}"))?;
    let addr = addr
        .parse::<std::net::Ipv4Addr>()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    Ok((host, addr, port))
}

/// `HOST:GUEST`, two TCP ports, for `--forward`.
pub fn parse_forward(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0 && !p.starts_with('0'))
            .ok_or_else(|| format!("{p:?} is not a TCP port (1-65535)"))
    };
    let (host, guest) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected HOSTPORT:VIPPORT, e.g. 4317:4317"))?;
    Ok((port(host)?, port(guest)?))
}

/// A metadata key of the node, from `--karg axoha.KEY=...` or else the seed's meta-data (a
/// NoCloud seed's `axoha:` mapping, or a config drive's `axoha.KEY` property).
fn node_key(opts: &BootOptions, key: &str, tmp: &Path) -> Option<String> {
    let prefix = format!("axoha.{key}=");
    if let Some(v) = opts
        .kargs
        .iter()
        .rev()
        .find_map(|k| k.strip_prefix(prefix.as_str()))
    {
        return Some(v.to_owned());
    }
    let iso = opts.seed.as_deref().or(opts.metadata_service.as_deref())?;
    if let Some(text) = from_iso(iso, "meta-data", tmp) {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
        return v["axoha"][key].as_str().map(str::to_owned);
    }
    let text = from_iso(iso, "openstack/latest/meta_data.json", tmp)?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["meta"][format!("axoha.{key}")]
        .as_str()
        .map(str::to_owned)
}

/// An address QEMU's user network can forward to: IPv4, /8 to /29, not .0-.3 nor broadcast.
/// Returns the address and the network (base, prefix).
fn forwardable(what: &str, value: &str) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr, u8)> {
    let net: axoha_firstboot::types::IpNet = value
        .parse()
        .map_err(|e| anyhow::anyhow!("--ssh/--forward: {what} {value:?}: {e}"))?;
    let std::net::IpAddr::V4(addr) = net.addr() else {
        bail!("--ssh/--forward: {what} {value}: QEMU's user network forwards to IPv4 only");
    };
    let prefix = net.prefix();
    if !(8..=29).contains(&prefix) {
        bail!(
            "--ssh/--forward: {what} {value}: the prefix must be /8 to /29 for QEMU's user network"
        );
    }
    let mask = u32::MAX << (32 - prefix);
    let base = u32::from(addr) & mask;
    let host = u32::from(addr) - base;
    if host < 4 || host == !mask {
        bail!(
            "--ssh/--forward: {what} {value}: QEMU's user network uses .0-.3 and the broadcast address"
        );
    }
    Ok((addr, std::net::Ipv4Addr::from(base), prefix))
}

/// The VIP interface's user-mode network (`-netdev user,...`): isolated (`restrict=on`:
/// nothing leaves QEMU); with `--ssh`/`--forward`, it is the VIP's own network, so QEMU's
/// forwards from 127.0.0.1 reach the VIP wherever the cluster has it (`--forward`), and SSH
/// reaches this node's own `public_ip` (the VIP when the node has none). QEMU itself takes
/// `host` (default .2) and `dns` (.3) of that network; `slirp_host` moves them, so that two
/// VMs' user networks joined on one VIP network (`--vip-net`) do not answer for the same
/// addresses.
fn public_netdev(opts: &BootOptions, tmp: &Path, slirp_host: Option<u8>) -> Result<String> {
    // The metadata service, as Neutron offers it on the instance's network: QEMU forwards
    // only addresses inside its user network, so that network is 169.254.0.0/16 then.
    if let Some(drive) = &opts.metadata_service {
        if opts.ssh_port.is_some()
            || !opts.forwards.is_empty()
            || !opts.forwards_to.is_empty()
            || slirp_host.is_some()
        {
            bail!("--metadata-service puts the VIP NIC on 169.254.0.0/16: no --ssh, --forward, --forward-to or --vip-net with it");
        }
        let mds = super::metadata_service::guestfwd(drive, tmp)?;
        return Ok(format!("user,id=pub,restrict=on,net=169.254.0.0/16{mds}"));
    }
    let ssh_public_ip = match opts.ssh_port {
        Some(_) => node_key(opts, "public_ip", tmp),
        None => None,
    };
    let ssh_to_vip = opts.ssh_port.filter(|_| ssh_public_ip.is_none());
    let forwards: Vec<(u16, u16)> = ssh_to_vip
        .map(|p| (p, 22))
        .into_iter()
        .chain(opts.forwards.iter().copied())
        .collect();
    if forwards.is_empty() && ssh_public_ip.is_none() && opts.forwards_to.is_empty() {
        return Ok("user,id=pub,restrict=on".into());
    }
    let mut netdev = String::new();
    let mut net = None;
    if !forwards.is_empty() {
        let vip = node_key(opts, "vip", tmp).context(
            "--ssh and --forward need the node's VIP: --karg axoha.vip=ADDR/PREFIX, or a seed with one",
        )?;
        let (addr, base, prefix) = forwardable("VIP", &vip)?;
        net = Some((base, prefix));
        for (host, guest) in forwards {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-{addr}:{guest}"));
        }
    }
    if net.is_none() {
        if let Some(vip) = node_key(opts, "vip", tmp) {
            let (_, base, prefix) = forwardable("VIP", &vip)?;
            net = Some((base, prefix));
        }
    }
    for (host, addr, port) in &opts.forwards_to {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-{addr}:{port}"));
    }
    if let (Some(ip), Some(port)) = (&ssh_public_ip, opts.ssh_port) {
        let (addr, base, prefix) = forwardable("public_ip", ip)?;
        if net.is_some_and(|n| n != (base, prefix)) {
            bail!("--ssh: public_ip {ip} is not on the VIP's network");
        }
        net = Some((base, prefix));
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-{addr}:22"));
    }
    let (base, prefix) =
        net.context("--forward-to needs the node's VIP network: --karg axoha.vip or a seed")?;
    let mut head = format!("user,id=pub,restrict=on,net={base}/{prefix}");
    if let Some(k) = slirp_host {
        if prefix > 24 {
            bail!("--vip-net: the VIP network must be a /24 or larger (QEMU's own addresses go to .200-.249)");
        }
        let at = |n: u32| std::net::Ipv4Addr::from(u32::from(base) + n);
        head.push_str(&format!(
            ",host={},dns={}",
            at(u32::from(k)),
            at(u32::from(k) + 1)
        ));
    }
    Ok(head + &netdev)
}

/// The HA NIC's MAC from a seed made by `axoha-image seed` (a NoCloud seed's network-config,
/// or a config drive's network_data.json, matches on it), so a VM booted with its seed gets
/// the MAC its node was described with.
fn mac_from_seed(iso: &Path, tmp: &Path) -> Option<String> {
    if let Some(text) = from_iso(iso, "network-config", tmp) {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
        return v["ethernets"]["ha"]["match"]["macaddress"]
            .as_str()
            .map(str::to_owned);
    }
    let text = from_iso(iso, "openstack/latest/network_data.json", tmp)?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["links"].as_array()?.iter().find(|l| l["id"] == "ha")?["ethernet_mac_address"]
        .as_str()
        .map(str::to_owned)
}

/// A locally administered MAC from a hash of `what`.
fn derived_mac(what: &str, nic: u8) -> String {
    let h = axoha_disk::hash::sha256_bytes(format!("{what}/{nic}").as_bytes());
    format!("52:54:{}:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6], &h[6..8])
}

/// A running VM; the QEMU process is ours, killed by PID on drop with its temporary files.
pub struct Vm {
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Vm {
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sparse raw copy of the image at `dest`, checked to be signed for a Secure Boot boot,
/// with the --karg arguments in its entry.
fn raw_copy(opts: &BootOptions, qcow: bool, dest: &Path, tmp: &Path) -> Result<()> {
    if qcow {
        qcow2::to_raw(&opts.image, dest)?;
    } else {
        sparse::copy(&opts.image, dest)?;
    }
    if opts.secure_boot.is_some() {
        check_signed(dest, &opts.image)?;
    }
    if !opts.kargs.is_empty() {
        add_kargs(dest, &opts.kargs, opts.secure_boot.is_some(), tmp)?;
    }
    Ok(())
}

/// `--disk FILE`: the node's own disk. Made when missing: a sparse raw copy of the image with
/// the --karg arguments in its entry, written beside FILE and renamed into place only when
/// complete (an interrupted first boot leaves no half-made disk that would boot). Reused as it
/// is when present: its entry already has the arguments it was made with, and the node's own
/// writes since (an update's new entry, its state partition) are what a reboot must find.
fn persistent_disk(
    opts: &BootOptions,
    path: &Path,
    qcow: bool,
    tmp: &Path,
) -> Result<(PathBuf, &'static str)> {
    if path.exists() {
        if is_qcow2(path)? {
            bail!(
                "--disk {}: not a disk this command made (qcow2); give a new path",
                path.display()
            );
        }
        eprintln!(
            "axoha-image boot: booting the node's disk {} as it is (its entry's arguments were \
             set when it was made)",
            path.display()
        );
        return Ok((path.to_owned(), "raw"));
    }
    let name = path
        .file_name()
        .with_context(|| format!("--disk {}: no file name", path.display()))?;
    let partial = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let made = (|| -> Result<()> {
        raw_copy(opts, qcow, &partial, tmp)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!(
            "--disk {}: making it from {}",
            path.display(),
            opts.image.display()
        )));
    }
    Ok((path.to_owned(), "raw"))
}

/// Checks a karg by the boot contract's one rule for a VM's boot: one word, and nothing the
/// image owns (`usrhash=`, `root=`, ...: the snapshot would boot another system than the
/// image's) or the installer's.
fn check_karg(k: &str) -> Result<()> {
    owner::check(Place::VmBoot, k)
        .map_err(anyhow::Error::msg)
        .context("--karg")
}

/// `--secure-boot` needs a signed image: its entry boots a UKI (`efi`). An unsigned one would
/// stop at the firmware's "Access Denied"; say so instead.
fn check_signed(raw: &Path, image: &Path) -> Result<()> {
    let img = format!("{}@@{}", raw.display(), esp_offset(raw)?);
    let text = run(command("mtype").args(["-i", &img, &format!("::/{}", entry::IMAGE_ENTRY)]))?;
    if !entry::is_uki(&String::from_utf8_lossy(&text.stdout)) {
        bail!(
            "--secure-boot: {} is unsigned (built without [secure_boot]; `inspect` says so): \
             the firmware would refuse it",
            image.display()
        );
    }
    Ok(())
}

fn esp_offset(raw: &Path) -> Result<u64> {
    gpt::read(raw)?
        .into_iter()
        .find(|p| p.type_guid == ESP_TYPE)
        .map(|p| p.offset)
        .context("no EFI system partition in the image")
}

/// Under Secure Boot (`secure_boot`) the node's metadata (`axoha.KEY=VALUE`) goes into the
/// ESP's node file, as the PXE installer writes it: a signed UKI's command line is the image's
/// alone. Everything else is appended to the entry's `options` (the boot contract's one
/// editing rule), where a signed UKI never sees it: the same as typing it at the boot menu.
fn add_kargs(raw: &Path, kargs: &[String], secure_boot: bool, tmp: &Path) -> Result<()> {
    let offset = esp_offset(raw)?;
    let img = format!("{}@@{offset}", raw.display());
    let (node, kargs): (Vec<String>, Vec<String>) = kargs
        .iter()
        .cloned()
        .partition(|k| secure_boot && owner::owner(k) == owner::Owner::Node);
    if !node.is_empty() {
        let file = tmp.join("node.conf");
        std::fs::write(&file, node.join("\n") + "\n")?;
        run(command("mcopy")
            .args(["-o", "-i", &img])
            .arg(&file)
            .arg(format!("::/{}", axoha_boot_contract::layout::NODE_FILE)))
        .context("writing the ESP's node file")?;
    }
    let on_esp = format!("::/{}", entry::IMAGE_ENTRY);
    let out = run(command("mtype").args(["-i", &img, &on_esp]))?;
    let new = entry::add_args(&String::from_utf8_lossy(&out.stdout), &kargs);
    let file = tmp.join(entry::IMAGE_ENTRY_FILE);
    std::fs::write(&file, new)?;
    run(command("mcopy")
        .args(["-o", "-i", &img])
        .arg(&file)
        .arg(&on_esp))?;
    Ok(())
}

fn is_qcow2(image: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(image)
        .with_context(|| format!("opening {}", image.display()))?
        .read_exact(&mut magic)?;
    Ok(&magic == b"QFI\xfb")
}

/// Does a kernel run under KVM here? Boots the image's own kernel directly for a few
/// seconds and looks for its banner on the serial port.
pub fn kvm_works(raw: &Path, tmp: &Path) -> bool {
    if !Path::new("/dev/kvm").exists() {
        return false;
    }
    let Ok(offset) = esp_offset(raw) else {
        return false;
    };
    let kernel = tmp.join("probe-vmlinuz");
    let img = format!("{}@@{offset}", raw.display());
    // The kernel the image's own entry boots (slot A's, `linux /axoha/a/vmlinuz`).
    let on_esp = format!("::/{}", entry::IMAGE_ENTRY);
    let Ok(entry) = run(command("mtype").args(["-i", &img, &on_esp])) else {
        return false;
    };
    let entry = String::from_utf8_lossy(&entry.stdout).into_owned();
    // A signed image's entry boots a UKI (`efi`); slot A's kernel is beside it.
    let linux = entry
        .lines()
        .find_map(|l| l.strip_prefix("linux "))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| format!("/{}", axoha_boot_contract::layout::Slot::A.kernel()));
    if run(command("mcopy")
        .args(["-i", &img, &format!("::{linux}")])
        .arg(&kernel))
    .is_err()
    {
        return false;
    }
    let log = tmp.join("probe.log");
    let Ok(mut child) = Command::new("qemu-system-x86_64")
        // The VM's own CPU model: a kernel built for a newer CPU level than QEMU's default
        // must not fail the probe.
        .args(qemu::accel_args(true))
        .args([
            "-m",
            "256",
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let started = Instant::now();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(20) {
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Kernel command line")) {
            ok = true;
            break;
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    ok
}

pub fn start(opts: &BootOptions) -> Result<Vm> {
    for k in &opts.kargs {
        check_karg(k)?;
    }
    if let Some(mac) = &opts.mac {
        let ok = mac.len() == 17
            && mac
                .split(':')
                .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
        if !ok {
            bail!("--mac {mac:?}: expected aa:bb:cc:dd:ee:ff");
        }
    }
    if which("qemu-system-x86_64").is_none() || !Path::new(OVMF_CODE).exists() {
        bail!(
            "QEMU with OVMF is needed (Debian packages qemu-system-x86 ovmf; scripts/install-deps)"
        );
    }
    let tmp = tempfile::tempdir()?;
    let qcow = is_qcow2(&opts.image)?;
    // A raw view is needed to edit the loader entry and for the KVM probe.
    // (and to check that a Secure Boot boot has a signed image to boot).
    let need_raw =
        !opts.kargs.is_empty() || opts.accel == Accel::Auto || opts.secure_boot.is_some();
    let (disk, format) = if let Some(path) = &opts.disk {
        persistent_disk(opts, path, qcow, tmp.path())?
    } else if need_raw {
        let raw = tmp.path().join("disk.raw");
        raw_copy(opts, qcow, &raw, tmp.path())?;
        (raw, "raw")
    } else {
        (opts.image.clone(), if qcow { "qcow2" } else { "raw" })
    };
    let kvm = match opts.accel {
        Accel::Kvm => true,
        Accel::Tcg => false,
        Accel::Auto => kvm_works(&disk, tmp.path()),
    };
    let vars = tmp.path().join("OVMF_VARS.fd");
    let mut cmd = match &opts.secure_boot {
        None => qemu::uefi_vm(&vars, opts.memory_mib, kvm)?,
        Some(firmware) => {
            match firmware {
                SecureBootFirmware::Enrolled(set) => {
                    qemu::enrolled_vars(set, &vars).context("--secure-boot")?
                }
                SecureBootFirmware::SetupMode => qemu::blank_vars(&vars)?,
            }
            if opts
                .kargs
                .iter()
                .any(|k| owner::owner(k) != owner::Owner::Node)
            {
                eprintln!(
                    "axoha-image boot: Secure Boot: a signed image boots its UKI's own command \
                     line; --karg arguments other than axoha.KEY=VALUE metadata (which go into \
                     the ESP's node file) do not reach it"
                );
            }
            qemu::secure_boot_vm(&vars, opts.memory_mib, kvm)
        }
    };
    // The image is never written; a --disk is the node's own and is.
    let snapshot = if opts.disk.is_some() { "off" } else { "on" };
    cmd.arg("-drive").arg(format!(
        "file={},format={format},if=virtio,snapshot={snapshot}",
        disk.display()
    ));
    if let Some(seed) = &opts.seed {
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,media=cdrom,readonly=on",
            seed.display()
        ));
    }
    // eth0: the HA link. With a multicast port, VMs share it (bound to loopback: no traffic
    // leaves this machine); otherwise a private user-mode network that reaches nothing.
    match opts.net_mcast_port {
        Some(port) => {
            cmd.arg("-netdev").arg(format!(
                "socket,id=ha,mcast=230.0.0.1:{port},localaddr=127.0.0.1"
            ));
        }
        None => {
            cmd.args(["-netdev", "user,id=ha,restrict=on"]);
        }
    }
    let identity = format!("{}|{:?}|{:?}", opts.image.display(), opts.seed, opts.kargs);
    let ha_mac = opts
        .mac
        .clone()
        .or_else(|| {
            opts.seed
                .as_deref()
                .or(opts.metadata_service.as_deref())
                .and_then(|s| mac_from_seed(s, tmp.path()))
        })
        .unwrap_or_else(|| derived_mac(&identity, 0));
    cmd.arg("-device")
        .arg(format!("virtio-net-pci,netdev=ha,mac={ha_mac}"));
    // eth1: the VIP interface, on its own isolated user-mode network; with --vip-net, that
    // network and a loopback UDP link to the other VM meet on one QEMU hub with the NIC (a
    // switch with both VMs and this VM's forwarding host on it). Only ONE VM of a pair may
    // have forwards: QEMU's user network takes every frame on its hub as its guest's, also
    // those sent to another user network, and answers them (two of them reset each other's
    // connections); the other VM's forwards go through this one (`--forward-to`). Not a
    // multicast socket: QEMU hears its own multicast frames again and the user network
    // answers them (a storm). Two hubs joined by one link make no loop.
    let pub_mac = derived_mac(&identity, 1);
    match opts.vip_pair {
        None => {
            cmd.arg("-netdev")
                .arg(public_netdev(opts, tmp.path(), None)?)
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=pub,mac={pub_mac}"));
        }
        Some((local, remote)) if !public_netdev(opts, tmp.path(), None)?.contains("hostfwd=") => {
            // No forwards: the NIC on the link alone, no user network on the switch.
            cmd.arg("-netdev").arg(format!(
                "dgram,id=pub,local.type=inet,local.host=127.0.0.1,local.port={local},\
                 remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
            ));
            cmd.arg("-device")
                .arg(format!("virtio-net-pci,netdev=pub,mac={pub_mac}"));
        }
        Some((local, remote)) => {
            let last = ha_mac
                .get(15..17)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .unwrap_or(0);
            let user = public_netdev(opts, tmp.path(), Some(200 + 2 * (last % 25)))?.replacen(
                "id=pub",
                "id=pubuser",
                1,
            );
            cmd.arg("-netdev").arg(user);
            cmd.arg("-netdev").arg(format!(
                "dgram,id=pubsock,local.type=inet,local.host=127.0.0.1,local.port={local},\
                 remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
            ));
            for (id, netdev) in [("pubhub1", "pubuser"), ("pubhub2", "pubsock")] {
                cmd.arg("-netdev")
                    .arg(format!("hubport,id={id},hubid=1,netdev={netdev}"));
            }
            cmd.arg("-netdev").arg("hubport,id=pub,hubid=1");
            cmd.arg("-device")
                .arg(format!("virtio-net-pci,netdev=pub,mac={pub_mac}"));
        }
    }
    match &opts.serial_log {
        Some(log) => {
            cmd.arg("-serial").arg(format!("file:{}", log.display()));
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        None => {
            cmd.args(["-serial", "stdio"]);
        }
    }
    let child = cmd.spawn().context("starting qemu-system-x86_64")?;
    eprintln!(
        "axoha-image: booting {} with {} (pid {})",
        opts.image.display(),
        if kvm { "KVM" } else { "TCG" },
        child.id()
    );
    Ok(Vm { child, _tmp: tmp })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kargs: &[&str], ssh: Option<u16>) -> BootOptions {
        BootOptions {
            image: "x.qcow2".into(),
            seed: None,
            metadata_service: None,
            kargs: kargs.iter().map(|k| k.to_string()).collect(),
            net_mcast_port: None,
            vip_pair: None,
            serial_log: None,
            memory_mib: 1024,
            accel: Accel::Tcg,
            mac: None,
            ssh_port: ssh,
            forwards: vec![],
            forwards_to: vec![],
            secure_boot: None,
            disk: None,
        }
    }

    #[test]
    fn a_disk_is_reused_as_it_is_and_a_failed_one_is_never_half_made() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        // A qcow2 at the --disk path is not one this command made: refused, untouched.
        let foreign = tmp.join("foreign.qcow2");
        std::fs::write(&foreign, b"QFI\xfbrest").unwrap();
        let err = persistent_disk(&opts(&[], None), &foreign, true, tmp)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a disk this command made"), "{err}");
        assert_eq!(std::fs::read(&foreign).unwrap(), b"QFI\xfbrest");
        // A raw disk that exists is booted as it is, whatever the image.
        let mine = tmp.join("node.raw");
        std::fs::write(&mine, b"raw disk").unwrap();
        let (path, format) = persistent_disk(&opts(&[], None), &mine, true, tmp).unwrap();
        assert_eq!((path.as_path(), format), (mine.as_path(), "raw"));
        assert_eq!(std::fs::read(&mine).unwrap(), b"raw disk");
        // Making one from an image that cannot be read fails with no disk and no partial
        // file left behind.
        let new = tmp.join("new.raw");
        let err = persistent_disk(&opts(&[], None), &new, false, tmp).unwrap_err();
        assert!(format!("{err:#}").contains("--disk"), "{err:#}");
        assert!(!new.exists());
        assert!(!tmp.join(".new.raw.partial").exists());
    }

    #[test]
    fn forwards_parse_and_join_the_vip_network() {
        assert_eq!(parse_forward("14317:4317"), Ok((14317, 4317)));
        for bad in [
            "4317", "0:22", "22:0", "x:22", "022:22", "70000:22", "22:22:22",
        ] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
        let tmp = Path::new("/nonexistent");
        let mut o = opts(&["axoha.vip=198.51.100.64/24"], Some(2222));
        o.forwards = vec![(14317, 4317)];
        assert_eq!(
            public_netdev(&o, tmp, None).unwrap(),
            "user,id=pub,restrict=on,net=198.51.100.0/24,\
             hostfwd=tcp:127.0.0.1:2222-198.51.100.64:22,\
             hostfwd=tcp:127.0.0.1:14317-198.51.100.64:4317"
        );
    }

    #[test]
    fn forwards_to_an_address_parse() {
        assert_eq!(
            parse_forward_to("2223:198.51.100.11:22"),
            Ok((2223, "198.51.100.11".parse().unwrap(), 22))
        );
        for bad in [
            "2223:22",
            "2223:x:22",
            "0:198.51.100.11:22",
            "2223:198.51.100.11:0",
            "2223:2001:db8::1:22",
        ] {
            assert!(parse_forward_to(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vip_pairs_parse() {
        assert_eq!(parse_vip_pair("udp:31001:31002").unwrap(), (31001, 31002));
        for bad in [
            "31001:31002",
            "udp:31001",
            "udp:31001:31001",
            "udp:80:31002",
            "udp:1:2:3",
            "udp:031001:31002",
            "mcast:31001",
        ] {
            assert!(parse_vip_pair(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_goes_to_the_nodes_own_public_ip_and_vip_net_moves_qemus_addresses() {
        let tmp = Path::new("/nonexistent");
        let mut o = opts(
            &[
                "axoha.vip=198.51.100.64/24",
                "axoha.public_ip=198.51.100.11/24",
            ],
            Some(2222),
        );
        o.forwards = vec![(14317, 4317)];
        assert_eq!(
            public_netdev(&o, tmp, Some(222)).unwrap(),
            "user,id=pub,restrict=on,net=198.51.100.0/24,host=198.51.100.222,dns=198.51.100.223,\
             hostfwd=tcp:127.0.0.1:14317-198.51.100.64:4317,\
             hostfwd=tcp:127.0.0.1:2222-198.51.100.11:22"
        );
        let o = opts(
            &[
                "axoha.vip=198.51.100.64/24",
                "axoha.public_ip=203.0.113.11/24",
            ],
            Some(2222),
        );
        let mut o = o;
        o.forwards = vec![(14317, 4317)];
        let err = format!("{:#}", public_netdev(&o, tmp, None).unwrap_err());
        assert!(err.contains("not on the VIP's network"), "{err}");
        let o = opts(&["axoha.vip=198.51.100.64/25"], Some(2222));
        let err = format!("{:#}", public_netdev(&o, tmp, Some(200)).unwrap_err());
        assert!(err.contains("/24 or larger"), "{err}");
    }

    #[test]
    fn ssh_forwards_loopback_to_the_vip_on_its_own_network() {
        let tmp = Path::new("/nonexistent");
        assert_eq!(
            public_netdev(&opts(&[], None), tmp, None).unwrap(),
            "user,id=pub,restrict=on"
        );
        assert_eq!(
            public_netdev(&opts(&["axoha.vip=198.51.100.64/24"], Some(2222)), tmp, None).unwrap(),
            "user,id=pub,restrict=on,net=198.51.100.0/24,hostfwd=tcp:127.0.0.1:2222-198.51.100.64:22"
        );
        for (karg, why) in [
            ("axoha.role=primary", "need the node's VIP"),
            ("axoha.vip=198.51.100.2/24", ".0-.3"),
            ("axoha.vip=198.51.100.255/24", "broadcast"),
            ("axoha.vip=2001:db8::1/64", "IPv4 only"),
            ("axoha.vip=198.51.100.64/31", "/8 to /29"),
        ] {
            let err = format!(
                "{:#}",
                public_netdev(&opts(&[karg], Some(2222)), tmp, None).unwrap_err()
            );
            assert!(err.contains(why), "{karg}: {err}");
        }
    }
}
