//! OpenStack metadata service: <https://docs.openstack.org/nova/latest/user/metadata.html>
//!
//! `GET http://169.254.169.254/openstack/latest/meta_data.json`, the same document as on the
//! config drive (format: the parent module), served by Nova's metadata API through Neutron's
//! proxy (the router's or the DHCP/OVN namespace's, which owns 169.254.169.254 on the
//! instance's network).
//!
//! It is the last per-node source and the only one on the network, so `sources.rs` asks it
//! only when no other source answered (see there). Any local process can fetch it, so it
//! never carries a secret (`Source::may_set`). Reaching it needs an IPv4 address on one of the
//! node's interfaces: on a live node first boot sets its Ethernet links up (they are down
//! before any network manager runs; see [`links_up`]) and then tries for a bounded time
//! ([`DEFAULT_WAIT`]): an address that DHCP or the initrd gives an interface meanwhile is
//! used as soon as it is there. No answer in that time means no service (the source is
//! absent, and the missing keys are named as for any other boot); an answer that is not a
//! good document is an error naming the service.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::http::{self, Failure, Url};
use super::META_DATA_JSON;
use crate::metadata::{bounds, Key, MetadataProvider, Source};
use crate::root::METADATA_MAX;

/// Where Nova serves the document.
pub fn default_url() -> Url {
    format!("http://169.254.169.254/{META_DATA_JSON}")
        .parse()
        .expect("a valid URL")
}

/// How long first boot keeps trying before it concludes there is no metadata service.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
/// Between two attempts that found no connection.
const RETRY: Duration = Duration::from_millis(500);
/// One attempt's limit, so that a lost SYN is retried rather than waited out.
const ATTEMPT: Duration = Duration::from_secs(3);

/// Whether and how first boot reaches the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Never (a `--root` run without `--metadata-url`: tests must not reach the network).
    Off,
    /// GET `url`, trying for `wait`; `live` sets the node's links up first.
    Url {
        url: Url,
        wait: Duration,
        live: bool,
    },
}

pub struct MetadataService {
    reach: Reach,
}

impl MetadataService {
    pub fn new(reach: Reach) -> MetadataService {
        MetadataService { reach }
    }
}

impl MetadataProvider for MetadataService {
    fn source(&self) -> Source {
        Source::MetadataService
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let Reach::Url { url, wait, live } = &self.reach else {
            return Ok(BTreeMap::new());
        };
        let started = Instant::now();
        if *live {
            links_up();
        }
        let Some(bytes) = fetch(url, started + *wait)? else {
            return Ok(BTreeMap::new());
        };
        crate::log::info(&format!(
            "OpenStack metadata service {url} answered in {} ms",
            started.elapsed().as_millis()
        ));
        bounds::text(bytes)
            .and_then(|text| super::parse(&text))
            .with_context(|| format!("OpenStack metadata service {url}"))
    }
}

/// The document, `None` when no service answered before `deadline` (or it has none).
fn fetch(url: &Url, deadline: Instant) -> Result<Option<Vec<u8>>> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let until = deadline.min(Instant::now() + ATTEMPT);
        match http::get(url, METADATA_MAX, until) {
            Ok(body) => return Ok(Some(body)),
            Err(Failure::Status(404)) => {
                crate::log::info(&format!(
                    "OpenStack metadata service {url}: 404, no OpenStack metadata there"
                ));
                return Ok(None);
            }
            Err(Failure::Status(code)) => {
                bail!("OpenStack metadata service {url}: HTTP status {code}")
            }
            Err(Failure::Bad(e)) => {
                return Err(e.context(format!("OpenStack metadata service {url}")))
            }
            Err(Failure::Unreachable(e)) => {
                if Instant::now() + RETRY >= deadline {
                    crate::log::info(&format!(
                        "OpenStack metadata service {url}: no answer after {attempts} attempts \
                         ({e}); taking it as absent"
                    ));
                    return Ok(None);
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Sets every Ethernet link of the node up: before the network manager runs (first boot is
/// ordered before it) they are down, and an address only comes to a link that is up. The
/// links stay up; the network configuration written next takes them over.
fn links_up() {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| {
            // ARPHRD_ETHER; not the loopback, not a bridge or VLAN of ours (none exist yet).
            std::fs::read_to_string(e.path().join("type")).is_ok_and(|t| t.trim() == "1")
                && !e.path().join("bridge").exists()
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in &names {
        let status = std::process::Command::new("ip")
            .args(["link", "set", "dev", name, "up"])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            crate::log::info(&format!("could not set {name} up"));
        }
    }
    crate::log::info(&format!(
        "asking the OpenStack metadata service over {}",
        if names.is_empty() {
            "no Ethernet link".to_owned()
        } else {
            names.join(", ")
        }
    ));
}
