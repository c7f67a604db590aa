//! `axoha-firstboot status`: what an operator asks first — is this node master, does it hold
//! the VIP, which peers does it hear on which heartbeat path, what changed lately.
//!
//! [`gather`] is the I/O edge (the node's config from its sources, the transitions the notify
//! script records under the run directory, `ip addr`, a short listen for adverts); [`render`]
//! and the parsers are pure.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::NodeConfig;
use crate::heartbeat::{self, Advert};
use crate::log::escape;
use crate::types::InterfaceName;
use axoha_root::{Last, RootDir};

/// One recorded state change, as the notify script writes it: `TIME NAME STATE PRIORITY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub at: String,
    pub name: String,
    pub state: String,
    pub priority: String,
}

/// One heartbeat path and what was heard on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStatus {
    /// `ha link` or `vip network`.
    pub path: &'static str,
    pub interface: String,
    pub peers: Vec<PeerHeard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerHeard {
    pub address: IpAddr,
    /// The priority of its last advert, when one was heard.
    pub heard_priority: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub node: String,
    pub role: String,
    pub priority: u32,
    /// The last state keepalived reported through the notify script, if any.
    pub vrrp_state: Option<String>,
    pub vip: String,
    pub vip_if: String,
    /// `None` when the interface could not be read.
    pub holds_vip: Option<bool>,
    /// How long adverts were listened for; `None` when not listened (or not allowed to).
    pub listened_ms: Option<u64>,
    pub listen_error: Option<String>,
    pub paths: Vec<PathStatus>,
    pub transitions: Vec<Transition>,
    /// Transitions per name since boot (the notify script's `counts`; `transitions` keeps
    /// the last 20 only).
    pub transition_counts: BTreeMap<String, u64>,
    /// The drain files (`None`: they could not be read).
    pub drain: Option<crate::drain::Drain>,
}

/// The file the notify script records transitions in, relative to its run directory.
pub const TRANSITIONS: &str = "transitions";
/// The file the notify script counts transitions per name in, beside [`TRANSITIONS`].
pub const COUNTS: &str = "counts";
/// The run directory under the root when `--run-dir` is not given.
pub const RUN_DIR: &str = "run/axoha";
/// The most of the transitions file that is read: the notify script keeps 20 lines of under
/// 80 bytes; anything much larger is not its file.
pub const TRANSITIONS_MAX: u64 = 64 * 1024;

/// Where the notify script's transitions are read from, confined like every other read
/// (`root.rs`): `run/axoha/transitions` inside the root, or `transitions` inside a
/// `--run-dir` (that directory's own path is the operator's, like `--root`'s). A link is
/// refused, a FIFO or device never blocks, the size is capped.
pub struct RunDir {
    /// `None`: a `--run-dir` that does not exist (yet): nothing recorded.
    dir: Option<RootDir>,
    /// The run directory's path inside `dir` (empty: `dir` is the run directory).
    rel: String,
}

impl RunDir {
    pub fn open(root: &Path, run_dir: Option<&Path>) -> Result<RunDir> {
        Ok(match run_dir {
            Some(d) if !d.exists() => RunDir {
                dir: None,
                rel: String::new(),
            },
            Some(d) => RunDir {
                dir: Some(RootDir::open(d)?),
                rel: String::new(),
            },
            None => RunDir {
                dir: Some(RootDir::open(root)?),
                rel: format!("{RUN_DIR}/"),
            },
        })
    }

    /// The recorded transitions, oldest first; none when nothing was recorded yet.
    pub fn transitions(&self) -> Result<Vec<Transition>> {
        Ok(self
            .notes(TRANSITIONS)?
            .map(|bytes| parse_transitions(&bytes))
            .unwrap_or_default())
    }

    /// Transitions per name since boot; none when nothing was counted yet.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>> {
        Ok(self
            .notes(COUNTS)?
            .map(|bytes| parse_counts(&bytes))
            .unwrap_or_default())
    }

    /// One of the notify script's files (a regular file, capped); `None` when there is no
    /// directory or no such file yet.
    fn notes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match &self.dir {
            None => Ok(None),
            Some(dir) => dir.read(
                &format!("{}{name}", self.rel),
                TRANSITIONS_MAX,
                Last::NoFollow,
            ),
        }
    }
}

/// Parses the notify script's `counts` file: `NAME COUNT` lines; a line that is not (a name
/// as in `transitions`, a decimal count) is skipped.
pub fn parse_counts(bytes: &[u8]) -> BTreeMap<String, u64> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, count) = (w.next()?, w.next()?);
            let named = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            let count = count.parse::<u64>().ok()?;
            (named && w.next().is_none()).then(|| (name.to_owned(), count))
        })
        .collect()
}

