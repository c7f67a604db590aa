//! Network configuration for the HA address, for images where nothing else configures it.
//!
//! RHEL-family images use NetworkManager (keyfile), Debian images systemd-networkd; the
//! image's profile says which (see `apply::network_backend`).

use crate::config::NodeConfig;
use crate::render::firewalld;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkBackend {
    Networkd,
    NetworkManager,
}

pub const NETWORKD_PATH: &str = "etc/systemd/network/50-axoha-ha.network";
pub const NM_PATH: &str = "etc/NetworkManager/system-connections/axoha-ha.nmconnection";

pub fn path(backend: NetworkBackend) -> &'static str {
    match backend {
        NetworkBackend::Networkd => NETWORKD_PATH,
        NetworkBackend::NetworkManager => NM_PATH,
    }
}

pub fn render(config: &NodeConfig, backend: NetworkBackend) -> String {
    let head = "# Written by axoha-firstboot: this node's address on the HA link.\n";
    match backend {
        NetworkBackend::Networkd => format!(
            "{head}[Match]\nName={}\n\n[Network]\nAddress={}\nConfigureWithoutCarrier=yes\n",
            config.ha_if, config.ha_ip
        ),
        NetworkBackend::NetworkManager => {
            let (this, other) = if config.ha_ip.addr().is_ipv4() {
                ("ipv4", "ipv6")
            } else {
                ("ipv6", "ipv4")
            };
            format!(
                "{head}[connection]\nid=axoha-ha\ntype=ethernet\ninterface-name={}\nautoconnect=true\nzone={}\n\n\
                 [{this}]\nmethod=manual\naddress1={}\n\n[{other}]\nmethod=disabled\n",
                config.ha_if,
                firewalld::ZONE,
                config.ha_ip
            )
        }
    }
}
