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
//! node's interfaces: on a live node first boot sets its Ethernet links up and, when none has
//! an address, takes a short-lived DHCP lease for the request (`lease.rs`). It tries for a
//! bounded time ([`DEFAULT_WAIT`], the lease included). No answer in that time means no
//! service (the source is absent, and the missing keys are named as for any other boot); an
//! answer that is not a good document is an error naming the service.
//!
//! What the service gave is kept: first boot writes our values of it, as a `meta_data.json`,
//! to [`CACHE`] with the node's other files, and every later run on the node (`status`, the
//! heartbeat `watch`, `apply --force`) reads that instead of the network, so they see what
//! first boot saw, also where the service is out of reach once the node is configured.
//! Remove the file to ask the service again; a factory reset does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::http::{self, Failure, Url};
use super::META_DATA_JSON;
use crate::metadata::{bounds, Key, MetadataProvider, Resolved, Source};
use axoha_root::{Location, METADATA_MAX};

/// Where first boot keeps what the service gave, under the root.
pub const CACHE: &str = "var/lib/axoha/metadata-service.json";

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
    /// GET `url`, trying for `wait`; `bring_up` first sets the node's links up and leases
    /// an address when none has one (`lease.rs`; on a live node).
    Url {
        url: Url,
        wait: Duration,
        bring_up: bool,
    },
}

pub struct MetadataService {
    reach: Reach,
    /// [`CACHE`] under the root: read instead of the network when it exists.
    cache: Location,
}

impl MetadataService {
    pub fn new(reach: Reach, cache: Location) -> MetadataService {
        MetadataService { reach, cache }
    }
}

/// The [`CACHE`] document for the values the service set, if it set any (pure).
pub fn cache_document(resolved: &Resolved) -> Option<String> {
    let meta: serde_json::Map<String, serde_json::Value> = resolved
        .iter()
        .filter(|(_, s)| s.source == Source::MetadataService)
        .map(|(k, s)| (format!("axoha.{k}"), s.value.clone().into()))
        .collect();
    if meta.is_empty() {
        return None;
    }
    let doc = serde_json::json!({ "meta": meta });
    Some(serde_json::to_string_pretty(&doc).expect("a JSON map of strings") + "\n")
}

impl MetadataProvider for MetadataService {
    fn source(&self) -> Source {
        Source::MetadataService
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let shown = self.cache.shown();
        let context = || format!("OpenStack metadata service, as kept in {}", shown.display());
        if let Some(bytes) = self.cache.read(METADATA_MAX).with_context(context)? {
            return bounds::text(bytes)
                .and_then(|text| super::parse(&text))
                .with_context(context);
        }
        let Reach::Url {
            url,
            wait,
            bring_up,
        } = &self.reach
        else {
            return Ok(BTreeMap::new());
        };
        let started = Instant::now();
        let deadline = started + *wait;
        // Held until the document is read: the lease's address and route go with it.
        let _lease = match url.addr.ip() {
            std::net::IpAddr::V4(service) if *bring_up => super::lease::bring_up(service, deadline),
            _ => None,
        };
        let Some(bytes) = fetch(url, deadline)? else {
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
