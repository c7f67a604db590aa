//! A cluster of N axoha nodes in network namespaces, for tests and the failover bench.
//!
//! Topology (all of it inside namespaces this process creates):
//!
//! ```text
//!   node i namespace                         switch namespace
//!   ha0  192.0.2.(10+i)/24      <-veth->  n{i}-ha   -- br-ha   (the HA link / VLAN)
//!   pub0 198.51.100.(10+i)/24   <-veth->  n{i}-pub  -- br-pub  (the public side; VIP 198.51.100.64/24)
//! ```
//!
//! With [`HaWiring::Cable`] (two nodes) the HA link is one veth pair straight from node 0's
//! `ha0` to node 1's `ha0`, like a direct cable: taking one end down makes both lose carrier.
//! With [`Layout::public_path`] the nodes also get `public_ip`/`public_peers` (their `pub0`
//! addresses), so VRRP runs over the public bridge as well.
//!
//! The harness plays the part of the operator and of the boot environment: it writes each node's
//! kernel command line and `/etc/axoha/cluster.toml` into a node root directory, runs
//! `axoha-firstboot apply` on it, and starts keepalived on the resulting
//! `etc/keepalived/keepalived.conf`, just as the image's units would. Node 0 is the primary.
//!
//! Faults are injected the way they happen on a real node: the health command starts failing
//! (the `healthy` file disappears), the HA link loses carrier, keepalived crashes or is stopped.
//! [`Cluster::watch`] samples which nodes hold the VIP, so a test can assert both where the VIP
//! ends up and that no two nodes held it in between.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::keepalived::{self, Keepalived};
use crate::netns::{self, Namespace};
use crate::{firstboot, require_root};

/// The virtual IP, on `pub0` of whichever node is master.
pub const VIP: &str = "198.51.100.64";
/// The sysctl drop-in `axoha-firstboot apply` writes (firstboot's `render::sysctl::PATH`).
pub const SYSCTL_FILE: &str = "etc/sysctl.d/90-axoha-vip.conf";
/// The VIP's prefix length (the public net is a /24).
pub const VIP_PREFIX: u8 = 24;
/// Virtual router id; every cluster has its own network, so all clusters may share it.
pub const VRID: u8 = 51;

/// This node's address on the HA link.
pub fn ha_ip(node: usize) -> String {
    format!("192.0.2.{}", 10 + node)
}

/// This node's own (non-virtual) address on the public side.
pub fn public_ip(node: usize) -> String {
    format!("198.51.100.{}", 10 + node)
}

/// Cluster-wide settings written to the nodes' `/etc/axoha/cluster.toml`. `None` leaves a key
/// out, so the binary's built-in default applies.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub vrrp_version: Option<u8>,
    pub advert_int: Option<f64>,
    pub health_interval: Option<u32>,
    pub health_timeout: Option<u32>,
    pub health_rise: Option<u32>,
    pub health_fall: Option<u32>,
}

impl Settings {
    /// Whatever `axoha-firstboot` defaults to: only the health command is set.
    pub fn axoha_defaults() -> Settings {
        Settings::default()
    }

    /// The timings the tests run with, stated explicitly so they do not change with the
    /// binary's defaults: VRRPv3, 0.2 s adverts, health checked every second, 2 to fall/rise.
    pub fn fast() -> Settings {
        Settings {
            vrrp_version: Some(3),
            advert_int: Some(0.2),
            health_interval: Some(1),
            health_timeout: Some(1),
            health_rise: Some(2),
            health_fall: Some(2),
        }
    }

    /// The settings of the keepalived guide: VRRPv2, 1 s adverts, health every 5 s, fall 2,
    /// rise 5.
    pub fn keepalived_guide() -> Settings {
        Settings {
            vrrp_version: Some(2),
            advert_int: Some(1.0),
            health_interval: Some(5),
            health_timeout: None,
            health_rise: Some(5),
            health_fall: Some(2),
        }
    }

