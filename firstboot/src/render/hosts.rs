//! `/etc/hostname` and `/etc/hosts`: every node has its own name, and resolves it without DNS
//! (without an entry, every `sudo` waits for a DNS timeout on "unable to resolve host").

use crate::types::Hostname;

pub const HOSTNAME: &str = "etc/hostname";
pub const HOSTS: &str = "etc/hosts";

pub fn hostname(name: &Hostname) -> String {
    format!("{name}\n")
}

/// Debian's convention (127.0.1.1 for the host's own name) works on every distribution: a
/// node's addresses move (the VIP) or sit on a dedicated link (the HA address), so its name
/// points at loopback.
pub fn hosts(name: &Hostname) -> String {
    let short = name.as_str().split('.').next().unwrap_or(name.as_str());
    let names = if short == name.as_str() {
        name.to_string()
    } else {
        format!("{name} {short}")
    };
    format!(
        "# Written by axoha-firstboot.\n\
         127.0.0.1\tlocalhost\n\
         127.0.1.1\t{names}\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n"
    )
}
