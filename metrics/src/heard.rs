//! The heartbeat paths, listened to in the background: `axoha-firstboot status` listens for
//! four advert intervals when asked, which a scrape must not wait for. The same functions
//! (`status::listen`, `status::paths`) run here window after window, and [`step`] (pure)
//! remembers since when each peer has been heard or silent on each path.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axoha_firstboot::config::NodeConfig;
use axoha_firstboot::status::{self, PathStatus};

/// One peer on one heartbeat path.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// `ha link` or `vip network` (as `status` names them).
    pub path: &'static str,
    pub interface: String,
    pub peer: IpAddr,
    /// Heard in the last window. Only the master advertises: a master hears nobody.
    pub heard: bool,
    /// Unix seconds since `heard` has had its value (first window: when listening began).
    pub since: f64,
}

/// What the listener knows: `None` before its first window ends.
pub type Shared = Arc<Mutex<Option<Result<Vec<Seen>, String>>>>;

/// The next state from the last window's paths (pure).
pub fn step(known: &[Seen], paths: &[PathStatus], now: f64) -> Vec<Seen> {
    paths
        .iter()
        .flat_map(|p| {
            p.peers.iter().map(move |h| {
                let heard = h.heard_priority.is_some();
                let since = known
                    .iter()
                    .find(|k| k.interface == p.interface && k.peer == h.address)
                    .filter(|k| k.heard == heard)
                    .map_or(now, |k| k.since);
                Seen {
                    path: p.path,
                    interface: p.interface.clone(),
                    peer: h.address,
                    heard,
                    since,
                }
            })
        })
        .collect()
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Starts the listener thread: windows of four advert intervals, for as long as the process
/// runs. A window that fails (no CAP_NET_RAW, an interface gone) is reported and retried.
pub fn spawn(config: NodeConfig) -> Shared {
    let shared: Shared = Arc::new(Mutex::new(None));
    let out = shared.clone();
    std::thread::spawn(move || {
        let window = status::four_adverts(&config);
        let mut known: Vec<Seen> = Vec::new();
        loop {
            let next = match status::listen(&config, window) {
                Ok(adverts) => {
                    known = step(&known, &status::paths(&config, &adverts), unix_now());
                    Ok(known.clone())
                }
                Err(e) => Err(format!("{e:#}")),
            };
            let failed = next.is_err();
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
            if failed {
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    });
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use axoha_firstboot::status::PeerHeard;

    fn path(heard: bool) -> Vec<PathStatus> {
        vec![PathStatus {
            path: "ha link",
            interface: "ha0".into(),
            peers: vec![PeerHeard {
                address: "192.0.2.11".parse().unwrap(),
                heard_priority: heard.then_some(100),
            }],
        }]
    }

    #[test]
    fn since_moves_only_when_heard_changes() {
        let s = step(&[], &path(true), 10.0);
        assert_eq!((s[0].heard, s[0].since), (true, 10.0));
        let s = step(&s, &path(true), 20.0);
        assert_eq!((s[0].heard, s[0].since), (true, 10.0));
        let s = step(&s, &path(false), 30.0);
        assert_eq!((s[0].heard, s[0].since), (false, 30.0));
    }
}
