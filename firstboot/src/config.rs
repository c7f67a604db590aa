//! Resolved metadata to a typed, validated [`NodeConfig`]: pure, no I/O.
//!
//! Every value is parsed into its type here, once, for all sources; then the cross-field rules
//! of the design are checked. All problems are collected, so an operator fixes them in one go.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::metadata::{typed, Key, Need, Resolved, Source, Sourced, TypedKey};
use crate::types::{
    AdvertInt, AuthPass, Count, DnsServers, Gateway, HealthCommand, Hostname, InterfaceName, IpNet,
    MetricsFrom, NtpServer, NtpServers, Peers, Ports, Priority, Role, Seconds, ValueError, Vrid,
    VrrpVersion,
};

/// Crash failover takes about 3 adverts plus skew: 0.2 s adverts keep it under 1 s while
/// leaving room for scheduling jitter on a busy 2-core node (0.1 s was measured at 0.37 s).
pub const DEFAULT_ADVERT_INT_V3: AdvertInt = AdvertInt::from_centis(20);
pub const DEFAULT_ADVERT_INT_V2: AdvertInt = AdvertInt::from_centis(100);

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub role: Role,
    pub ha_ip: IpNet,
    pub peers: Peers,
    pub vip: IpNet,
    pub ha_if: InterfaceName,
    pub vip_if: InterfaceName,
    pub vrid: Vrid,
    pub priority: Priority,
    pub hostname: Option<Hostname>,
    pub vrrp: Vrrp,
    pub health: Health,
    pub basics: NetworkBasics,
    pub firewall: Firewall,
    /// The second heartbeat path over the VIP network; `None`: the HA link is the only one.
    pub public: Option<PublicPath>,
}

/// What makes a node a network host of its own: a default route, name servers, time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkBasics {
    /// The default route, via `vip_if`.
    pub gateway: Option<Gateway>,
    pub dns: Option<DnsServers>,
    pub ntp: Option<NtpServers>,
}

/// What the VIP interface's zone lets in besides VRRP: AxoRouter's ports and, where the image
/// has login users, SSH.
#[derive(Debug, Clone, PartialEq)]
pub struct Firewall {
    pub ports: Ports,
    pub ssh: bool,
    /// Who may scrape the metrics endpoint (default: the HA link's subnet). A source inside
    /// the HA subnet is let in on the HA zone; any other arrives over the VIP side and is let
    /// in there, only because it is named here.
    pub metrics_from: MetricsFrom,
}

/// This node's own address on `vip_if` and the other nodes' there (`public_peers`, in the
/// order of `peers`): VRRP runs over the VIP network too, so losing one path moves nothing.
///
/// Checked in `check_public`: both keys or neither, one public peer per HA peer, distinct from
/// the VIP and the HA addresses, one family, and the VIP and every public peer inside
/// `ip`'s subnet (VRRP adverts carry TTL 255 and never cross a router).
#[derive(Debug, Clone, PartialEq)]
pub struct PublicPath {
    pub ip: IpNet,
    pub peers: Peers,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Vrrp {
    V2 {
        advert_int: AdvertInt,
        auth_pass: Option<AuthPass>,
    },
    V3 {
        advert_int: AdvertInt,
    },
}

impl Vrrp {
    pub fn version(&self) -> VrrpVersion {
        match self {
            Vrrp::V2 { .. } => VrrpVersion::V2,
            Vrrp::V3 { .. } => VrrpVersion::V3,
        }
    }

    pub fn advert_int(&self) -> AdvertInt {
        match self {
            Vrrp::V2 { advert_int, .. } | Vrrp::V3 { advert_int } => *advert_int,
        }
    }

