//! `axoha-install`: PID 1 (/init) of the axoha PXE installer initramfs.
//!
//! Like coreos-installer's initramfs helper, it does one job and stops: network up by DHCP,
//! the image fetched over TFTP or HTTP into memory while hashing it, the hash and the target
//! disk checked before a single byte of the disk is written, then the image written, the
//! node's `axoha.*` arguments put on the installed loader entry, and a reboot into it. Any
//! failure is one clear console line and a halt: a node that PXE-boots first must not loop
//! through failed installs, and the disk stays as it was unless the write itself failed.

mod cmdline;
mod console;
mod disk;
mod gpt;
mod http;
mod kmod;
mod net;
#[cfg(test)]
mod properties;
mod receive;
mod tftp;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axoha_dhcp as dhcp;

use cmdline::{Params, Url};
use console::say;
use receive::{Budget, Receiver};

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "axoha-install: runs only as /init of the installer initramfs (it overwrites a disk)"
        );
        std::process::exit(2);
    }
    let started = Instant::now();
    match install() {
        Ok(summary) => {
            say(&format!(
                "SUCCESS: {summary} in {} s",
                started.elapsed().as_secs()
            ));
            say("rebooting into the installed system");
            nix::unistd::sync();
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
        }
        Err(e) => {
            say(&format!("FAILED: {e:#}"));
            say("halting; fix the PXE entry or the bundle and boot the node again");
            nix::unistd::sync();
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_HALT_SYSTEM);
        }
    }
    // PID 1 must never exit (the kernel would panic and could reboot-loop).
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn mount_basics() -> Result<()> {
    use nix::mount::{mount, MsFlags};
    for (src, dir, fs) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        std::fs::create_dir_all(dir)?;
        match mount(Some(src), dir, Some(fs), MsFlags::MS_NOSUID, None::<&str>) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => return Err(e).with_context(|| format!("mounting {fs} on {dir}")),
        }
    }
    Ok(())
}

/// Small files (the node's arguments, a sha256 file): a few hundred bytes in practice.
const SMALL_FILE: u64 = 64 << 10;
const SMALL_FILE_TIME: Duration = Duration::from_secs(60);
/// The whole image fetch; a 3 GiB disk compresses to about 250 MB, minutes even at 10 Mbit/s.
const IMAGE_TIME: Duration = Duration::from_secs(60 * 60);

/// Fetches a URL into memory within `budget`; `tftp:///path` goes to the DHCP boot server.
/// Returns the data, exactly the announced size when the server announced one, and its sha256.
fn fetch(
    url: &Url,
    boot_server: Option<Ipv4Addr>,
    ifname: &str,
    label: &str,
    budget: Budget,
) -> Result<(Vec<u8>, String)> {
    let mut rx = Receiver::new(label, budget);
    match url {
        Url::Tftp { host, path } => {
            let server = match host {
                Some(h) => h
                    .parse()
                    .with_context(|| format!("TFTP host {h:?}: use an IP address"))?,
                None => boot_server.context("tftp:/// URL but DHCP named no boot server")?,
            };
            tftp::get(SocketAddrV4::new(server, 69), path, ifname, &mut rx)
                .with_context(|| format!("fetching tftp://{server}/{path}"))?;
        }
        Url::Http { host, port, path } => http::get(host, *port, path, &mut rx)?,
    }
    rx.finish()
}

