//! `/etc/keepalived/keepalived.conf`.
//!
//! The template only ever sees typed values (see `types`), rendered through `Display`, so the
//! output has the same lines whatever the metadata said. The VRRP interface is tracked
//! implicitly; `track_interface` lists only the VIP interface (listing both makes keepalived
//! warn, and `keepalived -t` exits 5 on warnings).
//!
//! With a second heartbeat path (`NodeConfig::public`) there are two instances in one
//! `vrrp_sync_group`: [`HA_INSTANCE`] on the HA link and [`PUBLIC_INSTANCE`] on the VIP
//! network. keepalived moves a group to MASTER only when every member wants to (so a backup
//! that still hears the master on one path stays backup), and to FAULT when any member is in
//! FAULT (so the VIP link or the health check failing still hands the VIP over). That is why:
//! - the HA instance has `dont_track_primary`: a pulled HA cable must not fault the group;
//! - the health check is tracked by the public instance only, whose own interface is
//!   `vip_if` (tracked implicitly): one FAULT is enough for the group.
//!
//! Every instance tracks the two drain files (`drain`) with a weight, not a FAULT: a drained
//! node stays a healthy BACKUP advertising priority 1 on every path, so any healthy peer takes
//! the VIP by preemption and the drained node still takes it when no other node can.
//!
//! `vrrp_higher_prio_send_advert`: after a split brain is repaired, whichever advert crosses
//! first decides; when the keeper's arrives first, the other node steps down silently and
//! nobody sends gratuitous ARP, so clients keep the loser's MAC until their neighbour entry
//! expires (39-52 s measured, 4 repairs of 14). With it the keeper answers the loser's lower
//! advert with its own and its gratuitous ARPs at once (20 of 20 measured, client moved in
//! 0.13 s). `vrrp_garp_master_refresh` alone did not help.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::config::NodeConfig;
use crate::drain;
use crate::types::Role;

const TEMPLATE: &str = include_str!("../../templates/keepalived.conf.j2");

#[derive(Serialize)]
struct View {
    router_id: String,
    vrrp_version: String,
    state: &'static str,
    vrid: String,
    priority: String,
    advert_int: String,
    auth_pass: Option<String>,
    /// The sync group's name and notify script (two paths only).
    group: Option<&'static str>,
    notify: Option<&'static str>,
    instances: Vec<InstanceView>,
    health: HealthView,
    drain: DrainView,
}

/// The two drain files keepalived tracks (see `drain`), as absolute paths.
#[derive(Serialize)]
struct DrainView {
    weight: i32,
    operator: String,
    reboot: String,
}

/// One `vrrp_instance`: one heartbeat path.
#[derive(Serialize)]
struct InstanceView {
    name: &'static str,
    comment: Option<String>,
    interface: String,
    dont_track_primary: bool,
    src: String,
    peers: Vec<String>,
    address: String,
    track_interface: Option<String>,
    track_health: bool,
    notify: Option<&'static str>,
}

#[derive(Serialize)]
struct HealthView {
    command: String,
    interval: String,
    timeout: String,
    rise: String,
    fall: String,
}

/// Installed in the image: keepalived runs it on every state change and it prints the new
/// state on the console, where an operator (and the VM tests) can see which node holds the VIP.
/// Under `/usr/libexec/keepalived/`, where the RHEL targeted policy labels keepalived's scripts
/// `keepalived_unconfined_script_exec_t` (keepalived_t runs them, in a domain of their own);
/// anywhere under `/usr/lib/` it would be `lib_t`, which keepalived_t may not execute. The
/// builder installs the script at this same path (`layer.rs`).
pub const NOTIFY_SCRIPT: &str = "/usr/libexec/keepalived/axoha-vrrp-notify";

/// The only instance with the HA link alone; with two paths, the sync group (so the console
/// says `VRRP axoha is now MASTER` either way).
pub const GROUP: &str = "axoha";
/// With two paths: the instance on the HA link...
pub const HA_INSTANCE: &str = "axoha_ha";
/// ...and the instance on the VIP network, which holds the VIP.
pub const PUBLIC_INSTANCE: &str = "axoha_pub";

