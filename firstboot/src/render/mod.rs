//! Node config to file contents: pure functions, one module per file kind.

pub mod chrony;
pub mod firewalld;
pub mod hosts;
pub mod keepalived;
pub mod network;
pub mod node_toml;
pub mod resolv;
pub mod sysctl;

use crate::config::{explain, NodeConfig};
use crate::metadata::Resolved;
use network::NetworkBackend;

pub const KEEPALIVED_CONF: &str = "etc/keepalived/keepalived.conf";
pub const NODE_TOML: &str = "etc/axoha/node.toml";
pub const STAMP: &str = "var/lib/axoha/firstboot.done";

pub fn firewalld_zone_path() -> String {
    firewalld::zone_path(firewalld::ZONE)
}

/// Every path first boot may write, whatever the node's metadata and network daemon (relative
/// to the root): what `render_all` can produce, the stamp, and the metadata service's cache.
/// The image builder claims each (no `[[files]]` entry may replace one); a test ties this
/// list to `render_all`.
pub fn output_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        KEEPALIVED_CONF,
        NODE_TOML,
        STAMP,
        sysctl::PATH,
        hosts::HOSTNAME,
        hosts::HOSTS,
        resolv::RESOLV_CONF,
        chrony::SOURCES,
        crate::metadata::metadata_service::CACHE,
    ]
    .map(String::from)
    .into();
    paths.push(firewalld_zone_path());
    paths.push(firewalld::zone_path(firewalld::VIP_ZONE));
    paths.extend(network::all_paths().map(String::from));
    paths
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
    root: &std::path::Path,
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
            contents: keepalived::render(config, notify, root),
            mode: conf_mode,
        },
        RenderedFile {
            path: firewalld_zone_path(),
            contents: firewalld::render(config),
            mode: 0o644,
        },
        RenderedFile {
            path: firewalld::zone_path(firewalld::VIP_ZONE),
            contents: firewalld::render_vip(config),
            mode: 0o644,
        },
        RenderedFile {
            path: sysctl::PATH.into(),
            contents: sysctl::render(config),
            mode: 0o644,
        },
        RenderedFile {
            path: NODE_TOML.into(),
            contents: node_toml::render(&explain(resolved), &derived),
            mode: 0o640,
        },
        RenderedFile {
            path: hosts::HOSTNAME.into(),
            contents: hosts::hostname(&config.node_name()),
            mode: 0o644,
        },
        RenderedFile {
            path: hosts::HOSTS.into(),
            contents: hosts::hosts(&config.node_name()),
            mode: 0o644,
        },
    ];
    if let Some(dns) = &config.basics.dns {
        if network != Some(NetworkBackend::NetworkManager) {
            files.push(RenderedFile {
                path: resolv::RESOLV_CONF.into(),
                contents: resolv::render(dns),
                mode: 0o644,
            });
        }
    }
    if let Some(ntp) = &config.basics.ntp {
        files.push(RenderedFile {
            path: chrony::SOURCES.into(),
            contents: chrony::render(ntp),
            mode: 0o644,
        });
    }
    if let Some(doc) = crate::metadata::metadata_service::cache_document(resolved) {
        // What the metadata service gave, for every later run (no secrets come from it).
        files.push(RenderedFile {
            path: crate::metadata::metadata_service::CACHE.into(),
            contents: doc,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Key, RawMetadata, Source};

    /// Every file of nodes that use every optional key, with either network daemon and both
    /// links, is in `output_paths()`.
    #[test]
    fn output_paths_hold_everything_render_all_writes() {
        let values = [
            (Key::Role, "primary"),
            (Key::HaIp, "192.0.2.10/24"),
            (Key::Peers, "192.0.2.11"),
            (Key::Vip, "198.51.100.64/24"),
            (Key::HaIf, "eth0"),
            (Key::VipIf, "eth1"),
            (Key::Vrid, "51"),
            (Key::PublicIp, "198.51.100.10/24"),
            (Key::PublicPeers, "198.51.100.11"),
            (Key::Gateway, "198.51.100.1"),
            (Key::Dns, "203.0.113.53"),
            (Key::Ntp, "203.0.113.123"),
        ];
        let resolved = Resolved::merge([RawMetadata {
            source: Source::NoCloud,
            values: values.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }]);
        let config = NodeConfig::from_resolved(&resolved).unwrap();
        let all = output_paths();
        let mut seen = 0;
        for network in [
            None,
            Some(NetworkBackend::Networkd),
            Some(NetworkBackend::NetworkManager),
        ] {
            let links = [network::Link::Ha, network::Link::Vip];
            let root = std::path::Path::new("/");
            for file in render_all(&config, &resolved, network, &links, true, root) {
                assert!(
                    all.contains(&file.path),
                    "{} is not in output_paths()",
                    file.path
                );
                seen += 1;
            }
        }
        assert!(seen > 3 * 8, "{seen} files");
    }
}