    pub fn auth_pass(&self) -> Option<&AuthPass> {
        match self {
            Vrrp::V2 { auth_pass, .. } => auth_pass.as_ref(),
            Vrrp::V3 { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub command: HealthCommand,
    pub interval: Seconds,
    pub timeout: Seconds,
    pub rise: Count,
    pub fall: Count,
}

/// One thing wrong with the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing(Key),
    Invalid {
        key: Key,
        source: Source,
        value: String,
        reason: String,
    },
    Conflict(String),
}

/// How a key is spelled in a source, so the operator can find it.
pub fn spelled(key: Key, source: Source) -> String {
    match source {
        Source::Cmdline | Source::NodeFile => format!("axoha.{key}"),
        Source::InstanceData | Source::NoCloud => format!("axoha.{key} (meta-data)"),
        Source::ConfigDrive | Source::MetadataService => format!("axoha.{key} (meta)"),
        _ => key.to_string(),
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(key) => write!(
                f,
                "missing {key}: set axoha.{key}=... on the kernel command line or as OpenStack \
                 metadata (--property), or {key} in the cloud-init meta-data axoha: mapping or \
                 in cluster.toml"
            ),
            // The value is quoted, escaped and cut (`log::quote`), and a secret is never
            // shown, not even an invalid one (it may be the real password with a typo).
            Problem::Invalid {
                key,
                source,
                value,
                reason,
            } => {
                let shown = if key.is_secret() {
                    "<redacted>".to_owned()
                } else {
                    crate::log::quote(value)
                };
                write!(
                    f,
                    "{source}: {} = {shown} is invalid: {reason}",
                    spelled(*key, *source)
                )
            }
            Problem::Conflict(msg) => f.write_str(msg),
        }
    }
}

/// All problems found; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    /// Missing keys are named together with one hint (a node without metadata misses them
    /// all, and the console line must stay readable); every other problem on its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing: Vec<&str> = self
            .0
            .iter()
            .filter_map(|p| match p {
                Problem::Missing(k) => Some(k.name()),
                _ => None,
            })
            .collect();
        let mut parts: Vec<String> = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "missing {}: set each as axoha.KEY=VALUE on the kernel command line or as \
                 OpenStack metadata (--property), or as KEY in the cloud-init meta-data axoha: \
                 mapping or in cluster.toml",
                missing.join(", ")
            ));
        }
        parts.extend(
            self.0
                .iter()
                .filter(|p| !matches!(p, Problem::Missing(_)))
                .map(ToString::to_string),
        );
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Problems {}

/// Collects typed values and problems while walking the keys.
struct Reader<'a> {
    resolved: &'a Resolved,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn optional<K: TypedKey>(&mut self, _: K) -> Option<K::Value> {
        let key = K::KEY;
        let Sourced { value, source } = self.resolved.get(key)?;
        match value.parse() {
            Ok(v) => Some(v),
            Err(ValueError(reason)) => {
                self.problems.push(Problem::Invalid {
                    key,
                    source: *source,
                    value: value.clone(),
                    reason,
                });
                None
            }
        }
    }

    fn required<K: TypedKey>(&mut self, k: K) -> Option<K::Value> {
        if self.resolved.get(K::KEY).is_none() {
            self.problems.push(Problem::Missing(K::KEY));
            return None;
        }
        self.optional(k)
    }

    /// An optional key: `Some(None)` when unset, `None` when set but invalid.
    fn maybe<K: TypedKey>(&mut self, k: K) -> Option<Option<K::Value>> {
        match self.resolved.get(K::KEY) {
            None => Some(None),
            Some(_) => self.optional(k).map(Some),
        }
    }

    /// A key with a default in the key table: the default when unset.
    fn or_default<K: TypedKey>(&mut self, k: K) -> Option<K::Value> {
        if self.resolved.get(K::KEY).is_none() {
            let Need::Default(text) = K::KEY.need() else {
                unreachable!("{} has no default in the key table", K::KEY)
            };
            return match text.parse() {
                Ok(v) => Some(v),
                Err(ValueError(e)) => unreachable!("{}'s default {text:?}: {e}", K::KEY),
            };
        }
        self.optional(k)
    }

    /// Describes where a key's value came from, for conflict messages.
    fn origin(&self, key: Key) -> String {
        match self.resolved.get(key) {
            Some(s) => format!("{} ({})", spelled(key, s.source), s.source),
            None => format!("{key} (built-in default)"),
        }
    }

    fn conflict(&mut self, msg: String) {
        self.problems.push(Problem::Conflict(msg));
    }
}