    /// `cluster.toml` text with `health_command` as the `[health] command`.
    pub fn cluster_toml(&self, health_command: &str) -> String {
        let mut s = String::new();
        if let Some(v) = self.vrrp_version {
            let _ = writeln!(s, "vrrp_version = {v}");
        }
        if let Some(v) = self.advert_int {
            let _ = writeln!(s, "advert_int = {v:?}");
        }
        let _ = writeln!(s, "\n[health]\ncommand = {}", toml_string(health_command));
        for (key, value) in [
            ("interval", self.health_interval),
            ("timeout", self.health_timeout),
            ("rise", self.health_rise),
            ("fall", self.health_fall),
        ] {
            if let Some(v) = value {
                let _ = writeln!(s, "{key} = {v}");
            }
        }
        s
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// How the HA link is wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaWiring {
    /// Every node's `ha0` on the bridge `br-ha` of the switch namespace.
    Switch,
    /// Two nodes, `ha0` to `ha0` by one veth pair (a direct cable).
    Cable,
}

/// The shape of a cluster.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub nodes: usize,
    pub ha: HaWiring,
    /// Give the nodes `public_ip`/`public_peers`: a second heartbeat path over `br-pub`.
    pub public_path: bool,
}

impl Layout {
    /// `n` nodes on both bridges, the HA link as the only heartbeat path.
    pub fn ha_only(n: usize) -> Layout {
        Layout {
            nodes: n,
            ha: HaWiring::Switch,
            public_path: false,
        }
    }
}

/// A bridge of the switch namespace, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bridge {
    Ha,
    Public,
}

impl Bridge {
    /// The switch port of node `i` on this bridge (see `Cluster::wire`).
    fn port(self, i: usize) -> String {
        match self {
            Bridge::Ha => format!("n{i}-ha"),
            Bridge::Public => format!("n{i}-pub"),
        }
    }

    /// The nftables table that holds this bridge's fault rule.
    fn fault_table(self) -> &'static str {
        match self {
            Bridge::Ha => "axoha_fault_ha",
            Bridge::Public => "axoha_fault_pub",
        }
    }
}

/// One node: its namespace, its directory, and its keepalived when running.
#[derive(Debug)]
struct Node {
    // Field order is drop order: keepalived stops before its namespace goes away.
    keepalived: Option<Keepalived>,
    ns: Namespace,
    /// `<cluster dir>/node<i>`: holds `root/` (the `--root` of firstboot), `cmdline`, `healthy`
    /// and `keepalived/` (pid files and log).
    dir: PathBuf,
    /// The priority in the node's keepalived.conf, once written.
    priority: Option<u8>,
}

impl Node {
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    fn cmdline(&self) -> PathBuf {
        self.dir.join("cmdline")
    }
    fn healthy(&self) -> PathBuf {
        self.dir.join("healthy")
    }
    fn conf(&self) -> PathBuf {
        self.root().join("etc/keepalived/keepalived.conf")
    }
    fn run_dir(&self) -> PathBuf {
        self.dir.join("keepalived")
    }
}

/// N nodes on an HA bridge and a public bridge. Dropping it stops every keepalived, deletes
/// every namespace and removes the node directories.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: nodes (keepalived, then namespaces), switch, directory.
    nodes: Vec<Node>,
    switch: Namespace,
    dir: tempfile::TempDir,
    /// Number of nodes and wiring (known before they all exist, for the peers lists).
    layout: Layout,
    tag: String,
    settings: Settings,
    poll: Duration,
}

/// One observation of which nodes held the VIP, `at` after the start of a [`Cluster::watch`].
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Duration,
    pub holders: Vec<usize>,
}

/// What [`Cluster::watch`] saw.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub samples: Vec<Sample>,
    /// When the awaited condition first became true (and then held for the settle time). The
    /// VIP changed at most one poll interval plus one query before this.
    pub reached: Option<Duration>,
}

impl Trace {
    /// The longest continuous stretch during which two or more nodes held the VIP, as an upper
    /// bound (from the first sample seeing it to the first sample not seeing it).
    ///
    /// `stale` names a node whose keepalived crashed: it keeps a stale VIP that nobody announces
    /// (keepalived removes it only when it starts again), so its address is not counted until
    /// the first sample in which it is gone; from then on it counts like any other.
    pub fn longest_overlap(&self, stale: Option<usize>) -> Duration {
        let mut stale = stale;
        let mut longest = Duration::ZERO;
        let mut start: Option<Duration> = None;
        for s in &self.samples {
            if let Some(n) = stale {
                if !s.holders.contains(&n) {
                    stale = None;
                }
            }
            let count = s.holders.iter().filter(|&&h| Some(h) != stale).count();
            match (count > 1, start) {
                (true, None) => start = Some(s.at),
                (false, Some(t)) => {
                    longest = longest.max(s.at - t);
                    start = None;
                }
                _ => {}
            }
        }
        if let (Some(t), Some(last)) = (start, self.samples.last()) {
            longest = longest.max(last.at - t);
        }
        longest
    }