/// The HA instance's own address. keepalived refuses an instance without one ("No VIP
/// specified") and drops adverts whose address list differs from its own, so it must be the
/// same on every node. The VIP itself as a host address on `lo` is the one that adds nothing
/// to any network: it is present exactly where the real VIP is (the group moves together),
/// `lo` sends no ARP/NA (keepalived skips gratuitous ARP on NOARP links), a /32 or /128 adds
/// no subnet route, and `scope host` keeps it from being picked as a source address. A spare
/// address on the HA link could collide with a host on a shared HA VLAN; this one cannot.
fn ha_instance_address(config: &NodeConfig) -> String {
    let host = if config.vip.addr().is_ipv4() { 32 } else { 128 };
    format!("{}/{host} dev lo scope host no_track", config.vip.addr())
}

fn instances(config: &NodeConfig, notify: Option<&'static str>) -> Vec<InstanceView> {
    let peers = |p: &crate::types::Peers| p.iter().map(ToString::to_string).collect();
    let vip = format!("{} dev {}", config.vip, config.vip_if);
    let Some(public) = &config.public else {
        return vec![InstanceView {
            name: GROUP,
            comment: None,
            interface: config.ha_if.to_string(),
            dont_track_primary: false,
            src: config.ha_ip.addr().to_string(),
            peers: peers(&config.peers),
            address: vip,
            track_interface: Some(config.vip_if.to_string()),
            track_health: true,
            notify,
        }];
    };
    vec![
        InstanceView {
            name: HA_INSTANCE,
            comment: Some(
                "Heartbeat over the HA link. Its address is the VIP as a host address on lo:\n\
                 # present exactly where the VIP is, invisible on every network."
                    .into(),
            ),
            interface: config.ha_if.to_string(),
            dont_track_primary: true,
            src: config.ha_ip.addr().to_string(),
            peers: peers(&config.peers),
            address: ha_instance_address(config),
            track_interface: None,
            track_health: false,
            notify: None,
        },
        InstanceView {
            name: PUBLIC_INSTANCE,
            comment: Some("Heartbeat over the VIP network; holds the VIP.".into()),
            interface: config.vip_if.to_string(),
            dont_track_primary: false,
            src: public.ip.addr().to_string(),
            peers: peers(&public.peers),
            address: vip,
            track_interface: None,
            track_health: true,
            notify: None,
        },
    ]
}

/// `notify`: whether the root has [`NOTIFY_SCRIPT`] (a test root or a foreign image may not;
/// keepalived refuses a config naming a missing script). `root`: where the node's files are
/// as keepalived sees them, `/` on a node (a test root runs keepalived on the host's paths).
pub fn render(config: &NodeConfig, notify: bool, root: &Path) -> String {
    let notify = notify.then_some(NOTIFY_SCRIPT);
    let two_paths = config.public.is_some();
    let view = View {
        router_id: config.router_id(),
        vrrp_version: config.vrrp.version().to_string(),
        state: match config.role {
            Role::Primary => "MASTER",
            Role::Secondary => "BACKUP",
        },
        vrid: config.vrid.to_string(),
        priority: config.priority.to_string(),
        advert_int: config.vrrp.advert_int().to_string(),
        auth_pass: config.vrrp.auth_pass().map(|p| p.expose().to_owned()),
        group: two_paths.then_some(GROUP),
        notify: notify.filter(|_| two_paths),
        instances: instances(config, notify.filter(|_| !two_paths)),
        health: HealthView {
            command: config.health.command.to_string(),
            interval: config.health.interval.to_string(),
            timeout: config.health.timeout.to_string(),
            rise: config.health.rise.to_string(),
            fall: config.health.fall.to_string(),
        },
        drain: DrainView {
            weight: drain::WEIGHT,
            operator: root.join(drain::DRAIN_FILE).display().to_string(),
            reboot: root.join(drain::REBOOT_DRAIN_FILE).display().to_string(),
        },
    };
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    // The template is ours and fixed, and every value is typed: a failure here is a bug.
    env.add_template("keepalived.conf", TEMPLATE)
        .expect("keepalived template parses");
    env.get_template("keepalived.conf")
        .and_then(|t| t.render(&view))
        .expect("keepalived template renders")
}