impl NodeConfig {
    pub fn from_resolved(resolved: &Resolved) -> Result<NodeConfig, Problems> {
        let mut r = Reader {
            resolved,
            problems: Vec::new(),
        };
        let role = r.required(typed::Role);
        let ha_ip = r.required(typed::HaIp);
        let peers = r.required(typed::Peers);
        let vip = r.required(typed::Vip);
        let ha_if = r.required(typed::HaIf);
        let vip_if = r.required(typed::VipIf);
        let vrid = r.required(typed::Vrid);
        let priority = r.maybe(typed::Priority);
        let hostname = r.maybe(typed::Hostname);
        let version = r.or_default(typed::VrrpVersion);
        let advert_int = r.maybe(typed::AdvertInt);
        let auth_pass = r.maybe(typed::AuthPass);
        let command = r.or_default(typed::HealthCommand);
        let interval = r.or_default(typed::HealthInterval);
        let timeout = r.or_default(typed::HealthTimeout);
        let rise = r.or_default(typed::HealthRise);
        let fall = r.or_default(typed::HealthFall);
        let gateway = r.maybe(typed::Gateway);
        let dns = r.maybe(typed::Dns);
        let ntp = r.maybe(typed::Ntp);
        let ports = r.or_default(typed::FirewallPorts);
        let ssh = r.or_default(typed::FirewallSsh);
        let public_ip = r.maybe(typed::PublicIp);
        let public_peers = r.maybe(typed::PublicPeers);
        let metrics_from = r.maybe(typed::MetricsFrom);

        let vrrp = match (version, advert_int, auth_pass) {
            (Some(VrrpVersion::V3), Some(advert_int), Some(auth_pass)) => {
                if auth_pass.is_some() {
                    let origin = r.origin(Key::AuthPass);
                    r.conflict(format!(
                        "{origin} is set but VRRPv3 has no authentication (RFC 5798 removed it; \
                         keepalived ignores auth_pass with v3): remove it, or set vrrp_version = 2"
                    ));
                }
                let advert_int = advert_int.unwrap_or(DEFAULT_ADVERT_INT_V3);
                if advert_int.centis() > 4095 {
                    let origin = r.origin(Key::AdvertInt);
                    r.conflict(format!(
                        "{origin} = {advert_int}: VRRPv3 allows at most 40.95 seconds"
                    ));
                }
                Some(Vrrp::V3 { advert_int })
            }
            (Some(VrrpVersion::V2), Some(advert_int), Some(auth_pass)) => {
                let advert_int = advert_int.unwrap_or(DEFAULT_ADVERT_INT_V2);
                if !advert_int.is_whole_seconds() {
                    let origin = r.origin(Key::AdvertInt);
                    r.conflict(format!(
                        "{origin} = {advert_int}: VRRPv2 advertises in whole seconds; use \
                         vrrp_version = 3 for sub-second intervals"
                    ));
                }
                Some(Vrrp::V2 {
                    advert_int,
                    auth_pass,
                })
            }
            _ => None,
        };

        let (
            Some(role),
            Some(ha_ip),
            Some(peers),
            Some(vip),
            Some(ha_if),
            Some(vip_if),
            Some(vrid),
            Some(priority),
            Some(hostname),
            Some(vrrp),
            Some(command),
            Some(interval),
            Some(timeout),
            Some(rise),
            Some(fall),
            Some(gateway),
            Some(dns),
            Some(ntp),
            Some(ports),
            Some(ssh),
            Some(metrics_from),
        ) = (
            role,
            ha_ip,
            peers,
            vip,
            ha_if,
            vip_if,
            vrid,
            priority,
            hostname,
            vrrp,
            command,
            interval,
            timeout,
            rise,
            fall,
            gateway,
            dns,
            ntp,
            ports,
            ssh,
            metrics_from,
        )
        else {
            return Err(Problems(r.problems));
        };

        check_topology(&mut r, &ha_ip, &peers, &vip, &ha_if, &vip_if);
        let public = match (public_ip, public_peers) {
            (Some(ip), Some(public_peers)) => {
                check_public(&mut r, ip, public_peers, &ha_ip, &peers, &vip)
            }
            _ => None, // invalid values are among the problems already
        };
        if let Some(gw) = gateway {
            check_gateway(&mut r, gw, public.as_ref(), &ha_ip, &peers, &vip);
        }
        check_servers_family(&mut r, dns.as_ref(), ntp.as_ref(), &ha_ip);
        if !r.problems.is_empty() {
            return Err(Problems(r.problems));
        }

        let priority = priority.unwrap_or_else(|| default_priority(role, &ha_ip, &peers));
        Ok(NodeConfig {
            role,
            ha_ip,
            peers,
            vip,
            ha_if,
            vip_if,
            vrid,
            priority,
            hostname,
            vrrp,
            health: Health {
                command,
                interval,
                timeout,
                rise,
                fall,
            },
            basics: NetworkBasics { gateway, dns, ntp },
            firewall: Firewall {
                ports,
                ssh: ssh.0,
                metrics_from: metrics_from.unwrap_or_else(|| MetricsFrom::ha_link(&ha_ip)),
            },
            public,
        })
    }

