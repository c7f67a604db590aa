//! The I/O edge of the pair's operations: `drain`, `undrain` and the reboot gate. One
//! [`look`] reads the node (does it hold the VIP, its drain files) and listens for adverts for
//! four advert intervals; the decisions are `pair`'s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::NodeConfig;
use crate::drain::{self, DRAIN_FILE, REBOOT_DRAIN_FILE};
use crate::log;
use crate::pair::{self, DrainStep, Look, RebootStep};
use crate::status;
use axoha_root::RootDir;

/// How many looks a handover may take: keepalived's master-down interval is about three
/// adverts and a look listens for four, so a healthy peer has taken the VIP by the second.
const HANDOVER_LOOKS: u32 = 4;

/// The addresses this node's peers advertise from, on either heartbeat path.
fn peer_addresses(config: &NodeConfig) -> Vec<std::net::IpAddr> {
    let mut peers: Vec<_> = config.peers.iter().copied().collect();
    if let Some(public) = &config.public {
        peers.extend(public.peers.iter().copied());
    }
    peers
}

/// One look at the node: the VIP on vip_if, the drain files, the adverts of four intervals.
pub fn look(config: &NodeConfig, root: &RootDir) -> Result<Look> {
    let adverts = status::listen(config, status::four_adverts(config))?;
    let holds_vip = status::holds_vip(config)
        .with_context(|| format!("cannot read the addresses of {}", config.vip_if))?;
    let heard: Vec<_> = adverts.iter().map(|a| (a.from, a.priority)).collect();
    Ok(Look {
        holds_vip,
        drain: drain::read(root)?,
        peer: pair::best_peer(&heard, &peer_addresses(config)),
    })
}

/// Waits (look after look) until this node no longer holds the VIP and hears the peer that
/// took it; `Err` with what was seen last when that did not happen in `HANDOVER_LOOKS` looks.
fn await_handover(
    config: &NodeConfig,
    root: &RootDir,
) -> Result<std::result::Result<String, String>> {
    let start = Instant::now();
    let mut last = String::new();
    for _ in 0..HANDOVER_LOOKS {
        let l = look(config, root)?;
        match (l.holds_vip, l.peer) {
            (false, Some(p)) => {
                return Ok(Ok(format!(
                    "{p} took the VIP in {} ms",
                    start.elapsed().as_millis()
                )))
            }
            (true, _) => last = "this node still holds the VIP".to_owned(),
            (false, None) => {
                last = "the VIP left this node but no peer is heard holding it".to_owned()
            }
        }
    }
    Ok(Err(format!(
        "no peer took the VIP within {} s ({last}): no healthy peer (down, in FAULT, or \
         drained itself)",
        start.elapsed().as_secs()
    )))
}

/// `drain`: `Ok` says what happened; `Err(Refused)` when no healthy peer took or holds the VIP
/// (the drain is then undone, unless `force`).
pub fn drain(
    config: &NodeConfig,
    root: &RootDir,
    force: bool,
) -> Result<std::result::Result<String, String>> {
    let before = drain::read(root)?;
    if before.operator {
        return Ok(Ok(
            "already drained (axoha-firstboot undrain ends it)".to_owned()
        ));
    }
    let l = look(config, root)?;
    match pair::drain_step(&l) {
        DrainStep::Set(why) => {
            drain::set(root, DRAIN_FILE, true)?;
            Ok(Ok(format!("drained; {why}")))
        }
        DrainStep::Refuse(why) if !force => {
            Ok(Err(format!("not drained: {why} (--force drains anyway)")))
        }
        DrainStep::Refuse(why) => {
            drain::set(root, DRAIN_FILE, true)?;
            Ok(Ok(format!("drained (--force): {why}")))
        }
        DrainStep::HandOver => {
            drain::set(root, DRAIN_FILE, true)?;
            match await_handover(config, root)? {
                Ok(done) => Ok(Ok(format!("drained; {done}"))),
                Err(why) if force => Ok(Ok(format!(
                    "drained (--force); this node keeps the VIP until a peer can take it: {why}"
                ))),
                Err(why) => {
                    drain::set(root, DRAIN_FILE, false)?;
                    Ok(Err(format!(
                        "not drained (undone): {why} (--force drains anyway)"
                    )))
                }
            }
        }
    }
}

/// `undrain`: back to the configured priority (a primary takes the VIP back by preemption).
pub fn undrain(root: &RootDir) -> Result<String> {
    let before = drain::read(root)?;
    drain::set(root, DRAIN_FILE, false)?;
    Ok(if before.operator {
        "undrained: back to the configured priority".to_owned()
    } else {
        "was not drained by the operator; nothing changed".to_owned()
    })
}

/// The reboot gate: looks until `pair::reboot_step` says `Now`, draining first where it
/// says so, then runs `reboot`. Gives up after `wait`, undoing a drain it set.
pub fn reboot_when_peer_ready(
    config: &NodeConfig,
    root: &RootDir,
    wait: Duration,
    reboot: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    let mut drained_here = false;
    let mut said = String::new();
    loop {
        let l = look(config, root)?;
        let why = match pair::reboot_step(&l) {
            RebootStep::Now(why) => {
                log::info(&format!("rebooting: {why}"));
                return reboot();
            }
            RebootStep::DrainFirst(why) => {
                log::info(&format!("before rebooting: {why}"));
                drain::set(root, REBOOT_DRAIN_FILE, true)?;
                drained_here = true;
                continue;
            }
            RebootStep::Wait(why) => why,
        };
        if start.elapsed() >= wait {
            if drained_here {
                drain::set(root, REBOOT_DRAIN_FILE, false)?;
            }
            bail!(
                "not rebooting after waiting {} s: {why}{}",
                start.elapsed().as_secs(),
                if drained_here {
                    " (the drain for the reboot is undone)"
                } else {
                    ""
                }
            );
        }
        if why != said {
            log::info(&format!("waiting: {why}"));
            said = why;
        }
    }
}

/// `systemctl reboot`.
pub fn systemctl_reboot() -> Result<()> {
    let status = std::process::Command::new("systemctl")
        .arg("reboot")
        .status()
        .context("running systemctl reboot")?;
    if !status.success() {
        bail!("systemctl reboot failed ({status})");
    }
    Ok(())
}
