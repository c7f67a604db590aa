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

/// keepalived does not wait for its notify script: copies run at once on quick transitions.
/// None loses another's line or count, and the lines stay in time order.
#[test]
fn notify_copies_at_once_lose_nothing_and_keep_time_order() {
    let run = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/files/vrrp-notify");
    let copies: Vec<_> = (0..16)
        .map(|i| {
            Command::new("sh")
                .arg(script)
                .args(["GROUP", "axoha", ["BACKUP", "MASTER"][i % 2], "254"])
                .env("AXOHA_RUN_DIR", run.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in copies {
        assert!(c.wait().unwrap().success());
    }
    let transitions = std::fs::read_to_string(run.path().join("transitions")).unwrap();
    let times: Vec<&str> = transitions
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(times.len(), 16, "{transitions}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{transitions}");
    let counts = std::fs::read_to_string(run.path().join("counts")).unwrap();
    assert_eq!(counts, "axoha 16\n");
}

#[test]
fn status_without_metadata_names_what_is_missing() {
    let root = Root::new();
    let out = root.run("status", &["--listen-ms", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing role"), "{}", stderr(&out));
}

/// A line the notify script could have written.
const LINE: &str = "2026-11-26T10:00:00.000Z axoha BACKUP 254\n";

/// `status` and `health` with `transitions` as `prepare` leaves it: (status, health) outputs,
/// each within 5 s (a FIFO must never block them).
fn status_and_health(
    prepare: impl Fn(&Root, &std::path::Path),
) -> (std::process::Output, std::process::Output) {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("transitions"),
        "2026-11-26T10:00:00.000Z axoha OUTSIDE-SECRET 254\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("run/axoha")).unwrap();
    prepare(&root, outside.path());
    let started = std::time::Instant::now();
    let status = root.run("status", &["--listen-ms", "0"]);
    let health = root.run("health", &["--wait", "0"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    for out in [&status, &health] {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(
            !all.contains("OUTSIDE-SECRET"),
            "read outside the root: {all}"
        );
        assert!(
            !all.contains('\u{1b}'),
            "an escape reached the terminal: {all:?}"
        );
    }
    (status, health)
}

#[test]
fn transitions_are_read_inside_the_root_only() {
    // The file a link outside the root: refused by name, never followed.
    let (status, health) = status_and_health(|root, outside| {
        std::os::unix::fs::symlink(
            outside.join("transitions"),
            root.path().join("run/axoha/transitions"),
        )
        .unwrap();
    });
    assert_eq!(status.status.code(), Some(5), "{}", stderr(&status));
    assert!(
        stderr(&status).contains("symbolic link"),
        "{}",
        stderr(&status)
    );
    assert!(stdout(&health).contains("symbolic link") || stderr(&health).contains("symbolic link"));
    // The run directory a link outside: resolved inside the root, where there is nothing.
    let (status, _) = status_and_health(|root, outside| {
        std::fs::remove_dir(root.path().join("run/axoha")).unwrap();
        std::os::unix::fs::symlink(outside, root.path().join("run/axoha")).unwrap();
    });
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("none recorded"),
        "{}",
        stdout(&status)
    );
    // A --run-dir the notify script has not made yet: nothing recorded, not an error.
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    let missing = root.path().join("not-yet");
    let out = root.run(
        "status",
        &["--listen-ms", "0", "--run-dir", missing.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("none recorded"), "{}", stdout(&out));
}

#[test]
fn a_fifo_in_place_of_transitions_never_blocks() {
    let (status, health) = status_and_health(|root, _| {
        nix::unistd::mkfifo(
            &root.path().join("run/axoha/transitions"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
    });
    assert_eq!(status.status.code(), Some(5), "{}", stderr(&status));
    assert!(
        stderr(&status).contains("not a regular file"),
        "{}",
        stderr(&status)
    );
    let said = format!("{}{}", stdout(&health), stderr(&health));
    assert!(!health.status.success());
    assert!(said.contains("not a regular file"), "{said}");
}

#[test]
fn bad_lines_are_skipped_not_the_file_and_nothing_reaches_the_terminal_raw() {
    let (status, _) = status_and_health(|root, _| {
        let mut bytes = LINE.as_bytes().to_vec();
        bytes.extend_from_slice(b"2026-11-26T10:00:01.000Z axoha MASTER \xff\n");
        bytes.extend_from_slice(b"2026-11-26T10:00:02.000Z axoha \x1b[2J\x1b[1;1HMASTER 254\n");
        bytes.extend_from_slice(b"2026-11-26T10:00:03.000Z \xe2\x80\xae axoha FAULT 254\n");
        bytes.extend_from_slice(b"\x1b]0;title\x07\n");
        bytes.extend_from_slice(b"2026-11-26T10:00:04.000Z axoha MASTER 254");
        std::fs::write(root.path().join("run/axoha/transitions"), bytes).unwrap();
    });
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains("VRRP:      MASTER"), "{text}");
    assert!(text.contains(" axoha BACKUP (priority 254)"), "{text}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    let shown = text.split("transitions (newest last):").nth(1).unwrap();
    assert_eq!(shown.lines().filter(|l| !l.is_empty()).count(), 2, "{text}");
}
