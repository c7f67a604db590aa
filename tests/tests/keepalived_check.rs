//! keepalived itself accepts every config `axoha-firstboot` renders, for 2- and 3-node clusters.
//!
//! `keepalived -t` is run inside each node's namespace because it checks that the interfaces the
//! config names (ha0, pub0) exist; it exits 0 only when it reports nothing, so a warning fails
//! the test just like an error does.

use std::fs;
use std::path::Path;

use anyhow::{ensure, Result};
use axoha_tests::cluster::{Cluster, HaWiring, Layout, Settings};
use axoha_tests::keepalived;

fn base() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Runs `keepalived -t` on node `i`'s config at `path` and fails with its output and the config.
fn config_test(c: &Cluster, i: usize, path: &Path) -> Result<()> {
    let (code, out) = keepalived::config_test(c.namespace(i), path)?;
    ensure!(
        code == 0,
        "keepalived -t rejected node {i}'s config (exit {code}):\n{out}\n----- {} -----\n{}",
        path.display(),
        fs::read_to_string(path).unwrap_or_default()
    );
    Ok(())
}

fn check_rendered(tag: &str, n: usize, settings: Settings) -> Result<()> {
    check_layout(tag, Layout::ha_only(n), settings)
}

fn check_layout(tag: &str, layout: Layout, settings: Settings) -> Result<()> {
    let n = layout.nodes;
    let mut c = Cluster::with_layout(tag, layout, settings, base())?;
    let rendered: Vec<String> = (0..n).map(|i| c.render(i)).collect::<Result<_>>()?;
    for (i, conf) in rendered.iter().enumerate() {
        let path = c.dir().join(format!("node{i}-rendered.conf"));
        fs::write(&path, conf)?;
        config_test(&c, i, &path)?;
    }
    // What `apply` writes is what `render` prints, and keepalived accepts it where it lies.
    c.apply()?;
    for (i, conf) in rendered.iter().enumerate() {
        let written = fs::read_to_string(c.conf_path(i))?;
        ensure!(
            &written == conf,
            "node {i}: apply wrote a different keepalived.conf than render printed:\n\
             ----- render -----\n{conf}\n----- apply -----\n{written}"
        );
        config_test(&c, i, &c.conf_path(i))?;
    }
    Ok(())
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn two_node_configs_pass_keepalived_check() -> Result<()> {
    check_rendered("kc2", 2, Settings::fast())
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn three_node_configs_pass_keepalived_check() -> Result<()> {
    check_rendered("kc3", 3, Settings::fast())
}

/// The binary's own defaults (cluster.toml sets only the health command).
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn default_settings_configs_pass_keepalived_check() -> Result<()> {
    check_rendered("kcdef", 3, Settings::axoha_defaults())
}

/// VRRPv2 with whole-second adverts, as in the keepalived guide.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn keepalived_guide_settings_configs_pass_keepalived_check() -> Result<()> {
    check_rendered("kcguide", 2, Settings::keepalived_guide())
}

/// Two heartbeat paths (sync group, HA-link and VIP-network instances), each timing profile.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn two_path_configs_pass_keepalived_check() -> Result<()> {
    let two_paths = |nodes, ha| Layout {
        nodes,
        ha,
        public_path: true,
    };
    check_layout("kctp2", two_paths(2, HaWiring::Cable), Settings::fast())?;
    check_layout(
        "kctp3",
        two_paths(3, HaWiring::Switch),
        Settings::axoha_defaults(),
    )?;
    check_layout(
        "kctpg",
        two_paths(2, HaWiring::Switch),
        Settings::keepalived_guide(),
    )
}

/// Harness self-check: the hand-written config of the design passes too, so a failure above
/// points at the rendered config, not at the namespaces or at how keepalived is run.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn reference_configs_pass_keepalived_check() -> Result<()> {
    let mut c = Cluster::new("kcref", 3, Settings::fast(), base())?;
    c.apply_reference()?;
    (0..3).try_for_each(|i| config_test(&c, i, &c.conf_path(i)))
}

/// `axoha-firstboot health` judges the keepalived that runs by its `/proc/PID/cmdline`. The
/// harness starts a real keepalived with `-f` naming the test node's file, not
/// /etc/keepalived/keepalived.conf: the check must call that foreign, and the very same
/// command line with our file ours (so keepalived keeps its argv as started, and the
/// harness's logging and pid-file options pass).
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn health_judges_a_running_keepalived_by_its_command_line() -> Result<()> {
    use axoha_firstboot::health::{running_of, running_pid, Running};
    let mut c = Cluster::with_layout("kh", Layout::ha_only(2), Settings::fast(), base())?;
    c.apply()?;
    c.start(0)?;
    let pid = c.keepalived_pid(0).expect("started");
    let conf = c.conf_path(0).display().to_string();
    ensure!(
        running_pid(pid) == Running::Foreign(format!("-f {conf}")),
        "{:?}",
        running_pid(pid)
    );
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))?;
    let text = String::from_utf8(cmdline)?;
    let argv: Vec<&str> = text
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a == conf {
                "/etc/keepalived/keepalived.conf"
            } else {
                a
            }
        })
        .collect();
    ensure!(
        running_of(&argv) == Running::Ours,
        "{argv:?}: {:?}",
        running_of(&argv)
    );
    c.stop(0)?;
    Ok(())
}
