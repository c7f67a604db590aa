//! `axoha-firstboot status` on a test root: the config from the root's metadata, the state
//! changes the notify script recorded in the run directory, the real notify script itself.

mod common;

use std::process::Command;

use common::{stderr, stdout, Root, GOOD_CMDLINE, PUBLIC};

/// Runs the notify script as keepalived would, recording into `run_dir`.
fn notify(run_dir: &std::path::Path, args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/files/vrrp-notify");
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .env("AXOHA_RUN_DIR", run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn status_shows_role_state_paths_and_transitions() {
    let root = Root::new();
    root.write("proc/cmdline", &format!("{GOOD_CMDLINE}{PUBLIC}"));
    let run = root.path().join("run/axoha");
    notify(&run, &["GROUP", "axoha", "BACKUP", "254"]);
    notify(&run, &["GROUP", "axoha", "MASTER", "254"]);

    let out = root.run("status", &["--listen-ms", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "router-a (primary, priority 254)",
        "VRRP:      MASTER",
        "198.51.100.64/24 on pub0",
        "heartbeat: not checked",
        " axoha BACKUP (priority 254)",
        " axoha MASTER (priority 254)",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }

    let out = root.run("status", &["--listen-ms", "0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["vrrp_state"], "MASTER");
    assert_eq!(json["role"], "primary");
    assert_eq!(json["transitions"].as_array().unwrap().len(), 2);
    assert_eq!(json["paths"][0]["interface"], "ha0");
    assert_eq!(json["paths"][1]["path"], "vip network");
    assert_eq!(json["paths"][1]["peers"][1]["address"], "198.51.100.12");
}

#[test]
fn notify_keeps_the_last_twenty_transitions() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let run = root.path().join("elsewhere");
    for i in 0..25 {
        notify(
            &run,
            &[
                "INSTANCE",
                "axoha",
                if i % 2 == 0 { "MASTER" } else { "BACKUP" },
                "254",
            ],
        );
    }
    let out = root.run(
        "status",
        &[
            "--listen-ms",
            "0",
            "--json",
            "--run-dir",
            run.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["transitions"].as_array().unwrap().len(), 20);
    assert_eq!(json["vrrp_state"], "MASTER");
    assert_eq!(json["paths"].as_array().unwrap().len(), 1, "HA link only");
    let text = stdout(&root.run(
        "status",
        &["--listen-ms", "0", "--run-dir", run.to_str().unwrap()],
    ));
    assert!(
        text.contains("the HA link is the only heartbeat path"),
        "{text}"
    );
}

#[test]
fn status_without_metadata_names_what_is_missing() {
    let root = Root::new();
    let out = root.run("status", &["--listen-ms", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing role"), "{}", stderr(&out));
}