    /// How long the number of live holders satisfied `count_ok`, summed over the samples (each
    /// sample stands for the time until the next). `stale`: as in
    /// [`Trace::longest_overlap`], a crashed node's leftover VIP does not count until it is gone.
    pub fn time_with(&self, stale: Option<usize>, count_ok: impl Fn(usize) -> bool) -> Duration {
        let mut stale = stale;
        let mut total = Duration::ZERO;
        for pair in self.samples.windows(2) {
            let s = &pair[0];
            if stale.is_some_and(|n| !s.holders.contains(&n)) {
                stale = None;
            }
            let live = s.holders.iter().filter(|&&h| Some(h) != stale).count();
            if count_ok(live) {
                total += pair[1].at.saturating_sub(s.at);
            }
        }
        total
    }

    /// Appends the samples of a later trace taken against the same start.
    pub fn extend(&mut self, later: Trace) {
        self.samples.extend(later.samples);
    }

    /// Whether `node` was seen without the VIP at some point.
    pub fn released_by(&self, node: usize) -> bool {
        self.samples.iter().any(|s| !s.holders.contains(&node))
    }

    /// The holder sets over time, one line per change.
    pub fn changes(&self) -> String {
        let mut out = String::new();
        let mut last: Option<&Vec<usize>> = None;
        for s in &self.samples {
            if last != Some(&s.holders) {
                let _ = writeln!(out, "  {:>8.3}s  {:?}", s.at.as_secs_f64(), s.holders);
                last = Some(&s.holders);
            }
        }
        let _ = writeln!(out, "  ({} samples)", self.samples.len());
        out
    }
}

impl Cluster {
    /// Creates the namespaces, links and node directories of an `n`-node cluster. `tag` must be
    /// unique among the clusters of this process; `base` must be a root-owned directory that
    /// others cannot write (keepalived's script security checks the paths it runs).
    pub fn new(tag: &str, n: usize, settings: Settings, base: &Path) -> Result<Cluster> {
        Cluster::with_layout(tag, Layout::ha_only(n), settings, base)
    }

