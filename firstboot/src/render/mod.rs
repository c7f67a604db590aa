//! Node config to file contents: pure functions, one module per file kind.

pub mod firewalld;
pub mod keepalived;
pub mod network;
pub mod node_toml;

use crate::config::{explain, NodeConfig};
use crate::metadata::Resolved;
use network::NetworkBackend;

pub const KEEPALIVED_CONF: &str = "etc/keepalived/keepalived.conf";
pub const NODE_TOML: &str = "etc/axoha/node.toml";
pub const HOSTNAME: &str = "etc/hostname";
pub const STAMP: &str = "var/lib/axoha/firstboot.done";

pub fn firewalld_zone_path() -> String {
    format!("etc/firewalld/zones/{}.xml", firewalld::ZONE)
}

/// One file to write, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

/// Every file a node gets, in write order; the stamp is not among them (apply writes it last).
pub fn render_all(
    config: &NodeConfig,
    resolved: &Resolved,
    network: Option<NetworkBackend>,
    links: &[network::Link],
    notify: bool,
) -> Vec<RenderedFile> {
    // keepalived.conf holds the VRRP password when there is one: then only root reads it.
    let conf_mode = if config.vrrp.auth_pass().is_some() {
        0o600
    } else {
        0o640
    };
    let derived = [
        ("priority", config.priority.to_string()),
        ("router_id", config.router_id()),
        ("vrrp_version", config.vrrp.version().to_string()),
        ("advert_int", config.vrrp.advert_int().to_string()),
    ];
    let mut files = vec![
        RenderedFile {
            path: KEEPALIVED_CONF.into(),
            contents: keepalived::render(config, notify),
            mode: conf_mode,
        },
        RenderedFile {
            path: firewalld_zone_path(),
            contents: firewalld::render(config),
            mode: 0o644,
        },
        RenderedFile {
            path: NODE_TOML.into(),
            contents: node_toml::render(&explain(resolved), &derived),
            mode: 0o640,
        },
    ];
    if let Some(h) = &config.hostname {
        files.push(RenderedFile {
            path: HOSTNAME.into(),
            contents: format!("{h}\n"),
            mode: 0o644,
        });
    }
    if let Some(backend) = network {
        for link in links {
            files.push(RenderedFile {
                path: network::path(backend, *link).into(),
                contents: network::render(config, backend, *link),
                mode: match backend {
                    // NetworkManager ignores keyfiles that others can read.
                    NetworkBackend::NetworkManager => 0o600,
                    // systemd-networkd reads its files as the systemd-network user.
                    NetworkBackend::Networkd => 0o644,
                },
            });
        }
    }
    files
}
