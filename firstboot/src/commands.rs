//! The subcommands, each from a plain options struct.

use anyhow::Result;

use crate::apply::{apply_files, configured_elsewhere, network_backend, start_services};
use crate::config::{spelled, NodeConfig};
use crate::log;
use crate::metadata::Resolved;
use crate::render::network::Link;
use crate::render::{self, keepalived, RenderedFile, STAMP};
use crate::sources::SourcePaths;
use axoha_root::RootDir;

/// Held while a run writes: two runs at once never interleave their files or stamps.
const LOCK: &str = "var/lib/axoha/firstboot.lock";

/// Why a command failed; each maps to its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad or missing metadata; nothing was written.
    #[error("invalid metadata: {0:#}")]
    Metadata(anyhow::Error),
    /// Writing the files failed; the stamp is absent, so keepalived and axorouter do not
    /// start on whatever set is on disk.
    #[error("writing the node configuration failed: {0:#}")]
    Write(anyhow::Error),
    /// The files are in place but a service did not start.
    #[error("{0:#}")]
    Start(anyhow::Error),
    /// `status` could not read the node's state.
    #[error("status: {0:#}")]
    Status(anyhow::Error),
    /// `health`: still unhealthy when the wait ended (the one line says what).
    #[error("{0}")]
    Unhealthy(String),
    /// `drain`, `reboot`: refused, nothing changed (the line says why).
    #[error("{0}")]
    Refused(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Metadata(_) => 1,
            Failure::Write(_) => 3,
            Failure::Start(_) => 4,
            Failure::Status(_) => 5,
            Failure::Unhealthy(_) => 6,
            Failure::Refused(_) => 7,
        }
    }
}

/// Everything a node would get, computed without writing anything.
pub struct Plan {
    pub resolved: Resolved,
    pub config: NodeConfig,
    pub files: Vec<RenderedFile>,
}

pub fn plan(paths: &SourcePaths) -> Result<Plan, Failure> {
    let root = paths.open_root().map_err(Failure::Metadata)?;
    plan_in(paths, &root)
}

fn plan_in(paths: &SourcePaths, root: &RootDir) -> Result<Plan, Failure> {
    let resolved = paths.resolve_in(root).map_err(Failure::Metadata)?;
    let config = NodeConfig::from_resolved(&resolved)
        .map_err(|p| Failure::Metadata(anyhow::Error::new(p)))?;
    if config.public.is_none() {
        log::warn(&format!(
            "the HA link ({}) is the only heartbeat path: a fault of it causes an outage (a \
             pulled direct cable: both nodes drop the VIP) or split brain (a switch dropping \
             VRRP: both take it); set public_ip and public_peers to send VRRP over {} as well",
            config.ha_if, config.vip_if
        ));
    }
    let network = network_backend(root);
    let mut links = Vec::new();
    if network.is_some() {
        for (link, name) in [(Link::Ha, &config.ha_if), (Link::Vip, &config.vip_if)] {
            match configured_elsewhere(root, name.as_str()) {
                Some(other) => log::info(&format!(
                    "{name} is already configured by {}; writing no network config for it",
                    other.display()
                )),
                None => links.push(link),
            }
        }
    }
    let notify = root.is_file(keepalived::NOTIFY_SCRIPT.trim_start_matches('/'));
    // keepalived reads the drain files at their host paths: under a test root, there.
    let at = std::path::absolute(&paths.root).unwrap_or_else(|_| paths.root.clone());
    let files = render::render_all(&config, &resolved, network, &links, notify, &at);
    Ok(Plan {
        resolved,
        config,
        files,
    })
}

fn summary(config: &NodeConfig) -> String {
    let second = match &config.public {
        Some(p) => format!(", heartbeat also from {} on {}", p.ip, config.vip_if),
        None => String::new(),
    };
    format!(
        "{} {} (priority {}, vrid {}, VRRPv{}), HA {} on {}, VIP {} on {}{second}",
        config.router_id(),
        config.role,
        config.priority,
        config.vrid,
        config.vrrp.version(),
        config.ha_ip,
        config.ha_if,
        config.vip,
        config.vip_if
    )
}

pub struct ApplyOptions {
    pub sources: SourcePaths,
    pub no_start: bool,
    pub force: bool,
    /// Run by the boot unit (it sets AXOHA_BOOT=1).
    pub at_boot: bool,
}

fn configured_already(root: &RootDir) -> bool {
    let done = root.exists(STAMP);
    if done {
        log::info(&format!(
            "{} exists: this node was configured already (use --force to run again)",
            root.shown(STAMP).display()
        ));
    }
    done
}