/// Seconds since the Unix epoch of a transition's time as the notify script writes it
/// (`2026-11-26T10:00:00.000Z`, UTC); `None` for anything else.
pub fn unix_seconds(at: &str) -> Option<f64> {
    let b = at.as_bytes();
    let fits = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && at.ends_with('Z');
    if !fits {
        return None;
    }
    let num = |r: std::ops::Range<usize>| at.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let sec: f64 = at.get(17..at.len() - 1)?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + h * 3600 + mi * 60) as f64 + sec)
}

/// Parses the notify script's `transitions` file line by line: a line that is not UTF-8 or
/// not `TIME NAME STATE PRIORITY` as the script writes them (a keepalived state word, a
/// name of letters, digits, `_.-`, a decimal priority or `?`) is skipped, never the file.
pub fn parse_transitions(bytes: &[u8]) -> Vec<Transition> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t = Transition {
                at: w.next()?.to_owned(),
                name: w.next()?.to_owned(),
                state: w.next()?.to_owned(),
                priority: w.next().unwrap_or("?").to_owned(),
            };
            let word =
                |s: &str, ok: fn(u8) -> bool| (1..=64).contains(&s.len()) && s.bytes().all(ok);
            let fits = w.next().is_none()
                && word(&t.at, |b| b.is_ascii_alphanumeric() || b":.+-".contains(&b))
                && word(&t.name, |b| {
                    b.is_ascii_alphanumeric() || b"_.-".contains(&b)
                })
                && word(&t.state, |b| b.is_ascii_uppercase())
                && (t.priority == "?" || word(&t.priority, |b| b.is_ascii_digit()));
            fits.then_some(t)
        })
        .collect()
}

/// Whether `ip -o addr show dev IF` output lists `vip`.
pub fn lists_address(ip_output: &str, vip: IpAddr) -> bool {
    let needles = [format!("inet {vip}/"), format!("inet6 {vip}/")];
    ip_output
        .lines()
        .any(|l| needles.iter().any(|n| l.contains(n.as_str())))
}