    /// The node's name: its host name when the metadata gives one, else one derived from its
    /// HA address (`axoha-192-0-2-10`), stable and unique in the cluster. It is the host
    /// name, keepalived's `router_id` and the name on the console's SUCCESS line.
    pub fn node_name(&self) -> Hostname {
        match &self.hostname {
            Some(h) => h.clone(),
            None => {
                let addr = self.ha_ip.addr().to_string().replace(['.', ':'], "-");
                format!("axoha-{}", addr.trim_end_matches('-'))
                    .parse()
                    .expect("letters, digits and inner hyphens")
            }
        }
    }

    /// This node's own address on `vip_if`, where it has one.
    pub fn public_address(&self) -> Option<IpNet> {
        self.public.as_ref().map(|p| p.ip)
    }

    pub fn router_id(&self) -> String {
        self.node_name().to_string()
    }
}

fn check_topology(
    r: &mut Reader,
    ha_ip: &IpNet,
    peers: &Peers,
    vip: &IpNet,
    ha_if: &InterfaceName,
    vip_if: &InterfaceName,
) {
    if peers.contains(&ha_ip.addr()) {
        let (a, b) = (r.origin(Key::HaIp), r.origin(Key::Peers));
        r.conflict(format!(
            "{a} = {ha_ip}: this node's own HA address is listed in {b}; peers are the other nodes"
        ));
    }
    if vip.addr() == ha_ip.addr() || peers.contains(&vip.addr()) {
        let (a, b) = (r.origin(Key::Vip), r.origin(Key::HaIp));
        r.conflict(format!(
            "{a} = {vip}: the VIP must not be a node's HA address ({b} and peers)"
        ));
    }
    // A peer address is a host on the HA subnet (when it is on it at all).
    if let Some(p) = peers.iter().find(|p| ha_ip.is_network_or_broadcast(**p)) {
        let b = r.origin(Key::Peers);
        r.conflict(format!(
            "{b} lists {p}, the network or broadcast address of {}, which no node can have",
            ha_ip.network()
        ));
    }
    // keepalived sends unicast adverts out of `ha_if` only: a peer off `ha_ip`'s subnet has no
    // route there (with the HA link as the only path, each node then takes the VIP alone).
    let outside: Vec<String> = peers
        .iter()
        .filter(|p| p.is_ipv4() == ha_ip.addr().is_ipv4() && !ha_ip.contains(**p))
        .map(ToString::to_string)
        .collect();
    if !outside.is_empty() {
        let (a, b) = (r.origin(Key::HaIp), r.origin(Key::Peers));
        r.conflict(format!(
            "{b} lists {}, outside the HA subnet {} of {a} = {ha_ip}: VRRP adverts never cross \
             a router, every peer must be on the HA link's subnet",
            outside.join(", "),
            ha_ip.network()
        ));
    }
    let v4 = ha_ip.addr().is_ipv4();
    if vip.addr().is_ipv4() != v4 || peers.iter().any(|p| p.is_ipv4() != v4) {
        let (a, b, c) = (
            r.origin(Key::HaIp),
            r.origin(Key::Peers),
            r.origin(Key::Vip),
        );
        r.conflict(format!(
            "{a}, {b} and {c} mix IPv4 and IPv6: one VRRP instance speaks one family"
        ));
    }
    if ha_if == vip_if {
        let (a, b) = (r.origin(Key::HaIf), r.origin(Key::VipIf));
        r.conflict(format!(
            "{a} and {b} are both {ha_if}: the HA link is a dedicated interface (its firewall \
             zone accepts only VRRP from the peers)"
        ));
    }
}

