//! `prepare-root ROOT`: the factory reset (flag file or kernel argument) and the /etc
//! three-way update, on a root directory.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use axoha_update::etc_update::base_of;

const FACTORY: &str = "usr/share/axoha/factory";

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn prepare_root(root: &Path, cmdline: &str) -> Output {
    let file = root.parent().unwrap().join("cmdline");
    std::fs::write(&file, cmdline).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_axoha-update"))
        .arg("--cmdline")
        .arg(&file)
        .arg("prepare-root")
        .arg(root)
        .output()
        .unwrap()
}

/// Every path under `dir` (but `skip` at the top): kind, mode and contents or link target.
fn tree(dir: &Path, skip: &str) -> BTreeMap<PathBuf, String> {
    fn walk(top: &Path, dir: &Path, skip: &str, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(top).unwrap().to_owned();
            if rel == Path::new(skip) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let m = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(top, &path, skip, out);
                format!("dir {m:o}")
            } else {
                format!("file {m:o} {}", std::fs::read_to_string(&path).unwrap())
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// A root whose image has a factory tree, and a node that has lived a while.
fn lived_in() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let f = root.join(FACTORY);
    write(&f.join("etc/hostname"), "localhost\n");
    write(&f.join("etc/keepalived/.keep"), "");
    symlink("../usr/lib/os-release", f.join("etc/os-release")).unwrap();
    symlink("usr/bin", f.join("bin")).unwrap();
    std::fs::create_dir_all(f.join("usr")).unwrap();
    std::fs::create_dir_all(f.join("root")).unwrap();
    mode(&f.join("root"), 0o700);
    std::fs::create_dir_all(f.join("var/tmp")).unwrap();
    mode(&f.join("var/tmp"), 0o1777);
    write(&f.join("etc/shadow"), "root:*:1::::::\n");
    mode(&f.join("etc/shadow"), 0o640);
    write(&f.join("etc/fstab"), "PARTLABEL=state / ext4 rw 0 1\n");
    write(&f.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    write(&f.join("etc/group"), "root:x:0:\n");
    let base = base_of(&root).unwrap();
    write(
        &f.join("var/lib/axoha/etc-base.json"),
        &String::from_utf8(base.to_json().unwrap()).unwrap(),
    );
    write(&root.join("usr/bin/keepalived"), "the image\n");

    write(&root.join("etc/hostname"), "node1\n");
    for name in ["fstab", "passwd", "group", "shadow"] {
        std::fs::copy(f.join("etc").join(name), root.join("etc").join(name)).unwrap();
    }
    write(
        &root.join("etc/keepalived/keepalived.conf"),
        "vrrp_instance x {}\n",
    );
    write(&root.join("var/lib/axoha/firstboot.done"), "");
    write(&root.join("home/admin/.bash_history"), "ls\n");
    write(&root.join("root/secret"), "x\n");
    symlink("usr/bin", root.join("bin")).unwrap();
    symlink("/etc/shadow", root.join("etc/evil")).unwrap();
    (dir, root)
}

fn assert_factory(root: &Path, out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = tree(&root.join(FACTORY), "usr");
    expected.remove(Path::new("usr"));
    let mut got = tree(root, "usr");
    got.remove(Path::new("usr"));
    assert_eq!(got, expected);
    assert!(!root.join("var/lib/axoha/firstboot.done").exists());
    assert!(!root.join("var/lib/axoha/factory-reset").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("usr/bin/keepalived")).unwrap(),
        "the image\n"
    );
}

#[test]
fn factory_reset_by_flag_file() {
    let (_dir, root) = lived_in();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_axoha-update"))
        .arg("--root")
        .arg(&root)
        .arg("factory-reset")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("var/lib/axoha/factory-reset").is_file());
    let out = prepare_root(&root, "usrhash=x root=PARTUUID=y rw\n");
    assert_factory(&root, &out);
    // Nothing more to do at the next boot.
    write(&root.join("etc/hostname"), "node1\n");
    let out = prepare_root(&root, "usrhash=x rw\n");
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "node1\n"
    );
}

#[test]
fn factory_reset_by_kernel_argument() {
    let (_dir, root) = lived_in();
    let out = prepare_root(&root, "usrhash=x rw axoha.factory_reset quiet\n");
    assert_factory(&root, &out);
}

#[test]
fn no_factory_tree_no_reset() {
    let (_dir, root) = lived_in();
    std::fs::remove_dir_all(root.join(FACTORY)).unwrap();
    let before = tree(&root, "");
    let out = prepare_root(&root, "axoha.factory_reset\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no factory tree"));
    assert_eq!(tree(&root, ""), before);
}