    /// Like [`Cluster::new`], for any [`Layout`].
    pub fn with_layout(
        tag: &str,
        layout: Layout,
        settings: Settings,
        base: &Path,
    ) -> Result<Cluster> {
        require_root()?;
        let n = layout.nodes;
        if n < 2 {
            bail!("a cluster needs at least 2 nodes, not {n}");
        }
        if layout.ha == HaWiring::Cable && n != 2 {
            bail!("a direct HA cable joins exactly 2 nodes, not {n}");
        }
        netns::remove_stale();
        fs::create_dir_all(base)?;
        remove_stale_dirs(base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("axoha-{}-{tag}-", std::process::id()))
            .tempdir_in(base)
            .with_context(|| format!("creating a directory in {}", base.display()))?;
        let switch = Namespace::create(tag, "sw")?;
        switch.add_bridge("br-ha")?;
        switch.add_bridge("br-pub")?;
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(n),
            switch,
            dir,
            layout,
            tag: tag.to_string(),
            settings,
            poll: Duration::from_millis(20),
        };
        for i in 0..n {
            let ns = Namespace::create(tag, &format!("n{i}"))?;
            let node_dir = cluster.dir.path().join(format!("node{i}"));
            let node = Node {
                keepalived: None,
                ns,
                dir: node_dir,
                priority: None,
            };
            cluster.wire(i, &node)?;
            cluster.write_inputs(i, &node)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    fn wire(&self, i: usize, node: &Node) -> Result<()> {
        let (ha_port, pub_port) = (format!("n{i}-ha"), format!("n{i}-pub"));
        let ha_addr = |ns: &Namespace, j: usize| {
            ns.ip(&["addr", "add", &format!("{}/24", ha_ip(j)), "dev", "ha0"])
        };
        match self.layout.ha {
            HaWiring::Switch => {
                netns::veth(&node.ns, "ha0", &self.switch, &ha_port)?;
                netns::attach(&self.switch, &ha_port, "br-ha")?;
                ha_addr(&node.ns, i)?;
            }
            // The cable is laid when its second end (node 1) exists.
            HaWiring::Cable if i == 1 => {
                netns::veth(&self.nodes[0].ns, "ha0", &node.ns, "ha0")?;
                ha_addr(&self.nodes[0].ns, 0)?;
                ha_addr(&node.ns, 1)?;
            }
            HaWiring::Cable => {}
        }
        netns::veth(&node.ns, "pub0", &self.switch, &pub_port)?;
        netns::attach(&self.switch, &pub_port, "br-pub")?;
        node.ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", public_ip(i)),
            "dev",
            "pub0",
        ])?;
        Ok(())
    }

    /// Writes the node's kernel command line, its `/etc/axoha/cluster.toml` and the `healthy`
    /// file its health command tests for.
    fn write_inputs(&self, i: usize, node: &Node) -> Result<()> {
        fs::create_dir_all(node.root().join("etc/axoha"))?;
        fs::write(node.cmdline(), self.cmdline(i))?;
        let health = format!("/usr/bin/test -e {}", node.healthy().display());
        fs::write(
            node.root().join("etc/axoha/cluster.toml"),
            self.settings.cluster_toml(&health),
        )?;
        fs::write(node.healthy(), "")?;
        Ok(())
    }

    /// The kernel command line of node `i`, with the usual non-axoha parameters around it.
    pub fn cmdline(&self, i: usize) -> String {
        let others = || (0..self.layout.nodes).filter(move |&p| p != i);
        let peers: Vec<String> = others().map(ha_ip).collect();
        let role = if i == 0 { "primary" } else { "secondary" };
        let public = if self.layout.public_path {
            let public_peers: Vec<String> = others().map(public_ip).collect();
            format!(
                " axoha.public_ip={}/24 axoha.public_peers={}",
                public_ip(i),
                public_peers.join(",")
            )
        } else {
            String::new()
        };
        format!(
            "BOOT_IMAGE=/vmlinuz root=LABEL=root ro console=ttyS0 axoha.role={role} \
             axoha.ha_ip={}/24 axoha.peers={} axoha.vip={VIP}/{VIP_PREFIX} axoha.ha_if=ha0 \
             axoha.vip_if=pub0 axoha.vrid={VRID}{public} quiet\n",
            ha_ip(i),
            peers.join(",")
        )
    }

    /// The tag this cluster was created with (for labelling output of parallel tests).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The directory holding every node's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets how often [`Cluster::watch`] samples (default 20 ms).
    pub fn set_poll(&mut self, poll: Duration) {
        self.poll = poll;
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> &Namespace {
        &self.nodes[i].ns
    }

    /// Node `i`'s keepalived.conf path.
    pub fn conf_path(&self, i: usize) -> PathBuf {
        self.nodes[i].conf()
    }

    /// Node `i`'s root directory (the `--root` given to firstboot).
    pub fn root(&self, i: usize) -> PathBuf {
        self.nodes[i].root()
    }

    /// Runs `axoha-firstboot apply --no-start` for every node and records the priorities of the
    /// written configs; then does what the node's boot does with the files: applies the
    /// sysctl drop-in in the node's namespace (systemd-sysctl) and makes the drain file's
    /// runtime directory (keepalived's `RuntimeDirectory`).
    pub fn apply(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            firstboot::apply(&node.root(), &node.cmdline())?;
            let sysctl = node.root().join(SYSCTL_FILE);
            crate::run(node.ns.exec("sysctl").arg("-q").arg("-p").arg(&sysctl))
                .with_context(|| format!("applying {}", sysctl.display()))?;
            fs::create_dir_all(node.root().join("run/axoha"))?;
            let conf = fs::read_to_string(node.conf()).with_context(|| {
                format!(
                    "axoha-firstboot apply did not write {}",
                    node.conf().display()
                )
            })?;
            node.priority = Some(priority_of(&conf)?);
        }
        Ok(())
    }

    /// Writes the hand-written reference config of the design instead of running firstboot:
    /// proves the harness (namespaces, keepalived, sampling) independently of the binary.
    pub fn apply_reference(&mut self) -> Result<()> {
        let n = self.nodes.len();
        for i in 0..n {
            let conf = reference_config(i, n, &self.settings, &self.nodes[i].healthy());
            let node = &mut self.nodes[i];
            fs::create_dir_all(node.conf().parent().expect("conf has a parent"))?;
            fs::write(node.conf(), &conf)?;
            node.priority = Some(priority_of(&conf)?);
        }
        Ok(())
    }

    /// A namespace `name` on the public bridge with address `ip`/24, for a client of the VIP.
    pub fn add_client(&self, name: &str, ip: &str) -> Result<Namespace> {
        let ns = Namespace::create(&self.tag, name)?;
        let port = format!("{name}-pub");
        netns::veth(&ns, "pub0", &self.switch, &port)?;
        netns::attach(&self.switch, &port, "br-pub")?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "pub0"])?;
        Ok(ns)
    }

    /// `sysctl -n KEY` in node `i`'s namespace.
    pub fn sysctl(&self, i: usize, key: &str) -> Result<String> {
        Ok(
            crate::run(self.nodes[i].ns.exec("sysctl").args(["-n", key]))?
                .trim()
                .to_owned(),
        )
    }

    /// `axoha-firstboot SUB --root ROOT --cmdline CMDLINE EXTRA...` in node `i`'s namespace
    /// (it hears the node's heartbeat paths there); the whole output, whatever the exit code.
    pub fn firstboot(&self, i: usize, sub: &str, extra: &[&str]) -> Result<std::process::Output> {
        self.firstboot_command(i, sub, extra)?
            .output()
            .with_context(|| format!("running axoha-firstboot {sub} on node {i}"))
    }

    /// The command [`Cluster::firstboot`] runs, for callers that spawn it.
    pub fn firstboot_command(&self, i: usize, sub: &str, extra: &[&str]) -> Result<Command> {
        let node = &self.nodes[i];
        let bin = firstboot::binary()?;
        let bin = bin.to_str().context("firstboot path is not UTF-8")?;
        let mut cmd = node.ns.exec(bin);
        cmd.arg(sub)
            .arg("--root")
            .arg(node.root())
            .arg("--cmdline")
            .arg(node.cmdline())
            .args(extra);
        Ok(cmd)
    }

    /// What a node's reboot does to what the harness runs: keepalived stops, `/run/axoha` (a
    /// tmpfs on a node) is emptied; [`Cluster::start`] boots it again.
    pub fn shut_down(&mut self, i: usize) -> Result<()> {
        self.stop(i)?;
        let run = self.nodes[i].root().join("run/axoha");
        fs::remove_dir_all(&run)?;
        fs::create_dir_all(&run)?;
        Ok(())
    }

    /// `axoha-firstboot render` for node `i`.
    pub fn render(&self, i: usize) -> Result<String> {
        firstboot::render(&self.nodes[i].root(), &self.nodes[i].cmdline())
    }

    /// `axoha-firstboot status --json` run inside node `i`'s namespace (it listens for adverts
    /// on the node's interfaces there).
    pub fn status_json(&self, i: usize) -> Result<String> {
        self.status(i, &["--json"])
    }

    /// `axoha-firstboot status EXTRA...` run inside node `i`'s namespace.
    pub fn status(&self, i: usize, extra: &[&str]) -> Result<String> {
        let node = &self.nodes[i];
        let bin = firstboot::binary()?;
        let bin = bin.to_str().context("firstboot path is not UTF-8")?;
        crate::run(
            node.ns
                .exec(bin)
                .arg("status")
                .args(extra)
                .arg("--root")
                .arg(node.root())
                .arg("--cmdline")
                .arg(node.cmdline()),
        )
    }

    /// Starts `axoha-firstboot watch` in node `i`'s namespace, its output in a log file.
    #[allow(unsafe_code)]
    pub fn watch_paths(&self, i: usize) -> Result<PathWatch> {
        let node = &self.nodes[i];
        let log_path = node.dir.join("watch.log");
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let bin = firstboot::binary()?;
        let bin = bin.to_str().context("firstboot path is not UTF-8")?;
        let mut cmd = node.ns.exec(bin);
        cmd.args(["watch", "--root"])
            .arg(node.root())
            .arg("--cmdline")
            .arg(node.cmdline())
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Dies with this process even if no guard runs.
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe after fork.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().context("spawning axoha-firstboot watch")?;
        Ok(PathWatch { child, log_path })
    }

    /// Priority of node `i` from its written keepalived.conf.
    pub fn priority(&self, i: usize) -> Option<u8> {
        self.nodes[i].priority
    }

    /// The node that should take the VIP when `failed` loses it: the highest priority of the
    /// others.
    pub fn successor(&self, failed: usize) -> usize {
        (0..self.nodes.len())
            .filter(|&i| i != failed)
            .max_by_key(|&i| self.nodes[i].priority)
            .expect("a cluster has at least two nodes")
    }

    /// Starts keepalived on node `i` (the node must not be running it).
    pub fn start(&mut self, i: usize) -> Result<()> {
        if let Some(mut k) = self.nodes[i].keepalived.take() {
            if k.is_running() {
                self.nodes[i].keepalived = Some(k);
                bail!("keepalived is already running on node {i}");
            }
        }
        let node = &self.nodes[i];
        match Keepalived::start(&node.ns, &node.conf(), &node.run_dir()) {
            Ok(k) => {
                self.nodes[i].keepalived = Some(k);
                Ok(())
            }
            Err(e) => Err(e.context(format!("starting keepalived on node {i}\n{}", self.logs()))),
        }
    }

    /// The process id of node `i`'s keepalived parent, while it runs.
    pub fn keepalived_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i]
            .keepalived
            .as_ref()
            .map(|k| k.pid().as_raw() as u32)
    }

    /// Starts keepalived on every node, primary first.
    pub fn start_all(&mut self) -> Result<()> {
        (0..self.nodes.len()).try_for_each(|i| self.start(i))
    }

    /// SIGKILLs both keepalived processes of node `i` (see [`Keepalived::crash`]).
    pub fn crash(&mut self, i: usize) -> Result<()> {
        match self.nodes[i].keepalived.as_mut() {
            Some(k) => k.crash(),
            None => bail!("keepalived is not running on node {i}"),
        }
    }

    /// Sends SIGTERM to node `i`'s keepalived and returns at once (for timing).
    pub fn terminate(&mut self, i: usize) -> Result<()> {
        let Some(k) = self.nodes[i].keepalived.as_ref() else {
            bail!("keepalived is not running on node {i}");
        };
        k.terminate();
        Ok(())
    }

    /// Stops node `i`'s keepalived gracefully and waits for it (a no-op when it is not running).
    pub fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(mut k) = self.nodes[i].keepalived.take() {
            if k.is_running() {
                k.stop(Duration::from_secs(10))?;
            }
        }
        Ok(())
    }

    /// Makes node `i`'s health command succeed or fail.
    pub fn set_healthy(&self, i: usize, healthy: bool) -> Result<()> {
        let path = self.nodes[i].healthy();
        if healthy {
            fs::write(&path, "")?;
        } else if path.exists() {
            fs::remove_file(&path)?;
        }
        Ok(())
    }

    /// Sets node `i`'s HA interface down (carrier lost on both ends) or up.
    pub fn set_ha_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.nodes[i].ns.ip(&["link", "set", "ha0", state])?;
        Ok(())
    }

    /// Sets node `i`'s VIP interface (`pub0`) down or up.
    pub fn set_vip_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.nodes[i].ns.ip(&["link", "set", "pub0", state])?;
        Ok(())
    }

    /// Makes `bridge` silently drop (or forward again) IP protocol 112, like a switch that
    /// filters VRRP: an nftables `bridge` table in the switch namespace, deleted to repair.
    pub fn drop_vrrp(&self, bridge: Bridge, drop: bool) -> Result<()> {
        let table = bridge.fault_table();
        // Matched by input port: this kernel's nftables cannot match the bridge itself
        // (`meta ibrname` is "not supported").
        let ports: Vec<String> = (0..self.layout.nodes)
            .map(|i| format!("\"{}\"", bridge.port(i)))
            .collect();
        let script = if drop {
            format!(
                "table bridge {table} {{\n  chain forward {{\n    type filter hook forward \
                 priority 0; policy accept;\n    iifname {{ {} }} ip protocol 112 drop\n  \
                 }}\n}}\n",
                ports.join(", ")
            )
        } else {
            format!("delete table bridge {table}\n")
        };
        let file = self.dir().join(format!("{table}.nft"));
        fs::write(&file, &script)?;
        crate::run(self.switch.exec("nft").arg("-f").arg(&file))
            .with_context(|| format!("nft in {}:\n{script}", self.switch.name()))?;
        Ok(())
    }

    /// Samples the VIP holders every poll interval for `duration` (times from `since`),
    /// whatever they are: for faults that must change nothing.
    pub fn observe(&self, since: Instant, duration: Duration) -> Result<Trace> {
        let mut trace = Trace::default();
        let start = Instant::now();
        while start.elapsed() < duration {
            let tick = Instant::now();
            let holders = self.vip_holders()?;
            trace.samples.push(Sample {
                at: since.elapsed(),
                holders,
            });
            sleep(self.poll.saturating_sub(tick.elapsed()));
        }
        Ok(trace)
    }

    /// The nodes that have the VIP on `pub0` now, in ascending order. The nodes are queried in
    /// parallel so one sample costs about one `ip` run.
    pub fn vip_holders(&self) -> Result<Vec<usize>> {
        let children = self
            .nodes
            .iter()
            .map(|n| {
                n.ns.ip_command(&["-o", "-4", "addr", "show", "dev", "pub0"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<std::io::Result<Vec<_>>>()
            .context("spawning ip addr show")?;
        let needle = format!("inet {VIP}/");
        let mut holders = Vec::new();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "ip addr show in node {i} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if String::from_utf8_lossy(&out.stdout).contains(&needle) {
                holders.push(i);
            }
        }
        Ok(holders)
    }

    /// Samples the VIP holders every poll interval until `until(holders)` has been true for
    /// `settle` (so a flap right after the transition is caught too), or fails after `timeout`
    /// with the trace and every node's keepalived log. Sample times are measured from `since`
    /// (e.g. the moment a fault was injected), taken after each query completes.
    pub fn watch(
        &self,
        what: &str,
        since: Instant,
        until: impl Fn(&[usize]) -> bool,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Trace> {
        let mut trace = Trace::default();
        let mut true_since: Option<Duration> = None;
        loop {
            let tick = Instant::now();
            let holders = self.vip_holders()?;
            let at = since.elapsed();
            let ok = until(&holders);
            trace.samples.push(Sample { at, holders });
            match (ok, true_since) {
                (true, None) => true_since = Some(at),
                (false, Some(_)) => true_since = None,
                _ => {}
            }
            if let Some(t) = true_since {
                if at - t >= settle {
                    trace.reached = Some(t);
                    return Ok(trace);
                }
            }
            if at > timeout {
                bail!(
                    "timed out after {timeout:?} waiting for: {what}\nVIP holders seen:\n{}\n{}",
                    trace.changes(),
                    self.logs()
                );
            }
            sleep(self.poll.saturating_sub(tick.elapsed()));
        }
    }

    /// Every node's keepalived.conf priority and the tail of its keepalived log, for failure
    /// messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "----- node {i} ({}, priority {:?}) keepalived log tail -----\n{}",
                node.ns.name(),
                node.priority,
                keepalived::tail(&node.run_dir().join("keepalived.log"), 25)
            );
        }
        out
    }
}

