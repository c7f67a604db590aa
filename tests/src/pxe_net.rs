//! A PXE install network as operators run one, inside one network namespace: the install
//! bridge `eno1` (the name docs/pxe.md's dnsmasq example uses) with the server address
//! 192.0.2.5/24, dnsmasq as DHCP + TFTP server with the configuration taken word for word
//! from docs/pxe.md, Python's `http.server` serving the bundle on 192.0.2.5:80, and an HA
//! bridge `ha0` with no address. VMs join both bridges through tap devices created in the
//! namespace, and QEMU itself runs in the namespace (`ip netns exec`), so nothing the nodes,
//! dnsmasq or the web server send can leave it.
//!
//! dnsmasq's `tftp-root=/srv/tftp` is honoured literally in a mount namespace of its own: a
//! tmpfs on `/srv` with the test's TFTP directory bound on `/srv/tftp`; the host's `/srv` is
//! never touched. Every process is killed by its PID when [`PxeNetwork`] is dropped, then
//! the namespace (bridges, taps) is deleted.
//!
//! For the proxy-DHCP example, [`PxeNetwork::start_site_dhcp`] adds the site's own DHCP server
//! that knows nothing of PXE: another machine on the install link, so a namespace of its own
//! joined to the install bridge by a veth pair (two dnsmasq in one namespace cannot both hold
//! UDP port 67: the proxy example, without `bind-interfaces`, binds it without SO_REUSEPORT).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Namespace;

/// The PXE/web server's address on the install bridge (docs/pxe.md's examples use it).
pub const SERVER: &str = "192.0.2.5";
/// The install bridge, named like the server NIC in docs/pxe.md's dnsmasq example.
pub const INSTALL_BRIDGE: &str = "eno1";
pub const HA_BRIDGE: &str = "ha0";
/// The site DHCP server's address (also the router it hands out) on the install link.
pub const SITE_SERVER: &str = "192.0.2.1";
/// The site's DHCP server: addresses and a router, nothing about PXE, TFTP or boot files.
const SITE_DHCP: &str = "port=0\ninterface=eth0\nbind-interfaces\n\
    dhcp-range=192.0.2.100,192.0.2.150,12h\ndhcp-option=option:router,192.0.2.1\nlog-dhcp\n";

/// The fenced block of `doc` whose first line is `first_line` (without the fences).
pub fn doc_block(doc: &str, first_line: &str) -> Result<String> {
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        if !l.starts_with("```") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        if body.first() == Some(&first_line) {
            return Ok(body.join("\n") + "\n");
        }
    }
    bail!("no code block starting with {first_line:?}")
}

/// Every ```ini block of `doc` (the dnsmasq examples).
pub fn ini_blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "```ini" {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            out.push(body.join("\n") + "\n");
        }
    }
    out
}

/// A process we started, killed by PID on drop.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct PxeNetwork {
    // Processes first: fields drop in order, so they are dead before the namespace goes.
    procs: Vec<Proc>,
    tag: String,
    taps: usize,
    /// The site DHCP server's namespace, when there is one.
    site: Option<Namespace>,
    ns: Namespace,
    logs: PathBuf,
}

