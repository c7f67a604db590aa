//! `/etc/keepalived/keepalived.conf`.
//!
//! The template only ever sees typed values (see `types`), rendered through `Display`, so the
//! output has the same lines whatever the metadata said. The VRRP interface is tracked
//! implicitly; `track_interface` lists only the VIP interface (listing both makes keepalived
//! warn, and `keepalived -t` exits 5 on warnings).

use minijinja::Environment;
use serde::Serialize;

use crate::config::NodeConfig;
use crate::types::Role;

const TEMPLATE: &str = include_str!("../../templates/keepalived.conf.j2");

#[derive(Serialize)]
struct View {
    router_id: String,
    vrrp_version: String,
    state: &'static str,
    ha_if: String,
    ha_addr: String,
    vrid: String,
    priority: String,
    advert_int: String,
    auth_pass: Option<String>,
    notify: Option<&'static str>,
    peers: Vec<String>,
    vip: String,
    vip_if: String,
    health: HealthView,
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

/// `notify`: whether the root has [`NOTIFY_SCRIPT`] (a test root or a foreign image may not;
/// keepalived refuses a config naming a missing script).
pub fn render(config: &NodeConfig, notify: bool) -> String {
    let view = View {
        router_id: config.router_id(),
        vrrp_version: config.vrrp.version().to_string(),
        state: match config.role {
            Role::Primary => "MASTER",
            Role::Secondary => "BACKUP",
        },
        ha_if: config.ha_if.to_string(),
        ha_addr: config.ha_ip.addr().to_string(),
        vrid: config.vrid.to_string(),
        priority: config.priority.to_string(),
        advert_int: config.vrrp.advert_int().to_string(),
        auth_pass: config.vrrp.auth_pass().map(|p| p.expose().to_owned()),
        notify: notify.then_some(NOTIFY_SCRIPT),
        peers: config.peers.iter().map(ToString::to_string).collect(),
        vip: config.vip.to_string(),
        vip_if: config.vip_if.to_string(),
        health: HealthView {
            command: config.health.command.to_string(),
            interval: config.health.interval.to_string(),
            timeout: config.health.timeout.to_string(),
            rise: config.health.rise.to_string(),
            fall: config.health.fall.to_string(),
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
