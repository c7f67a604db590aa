//! The node's NTP servers for chrony, the time daemon of both profiles:
//! `/etc/chrony/sources.d/axoha.sources`. The image's chrony.conf has no servers of its own
//! (none from the distribution, none from the build host) and reads this directory
//! (`sourcedir`), so only the servers the metadata names are used.

use crate::types::NtpServers;

pub const SOURCES: &str = "etc/chrony/sources.d/axoha.sources";

pub fn render(ntp: &NtpServers) -> String {
    let mut out = String::from("# Written by axoha-firstboot from the node's ntp metadata.\n");
    for server in ntp.iter() {
        // iburst: four quick polls at start, so a booting node is in sync within seconds.
        out.push_str(&format!("server {server} iburst\n"));
    }
    out
}
