//! The address first boot needs to ask the metadata service on a fresh node.
//!
//! First boot runs before any network manager (it writes their configuration), so the node's
//! Ethernet links are down and have no address. Neutron's port security drops anything not
//! sent from the port's fixed address, so an address of our own choosing (link-local) would
//! not do: like cloud-init's ephemeral DHCP, we set the links up, and when none has an IPv4
//! address yet, take a DHCP lease on the first link (in name order) whose server answers, add
//! the address and a host route to the service (Neutron/OVN send one as option 121, via
//! their metadata port; else via the router, else on-link), and remove both once the
//! document is read. The links stay up; the network configuration written next takes them
//! over. The lease is never renewed or released: it lives for a few seconds.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use axoha_dhcp::Via;

/// The longest one link's DHCP exchange may take before the next link is tried.
const PER_LINK: Duration = Duration::from_secs(8);
/// How long a link that was just set up may take to report its carrier.
const CARRIER: Duration = Duration::from_secs(3);

/// An address and route added for the service, removed when dropped.
pub struct Ephemeral {
    ifname: String,
    address: String,
    service: Ipv4Addr,
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        let route = format!("{}/32", self.service);
        let _ = ip(&["route", "del", &route, "dev", &self.ifname]);
        if !ip(&["addr", "del", &self.address, "dev", &self.ifname]) {
            crate::log::warn(&format!(
                "could not remove the metadata lease {} from {}",
                self.address, self.ifname
            ));
        }
    }
}

/// Sets every Ethernet link up; when none has an IPv4 address, leases one for reaching
/// `service` before `deadline` (`None`: the node had an address already, or no server
/// answered; the caller then tries the routes the node has).
pub fn bring_up(service: Ipv4Addr, deadline: Instant) -> Option<Ephemeral> {
    let links = ethernet_links();
    for name in &links {
        if !ip(&["link", "set", "dev", name, "up"]) {
            crate::log::info(&format!("could not set {name} up"));
        }
    }
    if links.iter().any(|l| has_ipv4(l)) {
        crate::log::info("asking the OpenStack metadata service over the node's own addresses");
        return None;
    }
    for name in &links {
        let Some(mac) = mac_of(name) else { continue };
        let now = Instant::now();
        let Some(left) = deadline.checked_duration_since(now) else {
            break;
        };
        wait_for_carrier(name, now + CARRIER.min(left));
        let started = Instant::now();
        let lease =
            match axoha_dhcp::obtain(name, mac, axoha_dhcp::Identity::Plain, PER_LINK.min(left)) {
                Ok(lease) => lease,
                Err(e) => {
                    crate::log::info(&format!("{e:#}"));
                    continue;
                }
            };
        let prefix = u32::from(lease.netmask).leading_ones();
        let address = format!("{}/{prefix}", lease.address);
        if !ip(&["addr", "add", &address, "dev", name]) {
            crate::log::info(&format!("could not add the lease {address} to {name}"));
            continue;
        }
        let ephemeral = Ephemeral {
            ifname: name.clone(),
            address,
            service,
        };
        let route = format!("{service}/32");
        let via = lease.route_to(service);
        let added = match via {
            Via::Gateway(gw) => ip(&["route", "add", &route, "via", &gw.to_string(), "dev", name]),
            Via::OnLink => ip(&["route", "add", &route, "dev", name]),
        };
        crate::log::info(&format!(
            "DHCP lease {} on {name} in {} ms for the OpenStack metadata service ({})",
            ephemeral.address,
            started.elapsed().as_millis(),
            match (via, added) {
                (_, false) => "no route to it could be added".to_owned(),
                (Via::Gateway(gw), true) => format!("via {gw}"),
                (Via::OnLink, true) => "on-link".to_owned(),
            }
        ));
        return Some(ephemeral);
    }
    None
}

/// The node's Ethernet links (ARPHRD_ETHER, not bridges), by name.
fn ethernet_links() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("type")).is_ok_and(|t| t.trim() == "1")
                && !e.path().join("bridge").exists()
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn mac_of(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

fn wait_for_carrier(name: &str, until: Instant) {
    let path = format!("/sys/class/net/{name}/carrier");
    while Instant::now() < until {
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == "1") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `name` has an IPv4 address of global scope.
fn has_ipv4(name: &str) -> bool {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", name, "scope", "global"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// Runs `ip ARGS`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
