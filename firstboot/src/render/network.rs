//! Network configuration for the HA address, and a bare "link up" for the VIP interface, for
//! images where nothing else (cloud-init's network-config, the operator) configures them.
//!
//! RHEL-family images use NetworkManager (keyfile), Debian images systemd-networkd; the
//! image's profile says which (see `apply::network_backend`). keepalived puts the VIP on
//! `vip_if` itself, but only on a link that is up: an unmanaged interface stays down and the
//! tracked `vip_if` would hold the instance in FAULT.

use crate::config::NodeConfig;
use crate::render::firewalld;
use crate::types::{InterfaceName, IpNet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkBackend {
    Networkd,
    NetworkManager,
}

/// Which interface a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ha,
    Vip,
}

pub fn path(backend: NetworkBackend, link: Link) -> &'static str {
    match (backend, link) {
        (NetworkBackend::Networkd, Link::Ha) => "etc/systemd/network/50-axoha-ha.network",
        (NetworkBackend::Networkd, Link::Vip) => "etc/systemd/network/51-axoha-vip.network",
        (NetworkBackend::NetworkManager, Link::Ha) => {
            "etc/NetworkManager/system-connections/axoha-ha.nmconnection"
        }
        (NetworkBackend::NetworkManager, Link::Vip) => {
            "etc/NetworkManager/system-connections/axoha-vip.nmconnection"
        }
    }
}

/// Every path we may write, so a re-run does not mistake our own files for someone else's.
pub fn all_paths() -> [&'static str; 4] {
    [
        path(NetworkBackend::Networkd, Link::Ha),
        path(NetworkBackend::Networkd, Link::Vip),
        path(NetworkBackend::NetworkManager, Link::Ha),
        path(NetworkBackend::NetworkManager, Link::Vip),
    ]
}

pub fn render(config: &NodeConfig, backend: NetworkBackend, link: Link) -> String {
    match link {
        Link::Ha => render_link(backend, link, &config.ha_if, Some(&config.ha_ip)),
        // With a second heartbeat path the node's own address there is public_ip.
        Link::Vip => render_link(
            backend,
            link,
            &config.vip_if,
            config.public.as_ref().map(|p| &p.ip),
        ),
    }
}

fn render_link(
    backend: NetworkBackend,
    link: Link,
    name: &InterfaceName,
    address: Option<&IpNet>,
) -> String {
    let (id, what) = match (link, address) {
        (Link::Ha, _) => ("ha", "HA link"),
        (Link::Vip, None) => ("vip", "VIP interface, link up"),
        (Link::Vip, Some(_)) => ("vip", "VIP interface and this node's address there"),
    };
    let head = format!("# Written by axoha-firstboot: the {what}.\n");
    match backend {
        NetworkBackend::Networkd => {
            let addr = address
                .map(|a| format!("Address={a}\n"))
                .unwrap_or_default();
            // The VIP link is not required for network-online: without an address of its
            // own it would hold systemd-networkd-wait-online (and keepalived, ordered after
            // network-online.target) until its timeout, and keepalived waits for it anyway.
            let link = match link {
                Link::Ha => String::new(),
                Link::Vip => "\n[Link]\nRequiredForOnline=no\n".to_owned(),
            };
            format!(
                "{head}[Match]\nName={name}\n\n[Network]\n{addr}ConfigureWithoutCarrier=yes\n\
                 LinkLocalAddressing=no\nIPv6AcceptRA=no\n{link}"
            )
        }
        NetworkBackend::NetworkManager => {
            let zone = match link {
                Link::Ha => format!("zone={}\n", firewalld::ZONE),
                Link::Vip => String::new(),
            };
            let (v4, v6) = match address {
                Some(a) if a.addr().is_ipv4() => (
                    format!("method=manual\naddress1={a}\n"),
                    "method=disabled\n".to_owned(),
                ),
                Some(a) => (
                    "method=disabled\n".to_owned(),
                    format!("method=manual\naddress1={a}\n"),
                ),
                None => (
                    "method=disabled\n".to_owned(),
                    "method=disabled\n".to_owned(),
                ),
            };
            format!(
                "{head}[connection]\nid=axoha-{id}\ntype=ethernet\ninterface-name={name}\n\
                 autoconnect=true\n{zone}\n[ipv4]\n{v4}\n[ipv6]\n{v6}"
            )
        }
    }
}
