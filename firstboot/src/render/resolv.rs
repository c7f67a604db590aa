//! `/etc/resolv.conf` from the node's `dns` servers, for systemd-networkd images (networkd
//! hands DNS only to systemd-resolved, which the appliance does not run). NetworkManager
//! images get the servers in their connection instead, and NetworkManager writes the file.

use crate::types::DnsServers;

pub const RESOLV_CONF: &str = "etc/resolv.conf";

pub fn render(dns: &DnsServers) -> String {
    let mut out = String::from("# Written by axoha-firstboot from the node's dns metadata.\n");
    for server in dns.iter() {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out
}
