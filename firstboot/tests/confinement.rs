//! Nothing escapes the root: links under `--root` that point outside it (absolute,
//! relative, `..` past the top) are resolved inside it, for writing as for reading, and
//! nothing outside the root changes.

mod common;

use std::os::unix::fs::symlink;

use common::{stderr, Root, GOOD_CMDLINE};

/// A directory outside the root with a file in it, and its snapshot.
fn outside() -> Root {
    let outside = Root::new();
    outside.write("keepalived.conf", "# outside, must stay\n");
    outside
}

/// `etc/keepalived` (or another directory we write into) is a link leading out: the write
/// fails (the link dangles inside the root) and nothing anywhere changes.
#[test]
fn written_directories_that_link_outside_are_not_followed_out() {
    for (dir, how) in [
        ("etc/keepalived", "absolute"),
        ("etc/keepalived", "relative"),
        ("etc/firewalld/zones", "absolute"),
        ("var/lib/axoha", "relative"),
    ] {
        let out = outside();
        let root = Root::new();
        root.write("proc/cmdline", GOOD_CMDLINE);
        root.write("etc/hostname", "old\n");
        let link = root.path().join(dir);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let target = match how {
            "absolute" => out.path().to_owned(),
            _ => format!(
                "{}{}",
                "../".repeat(link.components().count() + 3),
                out.path().display()
            )
            .into(),
        };
        symlink(&target, &link).unwrap();
        let before = (root.snapshot(), out.snapshot());
        let run = root.run("apply", &["--no-start"]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(3), "{dir} ({how}): {err}");
        assert!(err.contains("nothing was changed"), "{dir} ({how}): {err}");
        assert_eq!(before.1, out.snapshot(), "{dir} ({how}): outside changed");
        // The lock file (taken once the metadata is valid) is the only thing a failed
        // write may leave; no stamp, no configuration.
        let mut after = root.snapshot();
        after.retain(|p, _| !p.starts_with(root.path().join("var")) || before.0.contains_key(p));
        assert_eq!(before.0, after, "{dir} ({how}): root changed");
        assert!(!root.path().join("var/lib/axoha/firstboot.done").exists());
    }
}

/// A link to a directory inside the root is followed there, as the booted node would.
#[test]
fn links_inside_the_root_are_followed_inside() {
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    std::fs::create_dir_all(root.path().join("srv/keepalived")).unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    symlink("/srv/keepalived", root.path().join("etc/keepalived")).unwrap();
    let run = root.run("apply", &["--no-start"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(root
        .read("srv/keepalived/keepalived.conf")
        .contains("virtual_router_id 51"));
}

/// A target file that is a link to a file outside is replaced, never written through.
#[test]
fn a_target_file_that_links_outside_is_replaced_not_followed() {
    let out = outside();
    let root = Root::new();
    root.write("proc/cmdline", GOOD_CMDLINE);
    std::fs::create_dir_all(root.path().join("etc/keepalived")).unwrap();
    symlink(
        out.path().join("keepalived.conf"),
        root.path().join("etc/keepalived/keepalived.conf"),
    )
    .unwrap();
    let before = out.snapshot();
    let run = root.run("apply", &["--no-start"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(before, out.snapshot());
    let conf = root.path().join("etc/keepalived/keepalived.conf");
    assert!(!conf.is_symlink());
    assert!(root
        .read("etc/keepalived/keepalived.conf")
        .contains("virtual_router_id 51"));
}

/// Arguments that are not ours may hold any byte: the node still comes up.
#[test]
fn other_kernel_arguments_may_hold_any_byte() {
    let root = Root::new();
    let mut cmdline = b"splash=\xff\xfe quiet \"a\x80b c\" ".to_vec();
    cmdline.extend_from_slice(GOOD_CMDLINE.as_bytes());
    root.write("proc/cmdline", "");
    std::fs::write(root.path().join("proc/cmdline"), cmdline).unwrap();
    let run = root.run("apply", &["--no-start"]);
    assert!(run.status.success(), "{}", stderr(&run));
}