/// The default route leaves through `vip_if` from this node's own address there: a node
/// without `public_ip` has no source address on the VIP network (a backup holds no VIP), so it
/// could not use a gateway. The gateway is a router on `public_ip`'s network, none of the
/// cluster's own addresses.
fn check_gateway(
    r: &mut Reader,
    gw: Gateway,
    public: Option<&PublicPath>,
    ha_ip: &IpNet,
    peers: &Peers,
    vip: &IpNet,
) {
    let gw = gw.addr();
    let origin = r.origin(Key::Gateway);
    let Some(public) = public else {
        r.conflict(format!(
            "{origin} = {gw} needs public_ip (and public_peers): the default route leaves \
             through vip_if, where a node without an address of its own cannot send"
        ));
        return;
    };
    let net = public.ip;
    if !net.contains(gw) {
        r.conflict(format!(
            "{origin} = {gw} is not on this node's network on vip_if ({}, from public_ip)",
            net.network()
        ));
    } else if gw == vip.addr()
        || gw == ha_ip.addr()
        || peers.contains(&gw)
        || gw == net.addr()
        || public.peers.contains(&gw)
    {
        r.conflict(format!(
            "{origin} = {gw} is the VIP or a node's address, not a router"
        ));
    } else if net.is_network_or_broadcast(gw) {
        r.conflict(format!(
            "{origin} = {gw} is the network or broadcast address of {}",
            net.network()
        ));
    }
}

/// The rules of [`PublicPath`]; `None` when the keys are absent or break a rule.
fn check_public(
    r: &mut Reader,
    ip: Option<IpNet>,
    public_peers: Option<Peers>,
    ha_ip: &IpNet,
    peers: &Peers,
    vip: &IpNet,
) -> Option<PublicPath> {
    let (ip, public_peers) = match (ip, public_peers) {
        (None, None) => return None,
        (Some(ip), Some(p)) => (ip, p),
        (set, _) => {
            let (a, b) = if set.is_some() {
                (Key::PublicIp, Key::PublicPeers)
            } else {
                (Key::PublicPeers, Key::PublicIp)
            };
            let origin = r.origin(a);
            r.conflict(format!(
                "{origin} is set but {b} is not: the heartbeat over the VIP network needs both \
                 (or neither, for the HA link alone)"
            ));
            return None;
        }
    };
    let before = r.problems.len();
    let (o_ip, o_peers) = (r.origin(Key::PublicIp), r.origin(Key::PublicPeers));
    if public_peers.len() != peers.len() {
        let o_ha = r.origin(Key::Peers);
        r.conflict(format!(
            "{o_peers} lists {} address(es) but {o_ha} lists {}: one address on the VIP network \
             per peer, in the same order",
            public_peers.len(),
            peers.len()
        ));
    }
    if public_peers.contains(&ip.addr()) {
        r.conflict(format!(
            "{o_ip} = {ip}: this node's own address is listed in {o_peers}; they are the other nodes"
        ));
    }
    let all = || std::iter::once(ip.addr()).chain(public_peers.iter().copied());
    if all().any(|a| a.is_ipv4() != ha_ip.addr().is_ipv4()) {
        r.conflict(format!(
            "{o_ip} and {o_peers} mix IPv4 and IPv6 with the HA addresses and the VIP: one \
             family per cluster"
        ));
    } else if all().any(|a| a == vip.addr()) {
        let o_vip = r.origin(Key::Vip);
        r.conflict(format!(
            "{o_vip} = {vip} is also in {o_ip} or {o_peers}: the VIP moves between nodes, a \
             node's own address does not"
        ));
    } else if all().any(|a| a == ha_ip.addr() || peers.contains(&a)) {
        r.conflict(format!(
            "{o_ip} or {o_peers} repeats an HA address: the VIP network is a second path, with \
             addresses of its own"
        ));
    } else if let Some(p) =
        all().find(|a| ip.is_network_or_broadcast(*a) || vip.is_network_or_broadcast(*a))
    {
        r.conflict(format!(
            "{o_ip} or {o_peers}: {p} is the network or broadcast address of {}, which no \
             node can have",
            ip.network()
        ));
    } else if !ip.contains(vip.addr()) || public_peers.iter().any(|p| !ip.contains(*p)) {
        r.conflict(format!(
            "{o_ip} = {ip}: the VIP {vip} and every address of {o_peers} must be in this subnet \
             (the VIP lives beside it on vip_if, and VRRP adverts carry TTL 255, so they never \
             cross a router)"
        ));
    }
    (r.problems.len() == before).then_some(PublicPath {
        ip,
        peers: public_peers,
    })
}

