//! `/etc/sysctl.d/90-axoha-vip.conf`: ARP on the VIP interface answers for the VIP only where
//! it is really on that interface.
//!
//! - `arp_ignore = 1`: answer an ARP request only for an address configured on the interface
//!   it arrived on. With two heartbeat paths the HA instance keeps the VIP as a /32 on `lo`
//!   (see `keepalived`); with the default 0, vip_if would answer for that copy too.
//! - `arp_announce = 2`: ARP requests sent on vip_if carry the interface's own address as
//!   the sender, never the VIP, so a node's own traffic never re-points clients' neighbour
//!   entries for the VIP at it.
//!
//! Keys use `/` separators (sysctl.d(5)): an interface name may contain dots (`eth0.100`).
//! systemd-sysctl applies the file at every boot and when the interface appears; `apply`
//! also writes the values at once on a live node (the first boot's sysctl run is over).

use crate::config::NodeConfig;

pub const PATH: &str = "etc/sysctl.d/90-axoha-vip.conf";

/// (key under /proc/sys, value) for `config`'s VIP interface.
pub fn settings(config: &NodeConfig) -> Vec<(String, &'static str)> {
    let base = format!("net/ipv4/conf/{}", config.vip_if);
    vec![
        (format!("{base}/arp_ignore"), "1"),
        (format!("{base}/arp_announce"), "2"),
    ]
}

pub fn render(config: &NodeConfig) -> String {
    let mut out = String::from(
        "# Written by axoha-firstboot: ARP on the VIP interface answers only for addresses on\n\
         # it (not the VIP's copy on lo) and never announces the VIP as a sender.\n",
    );
    for (key, value) in settings(config) {
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}