/// A running `axoha-firstboot watch`, stopped (by its PID) when dropped.
#[derive(Debug)]
pub struct PathWatch {
    child: std::process::Child,
    log_path: PathBuf,
}

impl PathWatch {
    /// What it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for PathWatch {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop every daemon before any namespace goes away (the field drops do the rest).
        for node in &mut self.nodes {
            node.keepalived = None;
        }
    }
}

/// Removes `axoha-<pid>-*` directories in `base` left by test processes that were killed before
/// their guards ran (their PID no longer exists).
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("axoha-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The `priority N` of a keepalived.conf.
pub fn priority_of(conf: &str) -> Result<u8> {
    conf.lines()
        .find_map(|l| l.trim().strip_prefix("priority "))
        .context("keepalived.conf has no priority")?
        .trim()
        .parse()
        .context("keepalived.conf priority is not a number")
}

/// The timing settings a keepalived.conf actually uses, e.g. `v3, advert 0.2 s, health every
/// 1 s (fall 2, rise 2)`; `?` where a keyword is absent (keepalived's own default then).
pub fn timing_summary(conf: &str) -> String {
    let get = |key: &str| {
        conf.lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(key)).then(|| words.next().unwrap_or("?").to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "v{}, advert {} s, health every {} s (fall {}, rise {})",
        get("vrrp_version"),
        get("advert_int"),
        get("interval"),
        get("fall"),
        get("rise")
    )
}

/// The keepalived.conf of the design document, written by hand: node 0 primary with priority
/// 254, the others 254 - 50 * i.
pub fn reference_config(i: usize, n: usize, settings: &Settings, healthy: &Path) -> String {
    let fast = Settings::fast();
    let get = |a: Option<u32>, b: Option<u32>| a.or(b).expect("fast() sets every value");
    let peers: String = (0..n)
        .filter(|&p| p != i)
        .map(|p| format!("        {}\n", ha_ip(p)))
        .collect();
    format!(
        "global_defs {{
    router_id node{i}
    script_user root
    enable_script_security
    vrrp_version {version}
}}
vrrp_script axoha_health {{
    script \"/usr/bin/test -e {healthy}\"
    interval {interval}
    timeout {timeout}
    rise {rise}
    fall {fall}
}}
vrrp_instance axoha {{
    state {state}
    interface ha0
    virtual_router_id {VRID}
    priority {priority}
    advert_int {advert}
    unicast_src_ip {src}
    unicast_peer {{
{peers}    }}
    virtual_ipaddress {{
        {VIP}/{VIP_PREFIX} dev pub0
    }}
    track_interface {{
        pub0
    }}
    track_script {{
        axoha_health
    }}
}}
",
        version = settings.vrrp_version.or(fast.vrrp_version).unwrap_or(3),
        healthy = healthy.display(),
        interval = get(settings.health_interval, fast.health_interval),
        timeout = get(settings.health_timeout, fast.health_timeout),
        rise = get(settings.health_rise, fast.health_rise),
        fall = get(settings.health_fall, fast.health_fall),
        state = if i == 0 { "MASTER" } else { "BACKUP" },
        priority = 254 - 50 * i,
        advert = settings.advert_int.or(fast.advert_int).unwrap_or(1.0),
        src = ha_ip(i),
    )
}