/// Name and time servers given by address are of the node's one family: its links are
/// configured for that family only (NetworkManager's other family is `disabled` and takes no
/// DNS there), so a server of the other family would be written nowhere, or never answer.
fn check_servers_family(
    r: &mut Reader,
    dns: Option<&DnsServers>,
    ntp: Option<&NtpServers>,
    ha_ip: &IpNet,
) {
    let v4 = ha_ip.addr().is_ipv4();
    let family = if v4 { "IPv4" } else { "IPv6" };
    let dns = dns
        .into_iter()
        .flat_map(|d| d.iter().copied().map(|a| (Key::Dns, a)));
    let ntp = ntp.into_iter().flat_map(|n| {
        n.iter().filter_map(|s| match s {
            NtpServer::Addr(a) => Some((Key::Ntp, *a)),
            NtpServer::Name(_) => None,
        })
    });
    let other: Vec<(Key, IpAddr)> = dns.chain(ntp).filter(|(_, a)| a.is_ipv4() != v4).collect();
    for (key, addr) in other {
        let origin = r.origin(key);
        r.conflict(format!(
            "{origin}: {addr} is not {family}, and this node's addresses are ({ha_ip}): its \
             links speak one family, so that server could never be reached"
        ));
    }
}

/// Primary: 254. Secondaries: distinct lower priorities without any coordination, from the
/// rank of the node's HA address among all HA addresses (which every node knows the same).
fn default_priority(role: Role, ha_ip: &IpNet, peers: &Peers) -> Priority {
    match role {
        Role::Primary => Priority::new(254).expect("in range"),
        Role::Secondary => {
            let mut all: Vec<IpAddr> = peers.iter().copied().collect();
            all.push(ha_ip.addr());
            all.sort();
            let rank = all.iter().position(|a| *a == ha_ip.addr()).unwrap_or(0) as u32;
            // Spread over 200..10: a wide gap between secondaries makes their takeover
            // delays (skew time, (256 - priority) / 256 adverts) differ by tens of ms, so
            // only one of them claims the VIP when the primary dies.
            let step = 190 / all.len() as u32;
            Priority::new(200 - step * rank).expect("in range")
        }
    }
}

/// The resolved values, for `render --explain` and node.toml; secrets are redacted.
pub fn explain(resolved: &Resolved) -> BTreeMap<Key, (String, Source)> {
    resolved
        .iter()
        .map(|(k, s)| {
            let v = if k.is_secret() {
                "<redacted>".to_owned()
            } else {
                s.value.clone()
            };
            (*k, (v, s.source))
        })
        .collect()
}

/// Types every value that is set, without requiring the per-node keys: for cluster defaults
/// checked at image build time, long before a node boots with them.
pub fn check_values(resolved: &Resolved) -> Result<(), Problems> {
    let problems: Vec<Problem> = resolved
        .iter()
        .filter_map(|(key, s)| {
            key.check(&s.value)
                .err()
                .map(|ValueError(reason)| Problem::Invalid {
                    key: *key,
                    source: s.source,
                    value: s.value.clone(),
                    reason,
                })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node computes its own default priority without coordination: for every cluster
    /// size the bound on peers allows, and every rank, the secondaries' priorities differ
    /// from each other and stay below the primary's.
    #[test]
    fn default_priorities_are_distinct_for_every_allowed_cluster_size() {
        for others in 1..=Peers::MAX {
            let addrs: Vec<String> = (1..=others + 1).map(|i| format!("192.0.2.{i}")).collect();
            let mut seen = std::collections::BTreeSet::new();
            for (i, own) in addrs.iter().enumerate() {
                let ha_ip: IpNet = format!("{own}/24").parse().unwrap();
                let peers: Peers = addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
                    .parse()
                    .unwrap();
                let p = default_priority(Role::Secondary, &ha_ip, &peers);
                assert!(p.get() < 254, "{others} peers: {p}");
                assert!(seen.insert(p), "{others} peers: {p} given twice");
            }
        }
        let nine: Vec<String> = (1..=Peers::MAX + 1)
            .map(|i| format!("192.0.2.{i}"))
            .collect();
        assert!(nine.join(",").parse::<Peers>().is_err());
    }
}