/// Waits for the disk's device node (virtio/SCSI/NVMe probing is asynchronous).
fn wait_for_disk(disk: &str) -> Result<u64> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        match disk::size(disk) {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() > until => {
                return Err(e).context("the target disk is missing; nothing was written")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn install() -> Result<String> {
    mount_basics()?;
    let proc_cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let mut params = Params::parse(&proc_cmdline).context("/proc/cmdline")?;
    if params.url.is_none() && params.node_file.is_none() {
        // Nothing to go on: booted as axoha-install.efi by a loader that replaced the UKI's
        // embedded command line (iPXE passes the file name as load options, and systemd-stub
        // prefers those). The node file is the only place left to look.
        params.node_file = Some("1".into());
    }
    let modules = kmod::load_all(Path::new("/"))?;
    say(&format!("loaded {} kernel modules", modules.len()));

    let want = params.bootif.as_deref().and_then(net::parse_mac);
    let (ifname, mac) = net::first_nic(Duration::from_secs(20), want)?;
    net::set_up(&ifname)?;
    // Asked as the PXE client the firmware was: behind a site DHCP server that knows nothing
    // of PXE, only a proxy DHCP server's answer names the PXE server (docs/pxe.md).
    let lease = dhcp::obtain(
        &ifname,
        mac,
        dhcp::Identity::PxeClient,
        Duration::from_secs(90),
    )?;
    net::configure(&ifname, lease.address, lease.netmask, lease.router)?;
    let boot_server = lease.boot_server();
    say(&format!(
        "{ifname} {}: {} netmask {} boot server {}{}",
        net::mac_string(mac),
        lease.address,
        lease.netmask,
        boot_server
            .map(|a| a.to_string())
            .unwrap_or_else(|| "none".into()),
        if lease.pxe_server.is_some() {
            " (proxy DHCP)"
        } else {
            ""
        }
    ));

    if let Some(path) = params.node_file_path(&net::mac_string(mac)) {
        let server = boot_server.context("axoha.install_node_file needs a DHCP boot server")?;
        let (text, _) = fetch(
            &Url::Tftp {
                host: Some(server.to_string()),
                path: path.clone(),
            },
            None,
            &ifname,
            &path,
            Budget::new(SMALL_FILE, SMALL_FILE_TIME),
        )
        .with_context(|| format!("no node entry {path} for this machine's MAC on {server}"))?;
        params
            .merge(&String::from_utf8_lossy(&text))
            .with_context(|| format!("node file {path}"))?;
        say(&format!("node arguments from {path}"));
    }
    let (url_text, disk) = params.require()?;
    let url = Url::parse(url_text)?;
    let disk_bytes = wait_for_disk(disk)?;

    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let limit = receive::image_limit(disk_bytes, &meminfo)?;
    let (image, actual) = fetch(
        &url,
        boot_server,
        &ifname,
        url.file_name(),
        Budget::new(limit, IMAGE_TIME),
    )?;
    let expected = match &params.sha256 {
        Some(s) => s.clone(),
        None => {
            let sums_url = Url::parse(&format!("{url_text}.sha256"))?;
            let (text, _) = fetch(
                &sums_url,
                boot_server,
                &ifname,
                "sha256",
                Budget::new(SMALL_FILE, SMALL_FILE_TIME),
            )?;
            String::from_utf8_lossy(&text)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        }
    };
    if actual != expected {
        bail!(
            "REFUSED: sha256 mismatch for {url_text}: expected {expected}, got {actual}; {disk} was not touched"
        );
    }
    say(&format!("sha256 {actual} verified"));
    let image_bytes = disk::image_size(&image)?;
    if image_bytes > disk_bytes {
        bail!(
            "REFUSED: {disk} has {disk_bytes} bytes, the image needs {image_bytes}; {disk} was not touched"
        );
    }

    say(&format!("writing {} MiB to {disk}", image_bytes >> 20));
    let mut next = 0u64;
    let written = disk::write_image(&image, disk, image_bytes, |at| {
        if at >= next {
            say(&format!(
                "written {} of {} MiB",
                at >> 20,
                image_bytes >> 20
            ));
            next = at + (256 << 20);
        }
    })?;
    drop(image);
    if written != image_bytes {
        bail!("wrote {written} bytes but the image records {image_bytes}");
    }
    // The root partition to the end of the disk; first boot grows the filesystem.
    if let Some(g) = gpt::grow_disk(disk, disk_bytes)? {
        say(&format!(
            "partition {} grown from {} to {} MiB (the whole disk)",
            g.partition,
            g.old_bytes >> 20,
            g.new_bytes >> 20
        ));
    }
    let entry = disk::persist_args(disk, &params.persist)?;
    let options = entry
        .lines()
        .find(|l| l.starts_with("options"))
        .unwrap_or("");
    say(&format!("loader entry: {options}"));
    Ok(format!("installed {} to {disk}", url.file_name()))
}