/// Whether this node has the VIP on `vip_if` now (`None`: the interface cannot be read).
pub fn holds_vip(config: &NodeConfig) -> Option<bool> {
    Command::new("ip")
        .args(["-o", "addr", "show", "dev", config.vip_if.as_str()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| lists_address(&String::from_utf8_lossy(&o.stdout), config.vip.addr()))
}

/// The paths of `config` and, for each peer, the last advert heard from it there.
pub fn paths(config: &NodeConfig, adverts: &[Advert]) -> Vec<PathStatus> {
    let heard = |interface: &str, address: &IpAddr| {
        adverts
            .iter()
            .rev()
            .find(|a| a.interface.as_str() == interface && a.from == *address)
            .map(|a| a.priority)
    };
    let path = |path, interface: &str, peers: Vec<IpAddr>| PathStatus {
        path,
        interface: interface.to_owned(),
        peers: peers
            .iter()
            .map(|p| PeerHeard {
                address: *p,
                heard_priority: heard(interface, p),
            })
            .collect(),
    };
    let mut out = vec![path(
        "ha link",
        config.ha_if.as_str(),
        config.peers.iter().copied().collect(),
    )];
    if let Some(public) = &config.public {
        out.push(path(
            "vip network",
            config.vip_if.as_str(),
            public.peers.iter().copied().collect(),
        ));
    }
    out
}

/// The interfaces a heartbeat path of `config` runs over: the HA link, and the VIP network
/// when VRRP runs there too.
pub fn heartbeat_interfaces(config: &NodeConfig) -> Vec<&InterfaceName> {
    let mut interfaces = vec![&config.ha_if];
    if config.public.is_some() {
        interfaces.push(&config.vip_if);
    }
    interfaces
}

/// Four advert intervals: a master that is there has sent at least three in that time.
pub fn four_adverts(config: &NodeConfig) -> Duration {
    Duration::from_millis(40 * u64::from(config.vrrp.advert_int().centis()))
}

/// The adverts of this node's VRID heard on each of its heartbeat paths within `window`.
pub fn listen(config: &NodeConfig, window: Duration) -> Result<Vec<Advert>> {
    let v6 = config.ha_ip.addr().is_ipv6();
    heartbeat::listen(&heartbeat_interfaces(config), v6, config.vrid, window)
}

/// Reads everything `status` shows. `window`: how long to listen for adverts (zero: not at all).
pub fn gather(
    config: &NodeConfig,
    run_dir: &RunDir,
    window: Duration,
    drain: Option<crate::drain::Drain>,
) -> Result<Status> {
    let transitions = run_dir
        .transitions()
        .context("reading the VRRP transitions the notify script recorded")?;
    let transition_counts = run_dir
        .counts()
        .context("reading the VRRP transitions the notify script counted")?;
    let holds_vip = holds_vip(config);
    let (adverts, listened_ms, listen_error) = if window.is_zero() {
        (Vec::new(), None, None)
    } else {
        match listen(config, window) {
            Ok(a) => (a, Some(window.as_millis() as u64), None),
            Err(e) => (Vec::new(), None, Some(format!("{e:#}"))),
        }
    };
    Ok(Status {
        node: config.router_id(),
        role: config.role.to_string(),
        priority: config.priority.get(),
        vrrp_state: transitions.last().map(|t| t.state.clone()),
        vip: config.vip.to_string(),
        vip_if: config.vip_if.to_string(),
        holds_vip,
        listened_ms,
        listen_error,
        paths: paths(config, &adverts),
        transitions,
        transition_counts,
        drain,
    })
}

/// The human form.
pub fn render(s: &Status) -> String {
    let mut out = format!(
        "node:      {} ({}, priority {})\nVRRP:      {}\nVIP:       {} on {}: {}\n",
        s.node,
        s.role,
        s.priority,
        s.vrrp_state
            .as_deref()
            .unwrap_or("unknown (no state reported by keepalived yet)"),
        s.vip,
        s.vip_if,
        match s.holds_vip {
            Some(true) => "held by this node",
            Some(false) => "not on this node",
            None => "unknown (cannot read the interface)",
        }
    );
    out.push_str(&match s.drain {
        Some(d) if d.any() => format!(
            "drain:     {} (advertises priority {})\n",
            d.describe(),
            crate::drain::DRAINED_PRIORITY
        ),
        Some(d) => format!("drain:     {}\n", d.describe()),
        None => "drain:     unknown (the drain files cannot be read)\n".to_owned(),
    });
    match (&s.listen_error, s.listened_ms) {
        (Some(e), _) => out.push_str(&format!("heartbeat: not checked: {e}\n")),
        (None, None) => out.push_str("heartbeat: not checked (--listen-ms 0)\n"),
        (None, Some(ms)) => {
            out.push_str(&format!("heartbeat: adverts heard in {ms} ms"));
            if s.vrrp_state.as_deref() == Some("MASTER") || s.holds_vip == Some(true) {
                out.push_str(" (a master hears nobody: only the master advertises)");
            }
            out.push('\n');
            for p in &s.paths {
                let peers: Vec<String> = p
                    .peers
                    .iter()
                    .map(|h| match h.heard_priority {
                        Some(prio) => format!("{} heard (priority {prio})", h.address),
                        None => format!("{} silent", h.address),
                    })
                    .collect();
                out.push_str(&format!(
                    "  {:<12} {:<8} {}\n",
                    p.path,
                    p.interface,
                    peers.join(", ")
                ));
            }
        }
    }
    if s.paths.len() == 1 {
        out.push_str("  (the HA link is the only heartbeat path: public_ip/public_peers unset)\n");
    }
    out.push_str("transitions (newest last):\n");
    if s.transitions.is_empty() {
        out.push_str("  none recorded\n");
    }
    for t in &s.transitions {
        // The parser keeps plain words only; escaped all the same, as every line a terminal
        // shows that came from a file.
        out.push_str(&escape(&format!(
            "  {}  {} {} (priority {})",
            t.at, t.name, t.state, t.priority
        )));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_and_addresses_parse() {
        let t = parse_transitions(
            b"2026-11-26T10:00:00.000Z axoha MASTER 254\nbroken\n\
              2026-11-26T10:00:01.000Z axoha BACKUP \xff\n\
              2026-11-26T10:00:02.000Z axoha \x1b[2JMASTER 254\n\
              2026-11-26T10:00:03.000Z axoha MASTER 254 extra\n\
              2026-11-26T10:00:04.000Z axoha_pub FAULT ?\n",
        );
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].state, "MASTER");
        assert_eq!(t[1].state, "FAULT");
        assert_eq!(
            parse_counts(b"axoha 3\naxoha_ha 1\nbad\nx y\naxoha\x1b 2\n"),
            BTreeMap::from([("axoha".to_owned(), 3), ("axoha_ha".to_owned(), 1)])
        );
        assert_eq!(unix_seconds("1970-01-01T00:00:01.500Z"), Some(1.5));
        assert_eq!(
            unix_seconds("2026-11-26T10:00:00.000Z"),
            Some(1_795_687_200.0)
        );
        assert_eq!(unix_seconds("2026-11-26 10:00:00"), None);
        let ip = "3: pub0    inet 198.51.100.10/24 brd 198.51.100.255 scope global pub0\n\
                  3: pub0    inet 198.51.100.64/24 scope global secondary pub0\n";
        assert!(lists_address(ip, "198.51.100.64".parse().unwrap()));
        assert!(!lists_address(ip, "198.51.100.6".parse().unwrap()));
    }
}
