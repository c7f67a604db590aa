//! The metrics endpoint's place on a node: its port, the one home of the number (the
//! firewall zones, the server `axoha-metrics --serve` and the login banner read it), and
//! which zone lets each `metrics_from` source in.

use crate::config::NodeConfig;
use crate::types::SourceNet;

/// TCP port of the Prometheus endpoint on every node.
pub const PORT: u16 = 9650;

/// The `metrics_from` sources the HA zone lets in (inside the HA link's subnet) and those the
/// VIP zone lets in (every other one: it can only arrive over the VIP side or its gateway).
pub fn sources_by_zone(config: &NodeConfig) -> (Vec<SourceNet>, Vec<SourceNet>) {
    config
        .firewall
        .metrics_from
        .iter()
        .partition(|s| s.inside(&config.ha_ip))
}