impl PxeNetwork {
    /// The namespace with both bridges; no servers yet.
    pub fn create(tag: &str, logs: &Path) -> Result<PxeNetwork> {
        crate::netns::remove_stale();
        let ns = Namespace::create(tag, "pxe")?;
        ns.add_bridge(INSTALL_BRIDGE)?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{SERVER}/24"),
            "dev",
            INSTALL_BRIDGE,
        ])?;
        ns.add_bridge(HA_BRIDGE)?;
        std::fs::create_dir_all(logs)?;
        Ok(PxeNetwork {
            procs: Vec::new(),
            tag: tag.to_owned(),
            taps: 0,
            site: None,
            ns,
            logs: logs.to_owned(),
        })
    }

    /// The test's tag (names its namespace and its VMs' console logs).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// A new tap device on `bridge`; its name for QEMU's `-netdev tap,ifname=`.
    pub fn tap(&mut self, bridge: &str) -> Result<String> {
        let name = format!("tap{}", self.taps);
        self.taps += 1;
        self.ns
            .ip(&["tuntap", "add", "dev", &name, "mode", "tap"])?;
        self.ns.ip(&["link", "set", &name, "master", bridge])?;
        self.ns.ip(&["link", "set", &name, "up"])?;
        Ok(name)
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command, ready: &str) -> Result<()> {
        let log = self.logs.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.procs.push(Proc { name, child });
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(ready) {
                return Ok(());
            }
            if let Some(status) = self.procs.last_mut().unwrap().child.try_wait()? {
                bail!("{name} exited ({status}): {text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{name} did not say {ready:?} within 20 s")
    }

    /// dnsmasq with `conf` (docs/pxe.md's example as is) and `tftp_dir` as `/srv/tftp`.
    /// Only what the example cannot say is on the command line: foreground, log to stderr,
    /// and the lease and PID files in `work` instead of the host's /var/lib and /run.
    pub fn start_dnsmasq(&mut self, conf: &str, tftp_dir: &Path, work: &Path) -> Result<()> {
        let conf_file = work.join("dnsmasq.conf");
        std::fs::write(&conf_file, conf)?;
        let script = "mount -t tmpfs axoha-pxe /srv && mkdir /srv/tftp && \
            mount --bind \"$0\" /srv/tftp && exec /usr/sbin/dnsmasq --keep-in-foreground \
            --log-facility=- --conf-file=\"$1\" --dhcp-leasefile=\"$2\" --pid-file=\"$3\"";
        let mut cmd = self.ns.exec("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ])
        .arg(tftp_dir)
        .arg(&conf_file)
        .arg(work.join("dnsmasq.leases"))
        .arg(work.join("dnsmasq.pid"));
        self.spawn("dnsmasq", &mut cmd, "TFTP root is /srv/tftp")
    }

    /// The site's DHCP server (dnsmasq with [`SITE_DHCP`]: addresses and a router only) on
    /// SITE_SERVER, in a namespace of its own whose `eth0` is a port of the install bridge.
    /// Its log is `site-dhcp`.
    pub fn start_site_dhcp(&mut self, work: &Path) -> Result<()> {
        let site = Namespace::create(&self.tag, "site")?;
        crate::netns::veth(&self.ns, "site0", &site, "eth0")?;
        crate::netns::attach(&self.ns, "site0", INSTALL_BRIDGE)?;
        site.ip(&["addr", "add", &format!("{SITE_SERVER}/24"), "dev", "eth0"])?;
        let conf_file = work.join("site-dhcp.conf");
        std::fs::write(&conf_file, SITE_DHCP)?;
        let mut cmd = site.exec("/usr/sbin/dnsmasq");
        cmd.args(["--keep-in-foreground", "--log-facility=-"])
            .arg(format!("--conf-file={}", conf_file.display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                work.join("site-dhcp.leases").display()
            ))
            .arg(format!(
                "--pid-file={}",
                work.join("site-dhcp.pid").display()
            ));
        self.site = Some(site);
        self.spawn("site-dhcp", &mut cmd, "DHCP, IP range")
    }

    /// `python3 -m http.server` on SERVER:80 serving `root`. Chosen over nginx: python3 is
    /// already a test dependency, it needs no configuration file, and it sends
    /// Content-Length, which is all the installer and GRUB need; it serves far faster than a
    /// TCG guest can take the bytes.
    pub fn start_http(&mut self, root: &Path) -> Result<()> {
        let mut cmd = self.ns.exec("python3");
        cmd.args(["-u", "-m", "http.server", "--bind", SERVER, "--directory"])
            .arg(root)
            .arg("80");
        self.spawn("http", &mut cmd, "Serving HTTP")
    }

    /// What a server process logged so far (dnsmasq's DHCP/TFTP lines, HTTP requests).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Whether the servers are still running (a dead dnsmasq explains a node with no lease).
    pub fn check_servers(&mut self) -> Result<()> {
        for p in &mut self.procs {
            if let Some(status) = p.child.try_wait()? {
                bail!("{} exited ({status})", p.name);
            }
        }
        Ok(())
    }
}