/// Where node directories go for tests: `CARGO_TARGET_TMPDIR`-like `<target>/tmp`, which is
/// root-owned and 0755 (unlike `/tmp`, which keepalived's script security rejects as a path
/// component writable by others).
pub fn default_base_dir() -> Result<PathBuf> {
    Ok(firstboot::target_dir()?.join("tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(samples: &[(u64, &[usize])]) -> Trace {
        Trace {
            samples: samples
                .iter()
                .map(|&(ms, h)| Sample {
                    at: Duration::from_millis(ms),
                    holders: h.to_vec(),
                })
                .collect(),
            reached: None,
        }
    }

    #[test]
    fn overlap_is_measured_from_first_to_first_clean_sample() {
        let t = trace(&[
            (0, &[1]),
            (20, &[0, 1]),
            (40, &[0, 1]),
            (60, &[0]),
            (80, &[0]),
        ]);
        assert_eq!(t.longest_overlap(None), Duration::from_millis(40));
        assert_eq!(
            trace(&[(0, &[0]), (20, &[1])]).longest_overlap(None),
            Duration::ZERO
        );
    }

    #[test]
    fn stale_vip_is_ignored_until_it_is_gone() {
        // Crash: node 0 keeps its stale VIP while node 1 takes over.
        let crash = trace(&[(0, &[0]), (20, &[0]), (40, &[0, 1]), (60, &[0, 1])]);
        assert_eq!(crash.longest_overlap(Some(0)), Duration::ZERO);
        assert_eq!(crash.longest_overlap(None), Duration::from_millis(20));
        // Restart: stale VIP removed, then node 0 preempts with a 20 ms overlap, which counts.
        let restart = trace(&[(0, &[0, 1]), (20, &[1]), (40, &[0, 1]), (60, &[0])]);
        assert_eq!(restart.longest_overlap(Some(0)), Duration::from_millis(20));
        assert!(restart.released_by(0));
        // Two live holders besides the stale one is split brain.
        let split = trace(&[(0, &[0, 1, 2]), (20, &[0, 1])]);
        assert_eq!(split.longest_overlap(Some(0)), Duration::from_millis(20));
    }

    #[test]
    fn time_with_sums_the_intervals_of_matching_samples() {
        let t = trace(&[(0, &[0]), (20, &[]), (60, &[0, 1]), (70, &[1]), (100, &[1])]);
        assert_eq!(t.time_with(None, |n| n == 0), Duration::from_millis(40));
        assert_eq!(t.time_with(None, |n| n >= 2), Duration::from_millis(10));
        // Crash: node 0's stale VIP is not a holder until it is gone.
        let crash = trace(&[(0, &[0]), (20, &[0]), (40, &[0, 1]), (60, &[1])]);
        assert_eq!(
            crash.time_with(Some(0), |n| n == 0),
            Duration::from_millis(40)
        );
        assert_eq!(crash.time_with(Some(0), |n| n >= 2), Duration::ZERO);
    }

    #[test]
    fn cluster_toml_leaves_out_unset_keys() {
        let toml = Settings::axoha_defaults().cluster_toml("/usr/bin/test -e \"/x\"");
        assert_eq!(
            toml,
            "\n[health]\ncommand = \"/usr/bin/test -e \\\"/x\\\"\"\n"
        );
        let toml = Settings::fast().cluster_toml("true");
        assert!(
            toml.starts_with("vrrp_version = 3\nadvert_int = 0.2\n"),
            "{toml}"
        );
        assert!(
            toml.ends_with("interval = 1\ntimeout = 1\nrise = 2\nfall = 2\n"),
            "{toml}"
        );
    }

    #[test]
    fn timing_summary_reads_the_config() {
        let conf = reference_config(0, 2, &Settings::fast(), Path::new("/h"));
        assert_eq!(
            timing_summary(&conf),
            "v3, advert 0.2 s, health every 1 s (fall 2, rise 2)"
        );
        assert_eq!(priority_of(&conf).unwrap(), 254);
    }
}
