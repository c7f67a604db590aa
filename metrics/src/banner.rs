//! The same facts for humans at the console: the login banner (`/run/issue.d/axoha.issue`,
//! which agetty shows before the login prompt, and `/run/motd.d/axoha`, which pam_motd shows
//! after a login) says the node's role, VRRP state, image version, health and the metrics
//! endpoint's address. Kept up to date by the metrics server ([`EVERY`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Result;

use axoha_firstboot::health::Verdict;
use axoha_firstboot::log::escape;
use axoha_root::RootDir;

use crate::facts::{FactPaths, Facts};

/// How often the banner is brought up to date.
pub const EVERY: Duration = Duration::from_secs(10);
/// Where, under the root.
pub const ISSUE: &str = "run/issue.d/axoha.issue";
pub const MOTD: &str = "run/motd.d/axoha";

/// The banner's lines (pure).
pub fn render(f: &Facts) -> String {
    let mut out = String::from("axoha appliance\n");
    match &f.pair {
        Ok(s) => {
            out.push_str(&format!(
                "  node:    {} ({}), VRRP {}, VIP {} {}\n",
                s.node,
                s.role,
                s.vrrp_state.as_deref().unwrap_or("unknown"),
                s.vip,
                match s.holds_vip {
                    Some(true) => "held here",
                    Some(false) => "not here",
                    None => "unknown",
                }
            ));
        }
        Err(_) if !f.first_boot_done => out.push_str("  node:    not configured yet\n"),
        Err(e) => out.push_str(&format!("  node:    state unreadable: {e}\n")),
    }
    match &f.update {
        Ok(u) => out.push_str(&format!(
            "  image:   {} {} (slot {}); update: {}\n",
            u.running_name.as_deref().unwrap_or("?"),
            u.running_version.as_deref().unwrap_or("?"),
            u.running_slot,
            u.outcome
        )),
        Err(e) => out.push_str(&format!("  image:   unreadable: {e}\n")),
    }
    match &f.health {
        Ok((_, Verdict::Healthy(_))) => out.push_str("  health:  healthy\n"),
        Ok((_, Verdict::Unhealthy(why))) => {
            out.push_str(&format!("  health:  UNHEALTHY: {}\n", why.join("; ")))
        }
        Err(e) => out.push_str(&format!("  health:  unreadable: {e}\n")),
    }
    if let Ok(c) = &f.config {
        out.push_str(&format!(
            "  metrics: {} (from {})\n",
            endpoint(c.ha_ip.addr()),
            c.firewall.metrics_from
        ));
    }
    // Every line came from the node's files: shown escaped, like every such line.
    out.lines().map(|l| escape(l) + "\n").collect::<String>()
}

/// The endpoint's URL on an address.
pub fn endpoint(addr: IpAddr) -> String {
    format!(
        "http://{}/metrics",
        SocketAddr::new(addr, axoha_firstboot::metrics::PORT)
    )
}

/// Writes both files when the text changed.
pub fn write(paths: &FactPaths, facts: &Facts) -> Result<()> {
    let root = RootDir::open(&paths.node.root)?;
    let text = render(facts);
    // agetty expands backslash escapes in issue files: none of ours is one.
    let issue = text.replace('\\', "\\\\") + "\n";
    for (rel, body) in [(ISSUE, issue.as_str()), (MOTD, text.as_str())] {
        let same = root
            .read(rel, 64 * 1024, axoha_root::Last::NoFollow)
            .ok()
            .flatten()
            .is_some_and(|b| b == body.as_bytes());
        if !same {
            axoha_update::etc_update::replace(&root, rel, body.as_bytes())?;
        }
    }
    Ok(())
}
