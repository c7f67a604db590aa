//! The firewalld zones of a node: `/etc/firewalld/zones/axoha-ha.xml` for the HA link and
//! `/etc/firewalld/zones/axoha-vip.xml` for the VIP interface.
//!
//! VRRP is IP protocol 112, not a TCP or UDP port (the public guide's `--add-port=112/tcp`
//! opens nothing VRRP uses). The HA zone accepts VRRP from each peer only, one rich rule per
//! peer. The VIP zone lets in exactly AxoRouter's listening ports (`firewall.ports`), SSH
//! where the image has login users (`firewall.ssh`) and VRRP from `public_peers` (the second
//! heartbeat path). The metrics endpoint's port (`metrics::PORT`) is let in from the
//! `metrics_from` sources only: on the HA zone from those inside the HA subnet (the default:
//! the whole subnet), on the VIP zone from any other one named. Anything else is rejected by each zone's
//! default target. Both need `/etc/protocols` in the image (firewalld resolves `vrrp` and
//! `esp` by name, and refuses to start without it).

use std::fmt::Write;
use std::net::IpAddr;

use crate::config::NodeConfig;
use crate::metrics;
use crate::types::SourceNet;

pub const ZONE: &str = "axoha-ha";
pub const VIP_ZONE: &str = "axoha-vip";

pub fn zone_path(zone: &str) -> String {
    format!("etc/firewalld/zones/{zone}.xml")
}

fn head(short: &str, description: &str, interface: &str) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.push_str("<!-- Written by axoha-firstboot; do not edit. -->\n");
    xml.push_str("<zone target=\"default\">\n");
    let _ = writeln!(xml, "  <short>{short}</short>");
    let _ = writeln!(xml, "  <description>{description}</description>");
    let _ = writeln!(xml, "  <interface name=\"{interface}\"/>");
    xml
}

/// One rich rule per address: VRRP from there is accepted.
fn vrrp_from<'a>(xml: &mut String, sources: impl Iterator<Item = &'a IpAddr>) {
    for source in sources {
        let family = if source.is_ipv4() { "ipv4" } else { "ipv6" };
        let _ = writeln!(
            xml,
            "  <rule family=\"{family}\">\n    <source address=\"{source}\"/>\n    \
             <protocol value=\"vrrp\"/>\n    <accept/>\n  </rule>"
        );
    }
}

/// One rich rule per source network: the metrics endpoint's port from there is accepted.
fn metrics_from(xml: &mut String, sources: &[SourceNet]) {
    for source in sources {
        let family = if source.addr().is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        let _ = writeln!(
            xml,
            "  <rule family=\"{family}\">\n    <source address=\"{source}\"/>\n    \
             <port protocol=\"tcp\" port=\"{}\"/>\n    <accept/>\n  </rule>",
            metrics::PORT
        );
    }
}

/// The HA link's zone.
pub fn render(config: &NodeConfig) -> String {
    let mut xml = head(
        "axoha HA link",
        "VRRP (IP protocol 112) from the cluster peers only; the metrics endpoint from \
         metrics_from sources on this subnet.",
        config.ha_if.as_str(),
    );
    vrrp_from(&mut xml, config.peers.iter());
    metrics_from(&mut xml, &metrics::sources_by_zone(config).0);
    xml.push_str("</zone>\n");
    xml
}

/// The VIP interface's zone.
pub fn render_vip(config: &NodeConfig) -> String {
    let mut xml = head(
        "axoha VIP network",
        "AxoRouter's listening ports, SSH where the image has login users; nothing else.",
        config.vip_if.as_str(),
    );
    if config.firewall.ssh {
        xml.push_str("  <service name=\"ssh\"/>\n");
    }
    for port in config.firewall.ports.iter() {
        let _ = writeln!(
            xml,
            "  <port protocol=\"{}\" port=\"{}\"/>",
            port.protocol, port.number
        );
    }
    // The second heartbeat path: VRRP from the other nodes' public addresses only.
    vrrp_from(&mut xml, config.public.iter().flat_map(|p| p.peers.iter()));
    // The metrics endpoint from this side only for sources metrics_from names outside the
    // HA subnet (none by default).
    metrics_from(&mut xml, &metrics::sources_by_zone(config).1);
    xml.push_str("</zone>\n");
    xml
}