pub fn apply(opts: &ApplyOptions) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let root = &opts.sources.open_root().map_err(Failure::Metadata)?;
    if !opts.force && configured_already(root) {
        return Ok(());
    }
    let plan = plan_in(&opts.sources, root)?;
    // Only now, with metadata known to be good, is anything created under the root.
    let _lock = root
        .lock(LOCK)
        .map_err(|e| Failure::Write(e.context("nothing was changed")))?;
    // Another run may have finished while we waited for the lock.
    if !opts.force && configured_already(root) {
        return Ok(());
    }
    // The stamp goes first: from here until the new set is complete, keepalived and
    // axorouter (gated on it) do not start at boot, whatever happens to this run.
    root.remove_file(STAMP).map_err(|e| {
        Failure::Write(e.context("removing the first-boot stamp failed; nothing was changed"))
    })?;
    for (key, s) in plan.resolved.iter() {
        let shown = if key.is_secret() {
            "<redacted>"
        } else {
            &s.value
        };
        log::info(&format!(
            "{} = {shown:?} from {}",
            spelled(*key, s.source),
            s.source
        ));
    }
    let stamp_text = format!(
        "# axoha-firstboot ran; remove this file or use --force to run again\n{}\n",
        summary(&plan.config)
    );
    apply_files(root, &plan.files, &stamp_text).map_err(|e| {
        Failure::Write(anyhow::anyhow!(
            "{e:#}; there is no first-boot stamp, so keepalived and axorouter do not start at \
             boot until a run succeeds"
        ))
    })?;
    if opts.sources.is_live() {
        // The file is in place (systemd-sysctl applies it at the next boot): a failure here
        // is worth a warning, not a failed first boot.
        if let Err(e) = crate::apply::apply_sysctl(&plan.config) {
            log::warn(&format!("{e:#}; applied at the next boot"));
        }
        // /etc/hostname takes effect at the next boot; the console and logs should show
        // the node's name from now on. `Hostname` holds only names the kernel takes (RFC 1123,
        // at most 64 bytes), checked with the metadata; what remains (no CAP_SYS_ADMIN in a
        // container) must not turn a complete, stamped set into a failed run.
        let name = plan.config.node_name();
        if let Err(e) = nix::unistd::sethostname(name.as_str()) {
            log::warn(&format!(
                "could not set the running host name to {name} ({e}); /etc/hostname has it \
                 from the next boot"
            ));
        }
    }
    if plan.config.basics.ntp.is_none() {
        log::info("no ntp servers in the metadata: this node's clock is not synchronised");
    }
    if opts.no_start {
        log::info("--no-start: not starting keepalived and axorouter");
    } else if !opts.sources.is_live() {
        log::info("--root given: not starting services of another root");
    } else if opts.at_boot {
        // At boot both units are enabled and ordered after this one: systemd starts them as
        // soon as we exit (both only now that the stamp exists, their drop-ins' condition).
        // Asking PID 1 to start them from here would only add a D-Bus round trip to the boot.
        log::info("keepalived and axorouter start when this unit finishes");
    } else {
        start_services().map_err(Failure::Start)?;
        log::info("keepalived and axorouter are active");
    }
    log::outcome(
        true,
        &format!(
            "configured {} in {} ms",
            summary(&plan.config),
            started.elapsed().as_millis()
        ),
    );
    Ok(())
}

pub fn render(sources: &SourcePaths, explain: bool) -> Result<String, Failure> {
    let plan = plan(sources)?;
    let mut out = String::new();
    if explain {
        out.push_str("# resolved metadata (key = value  <- source)\n");
        for (key, (value, source)) in crate::config::explain(&plan.resolved) {
            out.push_str(&format!("# {key} = {value}  <- {source}\n"));
        }
        out.push_str(&format!(
            "# derived: priority = {}, router_id = {}\n\n",
            plan.config.priority,
            plan.config.router_id()
        ));
    }
    let conf = plan
        .files
        .iter()
        .find(|f| f.path == render::KEEPALIVED_CONF)
        .expect("render_all always renders keepalived.conf");
    out.push_str(&conf.contents);
    Ok(out)
}

pub fn check(sources: &SourcePaths) -> Result<String, Failure> {
    plan(sources).map(|p| summary(&p.config))
}

/// The node's config from its sources, without rendering anything.
fn node_config(sources: &SourcePaths) -> Result<NodeConfig, Failure> {
    let resolved = sources.resolve().map_err(Failure::Metadata)?;
    NodeConfig::from_resolved(&resolved).map_err(|p| Failure::Metadata(anyhow::Error::new(p)))
}

