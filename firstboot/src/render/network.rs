//! Network configuration for the HA address, and a bare "link up" for the VIP interface, for
//! images where nothing else (cloud-init's network-config, the operator) configures them.
//!
//! RHEL-family images use NetworkManager (keyfile), Debian images systemd-networkd; the
//! image's profile says which (see `apply::network_backend`). keepalived puts the VIP on
//! `vip_if` itself, but only on a link that is up: an unmanaged interface stays down and the
//! tracked `vip_if` would hold the instance in FAULT.

use std::net::IpAddr;

use crate::config::NodeConfig;
use crate::render::firewalld;
use crate::types::{DnsServers, Gateway, InterfaceName, IpNet};

/// The network daemon of an image. The builder picks it (a definition's `network`, else the
/// profile's) and writes its name to [`BACKEND_FILE`]; first boot reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkBackend {
    Networkd,
    #[serde(rename = "networkmanager")]
    NetworkManager,
}

/// Where the image names its network daemon (one word: [`NetworkBackend::name`]).
pub const BACKEND_FILE: &str = "usr/lib/axoha/network";

impl NetworkBackend {
    /// The word in [`BACKEND_FILE`] and in a definition's `network` key.
    pub fn name(self) -> &'static str {
        match self {
            NetworkBackend::Networkd => "networkd",
            NetworkBackend::NetworkManager => "networkmanager",
        }
    }

    pub fn from_name(name: &str) -> Option<NetworkBackend> {
        [NetworkBackend::Networkd, NetworkBackend::NetworkManager]
            .into_iter()
            .find(|b| b.name() == name)
    }
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
    let spec = match link {
        Link::Ha => LinkSpec {
            name: &config.ha_if,
            address: Some(config.ha_ip),
            gateway: None,
            dns: None,
            zone: firewalld::ZONE,
            id: "ha",
            what: "HA link",
            required_for_online: true,
        },
        Link::Vip => LinkSpec {
            name: &config.vip_if,
            address: config.public_address(),
            gateway: config.basics.gateway.map(Gateway::addr),
            dns: config.basics.dns.as_ref(),
            zone: firewalld::VIP_ZONE,
            id: "vip",
            what: "VIP interface",
            required_for_online: false,
        },
    };
    match backend {
        NetworkBackend::Networkd => networkd(&spec),
        NetworkBackend::NetworkManager => network_manager(&spec),
    }
}

/// What one interface gets.
struct LinkSpec<'a> {
    name: &'a InterfaceName,
    /// The node's own address on the link (the VIP interface may have none: keepalived adds
    /// the VIP there on the holder only).
    address: Option<IpNet>,
    /// The default route (VIP interface only).
    gateway: Option<IpAddr>,
    /// For NetworkManager, which writes resolv.conf itself; networkd images get
    /// `resolv.rs`'s file.
    dns: Option<&'a DnsServers>,
    zone: &'a str,
    id: &'a str,
    what: &'a str,
    /// The VIP link is not required for network-online: without an address of its own it
    /// would hold systemd-networkd-wait-online (and keepalived, ordered after
    /// network-online.target) until its timeout, and keepalived waits for it anyway.
    required_for_online: bool,
}

fn networkd(spec: &LinkSpec) -> String {
    let mut out = format!(
        "# Written by axoha-firstboot: the {}.\n[Match]\nName={}\n\n[Network]\n",
        spec.what, spec.name
    );
    if let Some(a) = spec.address {
        out.push_str(&format!("Address={a}\n"));
    }
    out.push_str("ConfigureWithoutCarrier=yes\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n");
    if let Some(gw) = spec.gateway {
        // Only with an address of its own on the link (config refuses a gateway without
        // public_ip), so the gateway is on-link through that address's subnet.
        out.push_str(&format!("\n[Route]\nGateway={gw}\n"));
    }
    if !spec.required_for_online {
        out.push_str("\n[Link]\nRequiredForOnline=no\n");
    }
    out
}

fn network_manager(spec: &LinkSpec) -> String {
    let mut v4 = "method=disabled\n".to_owned();
    let mut v6 = "method=disabled\n".to_owned();
    if let Some(a) = spec.address {
        let mut section = format!("method=manual\naddress1={a}\n");
        if let Some(gw) = spec.gateway {
            section.push_str(&format!("gateway={gw}\n"));
        }
        // Every server is of the link's family: `NodeConfig` refuses the other one (this
        // family's section is the only one not `disabled`, and NetworkManager takes DNS
        // only there).
        if let Some(dns) = spec.dns {
            let servers: Vec<String> = dns.iter().map(ToString::to_string).collect();
            section.push_str(&format!("dns={};\n", servers.join(";")));
        }
        if a.addr().is_ipv4() {
            v4 = section;
        } else {
            v6 = section;
        }
    }
    format!(
        "# Written by axoha-firstboot: the {}.\n[connection]\nid=axoha-{}\ntype=ethernet\n\
         interface-name={}\nautoconnect=true\nzone={}\n\n[ipv4]\n{v4}\n[ipv6]\n{v6}",
        spec.what, spec.id, spec.name, spec.zone
    )
}
