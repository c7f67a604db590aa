//! All or nothing, as keepalived sees it: a run that fails part-way leaves the previous set
//! and no stamp (keepalived and axorouter are gated on the stamp), and two runs at once
//! never leave a mixed set behind a success.

mod common;

use std::process::{Command, Stdio};

use common::{stderr, Root, BIN, GOOD_CMDLINE};

const STAMP: &str = "var/lib/axoha/firstboot.done";

/// Leftovers of a run: temporaries and kept copies are hidden files with our marker.
fn leftovers(root: &Root) -> Vec<String> {
    root.snapshot()
        .into_keys()
        .map(|p| p.display().to_string())
        .filter(|p| p.contains(".axoha-"))
        .collect()
}

/// A directory where a file of the set should be (`etc/hostname`, late in the set): the
/// run fails before renaming anything, the old set stays, and there is no stamp.
#[test]
fn a_directory_in_place_of_a_file_leaves_the_old_set_and_no_stamp() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    assert!(root.run("apply", &["--no-start"]).status.success());
    let old_conf = root.read("etc/keepalived/keepalived.conf");
    std::fs::remove_file(root.path().join("etc/hostname")).unwrap();
    root.write("etc/hostname/occupied", "x");
    root.write(
        "proc/cmdline",
        &GOOD_CMDLINE.replace("axoha.vrid=51", "axoha.vrid=52"),
    );
    let run = root.run("apply", &["--no-start", "--force"]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(3), "{err}");
    assert!(
        err.contains("is a directory") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(err.contains("no first-boot stamp"), "{err}");
    assert_eq!(root.read("etc/keepalived/keepalived.conf"), old_conf);
    assert!(
        !root.path().join(STAMP).exists(),
        "the stamp is removed first"
    );
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

/// A failure writing the stamp's directory: every other file may be new, but without the
/// stamp keepalived does not start on them.
#[test]
fn without_the_stamp_nothing_starts() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    // A file where the stamp's directory should be.
    root.write("var/lib/axoha", "not a directory\n");
    let run = root.run("apply", &["--no-start"]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(!root.path().join(STAMP).exists());
    assert!(
        !root.path().join("etc").exists(),
        "the lock is taken before any file is written"
    );
}

/// Several `apply --force` runs at once with different metadata: each succeeds or fails
/// whole, and the set on disk is exactly one run's (keepalived.conf, node.toml and the
/// stamp agree), with no temporaries left.
#[test]
fn concurrent_applies_never_mix_sets() {
    let root = Root::new();
    let cmdlines: Vec<String> = (0..6)
        .map(|i| {
            let path = root.write(
                &format!("cmdline-{i}"),
                &GOOD_CMDLINE.replace("axoha.vrid=51", &format!("axoha.vrid={}", 60 + i)),
            );
            path.display().to_string()
        })
        .collect();
    for _round in 0..3 {
        // All started before any is waited for.
        let children: Vec<_> = cmdlines
            .iter()
            .map(|c| {
                Command::new(BIN)
                    .args(["apply", "--no-start", "--force", "--root"])
                    .arg(root.path())
                    .args(["--cmdline", c])
                    .env_remove("JOURNAL_STREAM")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let conf = root.read("etc/keepalived/keepalived.conf");
        let vrid = conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("virtual_router_id "))
            .unwrap()
            .to_owned();
        assert!(
            root.read("etc/axoha/node.toml")
                .contains(&format!("\"vrid\" = \"{vrid}\"")),
            "node.toml and keepalived.conf disagree"
        );
        assert!(root.read(STAMP).contains(&format!("vrid {vrid}")));
        assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    }
}