#[test]
fn etc_update_three_way() {
    let dir = tempfile::tempdir().unwrap();
    // The factory the node came from.
    let old = dir.path().join("old");
    let of = old.join(FACTORY).join("etc");
    for (name, v) in [
        ("a", "v1"),
        ("b", "v1"),
        ("c", "v1"),
        ("d", "v1"),
        ("sub/s", "v1"),
    ] {
        write(&of.join(name), v);
    }
    symlink("x1", of.join("l")).unwrap();
    let old_base = base_of(&old).unwrap();

    let root = dir.path().join("root");
    let nf = root.join(FACTORY).join("etc");
    for (name, v) in [
        ("a", "v2"),
        ("b", "v2"),
        ("e", "new"),
        ("sub/s", "v1"),
        ("newdir/f", "v2"),
    ] {
        write(&nf.join(name), v);
    }
    mode(&nf.join("e"), 0o600);
    mode(&nf.join("newdir"), 0o750);
    symlink("x2", nf.join("l")).unwrap();
    write(
        &root.join("var/lib/axoha/etc-base.json"),
        &String::from_utf8(old_base.to_json().unwrap()).unwrap(),
    );
    let etc = root.join("etc");
    for (name, v) in [
        ("a", "v1"),
        ("b", "mine"),
        ("c", "v1"),
        ("d", "mine"),
        ("n", "node only"),
        ("sub/s", "v1"),
    ] {
        write(&etc.join(name), v);
    }
    symlink("x1", etc.join("l")).unwrap();
    for name in ["fstab", "passwd", "group", "shadow"] {
        write(&etc.join(name), "the node's\n");
    }

    let out = prepare_root(&root, "usrhash=x rw\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |n: &str| std::fs::read_to_string(etc.join(n)).ok();
    assert_eq!(
        read("a").as_deref(),
        Some("v2"),
        "unchanged here: the new factory version"
    );
    assert_eq!(read("b").as_deref(), Some("mine"), "changed here: kept");
    assert_eq!(
        read("c"),
        None,
        "gone from the factory, unchanged here: removed"
    );
    assert_eq!(
        read("d").as_deref(),
        Some("mine"),
        "gone from the factory, changed here: kept"
    );
    assert_eq!(read("e").as_deref(), Some("new"));
    assert_eq!(
        std::fs::metadata(etc.join("e"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(read("newdir/f").as_deref(), Some("v2"));
    assert_eq!(
        std::fs::metadata(etc.join("newdir"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    assert_eq!(read("n").as_deref(), Some("node only"));
    assert_eq!(std::fs::read_link(etc.join("l")).unwrap(), Path::new("x2"));
    assert!(stdout.contains("/etc/b: changed on this node"), "{stdout}");
    assert!(stdout.contains("/etc/d: changed on this node"), "{stdout}");
    let base = std::fs::read(root.join("var/lib/axoha/etc-base.json")).unwrap();
    assert_eq!(base, base_of(&root).unwrap().to_json().unwrap());
}

/// `prepare-root` with `cmdline`, killed (SIGKILL, by strace) as it enters its `n`th
/// `syscall`; whether it was killed.
fn prepare_root_killed_at(root: &Path, cmdline: &str, syscall: &str, n: usize) -> bool {
    let file = root.parent().unwrap().join("cmdline");
    std::fs::write(&file, cmdline).unwrap();
    let out = std::process::Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal=KILL:when={n}"))
        .arg(env!("CARGO_BIN_EXE_axoha-update"))
        .arg("--cmdline")
        .arg(&file)
        .arg("prepare-root")
        .arg(root)
        .output()
        .unwrap();
    !out.status.success()
}

/// The tree without the temporaries a killed writer leaves (harmless, never read).
fn settled(root: &Path) -> BTreeMap<PathBuf, String> {
    tree(root, "")
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(".axoha-new-"))
        .collect()
}

#[test]
fn factory_reset_from_the_boot_menu_killed_at_every_step() {
    let mut points = 0;
    for syscall in [
        "unlinkat",
        "renameat",
        "renameat2",
        "mkdirat",
        "symlinkat",
        "fsync",
    ] {
        for n in 1.. {
            assert!(
                n < 1000,
                "{syscall}: still killed at #{n}: is strace working?"
            );
            let (_dir, root) = lived_in();
            let before = settled(&root);
            // Typed once at the boot menu: the next boot's command line has no request.
            if !prepare_root_killed_at(&root, "usrhash=x rw axoha.factory_reset\n", syscall, n) {
                break;
            }
            points += 1;
            let at = format!("killed at {syscall} #{n}");
            let untouched = settled(&root) == before;
            let out = prepare_root(&root, "usrhash=x rw\n");
            if untouched {
                // Killed before the flag was durable: nothing was deleted, nothing is done.
                assert!(out.status.success(), "{at}");
                continue;
            }
            assert_factory(&root, &out);
        }
    }
    assert!(points > 20, "only {points} kill points");
}

#[test]
fn a_root_without_what_every_boot_needs_is_refused() {
    let (_dir, root) = lived_in();
    std::fs::remove_file(root.join("etc/fstab")).unwrap();
    std::fs::remove_file(root.join("etc/passwd")).unwrap();
    let before = tree(&root, "");
    let out = prepare_root(&root, "usrhash=x rw\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lacks etc/fstab, etc/passwd, which every boot needs"),
        "{stderr}"
    );
    // Not taken as the new base of the /etc update.
    assert!(!root.join("var/lib/axoha/etc-base.json").exists());
    assert_eq!(tree(&root, ""), before);
    // A reset asked for at the boot menu mends it.
    let out = prepare_root(&root, "usrhash=x rw axoha.factory_reset\n");
    assert_factory(&root, &out);
}
