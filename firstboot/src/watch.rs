//! `axoha-firstboot watch`: one console/journal line when a heartbeat path is lost or back.
//!
//! keepalived cannot say it: a backup that stops hearing the master on one path only *wants*
//! MASTER, the sync group holds it back (the other path still hears the master), and no state
//! changes, so no notify script runs. So we listen like `status` does, one window of four
//! adverts after the other, and compare. Only the master advertises: while this node holds the
//! VIP, silence is expected and nothing is reported.

use anyhow::Result;

use crate::config::NodeConfig;
use crate::log;
use crate::status::{self, PathStatus};

/// What was last known of each path: heard, silent, or unknown (this node was master).
pub type Known = Vec<Option<bool>>;

/// The next state and the lines to log, from the paths heard in the last window (pure).
pub fn step(known: &Known, paths: &[PathStatus], master: bool) -> (Known, Vec<String>) {
    if master {
        return (vec![None; paths.len()], Vec::new());
    }
    let heard: Vec<bool> = paths
        .iter()
        .map(|p| p.peers.iter().any(|h| h.heard_priority.is_some()))
        .collect();
    let still: Vec<&str> = paths
        .iter()
        .zip(&heard)
        .filter(|(_, h)| **h)
        .map(|(p, _)| p.interface.as_str())
        .collect();
    let mut lines = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        match (known.get(i).copied().flatten(), heard[i]) {
            (Some(true), false) if still.is_empty() => lines.push(format!(
                "axoha: heartbeat over {} lost; no other path heard",
                p.interface
            )),
            (Some(true), false) => lines.push(format!(
                "axoha: heartbeat over {} lost; still heard over {}",
                p.interface,
                still.join(", ")
            )),
            (Some(false), true) => {
                lines.push(format!("axoha: heartbeat over {} back", p.interface))
            }
            _ => {}
        }
    }
    (heard.into_iter().map(Some).collect(), lines)
}

/// Runs until killed (the unit stops it with keepalived).
pub fn run(config: &NodeConfig) -> Result<()> {
    let interfaces = status::heartbeat_interfaces(config);
    let window = status::four_adverts(config);
    let mut known: Known = vec![None; interfaces.len()];
    log::info(&format!(
        "watching VRRP heartbeats on {} (windows of {} ms)",
        interfaces
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        window.as_millis()
    ));
    loop {
        let adverts = status::listen(config, window)?;
        let master = status::holds_vip(config) == Some(true);
        let (next, lines) = step(&known, &status::paths(config, &adverts), master);
        for line in lines {
            if line.contains(" lost") {
                log::warn(&line);
            } else {
                log::info(&line);
            }
        }
        known = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PeerHeard;

    fn path(interface: &str, heard: bool) -> PathStatus {
        PathStatus {
            path: "x",
            interface: interface.into(),
            peers: vec![PeerHeard {
                address: "192.0.2.10".parse().unwrap(),
                heard_priority: heard.then_some(254),
            }],
        }
    }

    #[test]
    fn reports_a_lost_path_once_and_its_return() {
        let both = [path("ha0", true), path("pub0", true)];
        let (known, lines) = step(&vec![None, None], &both, false);
        assert!(lines.is_empty(), "first sight is not news: {lines:?}");
        let ha_lost = [path("ha0", false), path("pub0", true)];
        let (known, lines) = step(&known, &ha_lost, false);
        assert_eq!(
            lines,
            ["axoha: heartbeat over ha0 lost; still heard over pub0"]
        );
        let (known, lines) = step(&known, &ha_lost, false);
        assert!(lines.is_empty(), "said once: {lines:?}");
        let (known, lines) = step(&known, &both, false);
        assert_eq!(lines, ["axoha: heartbeat over ha0 back"]);
        let none = [path("ha0", false), path("pub0", false)];
        let (_, lines) = step(&known, &none, false);
        assert_eq!(
            lines,
            [
                "axoha: heartbeat over ha0 lost; no other path heard",
                "axoha: heartbeat over pub0 lost; no other path heard"
            ]
        );
    }

    #[test]
    fn a_master_hearing_nobody_is_not_news() {
        let none = [path("ha0", false), path("pub0", false)];
        let (known, lines) = step(&vec![Some(true), Some(true)], &none, true);
        assert!(lines.is_empty());
        assert_eq!(known, vec![None, None]);
    }
}
