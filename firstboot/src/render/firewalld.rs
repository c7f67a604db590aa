//! The firewalld zone for the HA link: `/etc/firewalld/zones/axoha-ha.xml`.
//!
//! VRRP is IP protocol 112, not a TCP or UDP port (the public guide's `--add-port=112/tcp`
//! opens nothing VRRP uses). The zone binds the HA interface and accepts VRRP from each peer
//! only, one rich rule per peer; anything else on the HA link is rejected by the zone's
//! default target.

use std::fmt::Write;

use crate::config::NodeConfig;

pub const ZONE: &str = "axoha-ha";

pub fn render(config: &NodeConfig) -> String {
    let family = if config.ha_ip.addr().is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    };
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.push_str("<!-- Written by axoha-firstboot; do not edit. -->\n");
    xml.push_str("<zone target=\"default\">\n");
    xml.push_str("  <short>axoha HA link</short>\n");
    xml.push_str(
        "  <description>VRRP (IP protocol 112) from the cluster peers only.</description>\n",
    );
    let _ = writeln!(xml, "  <interface name=\"{}\"/>", config.ha_if);
    for peer in config.peers.iter() {
        let _ = writeln!(
            xml,
            "  <rule family=\"{family}\">\n    <source address=\"{peer}\"/>\n    \
             <protocol value=\"vrrp\"/>\n    <accept/>\n  </rule>"
        );
    }
    xml.push_str("</zone>\n");
    xml
}