/// `watch`: logs heartbeat paths lost and back until stopped (see `watch`).
pub fn watch(sources: &SourcePaths) -> Result<(), Failure> {
    let config = node_config(sources)?;
    crate::watch::run(&config).map_err(Failure::Status)
}

/// `status`: the node's config from its sources, then what it does now (see `status`).
pub fn status(args: &crate::cli::StatusArgs) -> Result<String, Failure> {
    let sources = SourcePaths::from(&args.sources);
    let config = node_config(&sources)?;
    let run_dir = crate::status::RunDir::open(&sources.root, args.run_dir.as_deref())
        .map_err(Failure::Status)?;
    let listen = args
        .listen_ms
        .map(std::time::Duration::from_millis)
        .unwrap_or_else(|| crate::status::four_adverts(&config));
    let drain = sources
        .open_root()
        .ok()
        .and_then(|root| crate::drain::read(&root).ok());
    let s = crate::status::gather(&config, &run_dir, listen, drain).map_err(Failure::Status)?;
    if args.json {
        let mut text =
            serde_json::to_string_pretty(&s).map_err(|e| Failure::Status(anyhow::Error::new(e)))?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(crate::status::render(&s))
    }
}

impl From<&crate::cli::SourceArgs> for SourcePaths {
    fn from(a: &crate::cli::SourceArgs) -> Self {
        SourcePaths {
            root: a.root.clone(),
            cmdline: a.cmdline.clone(),
            seed: a.seed.clone(),
            instance_data: a.instance_data.clone(),
            config_drive: a.config_drive.clone(),
            metadata_url: a.metadata_url.clone(),
            metadata_wait: a.metadata_wait.map(std::time::Duration::from_secs),
            metadata_links: a.metadata_links,
        }
    }
}

/// `health`: looks at the node until it is healthy or `--wait` has passed (see `health`).
/// `Ok`: the healthy summary.
pub fn health(args: &crate::cli::HealthArgs) -> Result<String, Failure> {
    let root = axoha_root::RootDir::open(&args.root)
        .map_err(|e| Failure::Unhealthy(format!("unhealthy: {e:#}")))?;
    let run_dir = crate::status::RunDir::open(&args.root, args.run_dir.as_deref())
        .map_err(|e| Failure::Unhealthy(format!("unhealthy: {e:#}")))?;
    crate::health::wait(
        std::time::Duration::from_secs(args.wait),
        crate::health::POLL,
        || crate::health::observe(&root, &run_dir),
        std::thread::sleep,
    )
    .map_err(Failure::Unhealthy)
}

/// The node's config and its root, for the pair's commands.
fn node(sources: &crate::cli::SourceArgs) -> Result<(NodeConfig, RootDir), Failure> {
    let sources = SourcePaths::from(sources);
    let config = node_config(&sources)?;
    let root = sources.open_root().map_err(Failure::Status)?;
    Ok((config, root))
}

/// `drain`: see `handover::drain`.
pub fn drain(args: &crate::cli::DrainArgs) -> Result<String, Failure> {
    let (config, root) = node(&args.sources)?;
    crate::handover::drain(&config, &root, args.force)
        .map_err(Failure::Status)?
        .map_err(Failure::Refused)
}

/// `undrain`.
pub fn undrain(sources: &crate::cli::SourceArgs) -> Result<String, Failure> {
    let (_, root) = node(sources)?;
    crate::handover::undrain(&root).map_err(Failure::Status)
}

/// `reboot`: the reboot gate, then `systemctl reboot` (or nothing with `--no-reboot`). Every
/// reboot axoha starts on a node goes through here (`axoha-update apply --reboot` runs this
/// command). A node without a readable configuration is not in a pair yet (first boot never
/// succeeded): it reboots at once.
pub fn reboot(args: &crate::cli::RebootArgs) -> Result<(), Failure> {
    let wait = std::time::Duration::from_secs(args.wait);
    let no_reboot = args.no_reboot;
    let act = || {
        if no_reboot {
            log::info("--no-reboot: not rebooting");
            Ok(())
        } else {
            crate::handover::systemctl_reboot()
        }
    };
    let (config, root) = match node(&args.sources) {
        Ok(node) => node,
        Err(Failure::Metadata(e)) => {
            log::warn(&format!(
                "no node configuration ({e:#}): rebooting without a peer check"
            ));
            return act().map_err(Failure::Status);
        }
        Err(e) => return Err(e),
    };
    crate::handover::reboot_when_peer_ready(&config, &root, wait, act)
        .map_err(|e| Failure::Refused(format!("{e:#}")))
}
