//! The install and labelling steps against a real policy store, made here with `semodule -p`
//! from Debian's reference policy (package `selinux-policy-default`, installed by
//! `scripts/install-deps test`): the same libsemanage link and setfiles run an AlmaLinux build
//! does against the image's `targeted` store.
//!
//! Debian's policy lacks three Fedora/RHEL types our module requires, so the test first shows
//! the loud failure naming the first of them, then adds a module that declares those types
//! (test data standing in for the Fedora policy's own declarations) and installs ours.

use std::path::Path;
use std::process::Command;

use axoha_selinux::{compile_module, compile_source, install_module, label_tree, MODULE_NAME};

const POLICY: &str = "default";
const MODULES: &str = "/usr/share/selinux/default";

/// A store in `root` holding every module of Debian's reference policy.
fn debian_store(root: &Path) {
    std::fs::create_dir_all(root.join("etc/selinux")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/selinux").join(POLICY)).unwrap();
    std::fs::copy(
        "/etc/selinux/semanage.conf",
        root.join("etc/selinux/semanage.conf"),
    )
    .expect("/etc/selinux/semanage.conf (run scripts/install-deps test)");
    let mut modules: Vec<_> = std::fs::read_dir(MODULES)
        .expect("Debian's reference policy modules (run scripts/install-deps test)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".pp.bz2"))
        .collect();
    modules.sort();
    assert!(modules.len() > 100, "only {} modules", modules.len());
    let mut cmd = Command::new("semodule");
    cmd.arg("-p")
        .arg(root)
        .args(["-n", "-s", POLICY, "-X", "100"]);
    for m in &modules {
        cmd.arg("-i").arg(m);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "building the store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn installed_modules(root: &Path) -> String {
    let out = Command::new("semodule")
        .arg("-p")
        .arg(root)
        .args(["-s", POLICY, "-l"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn label(path: &Path) -> String {
    // The label is the security.selinux extended attribute; read it with the kernel's own
    // interface rather than a tool the test machine may lack.
    let out = Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'security.selinux', follow_symlinks=False).rstrip(b'\\0').decode())",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn installs_into_a_real_store_only_when_the_policy_has_the_types() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    debian_store(root);
    let work = tempfile::tempdir().unwrap();
    let pp = compile_module(work.path()).unwrap();

    // Debian's policy: refused, naming the first missing type; the store is unchanged.
    let err = format!(
        "{:#}",
        install_module(root, POLICY, &pp).expect_err("Debian's policy lacks keepalived_t")
    );
    assert!(err.contains("has no type `keepalived_t`"), "{err}");
    assert!(err.contains("semodule"), "{err}");
    assert!(!installed_modules(root).contains(MODULE_NAME));

    // With the Fedora/RHEL types declared, the module links and the policy is rebuilt.
    let types = compile_source(
        "axoha_test_fedora_types",
        "module axoha_test_fedora_types 1.0;\nrequire { class file read; }\n\
         type keepalived_t;\ntype systemd_systemctl_exec_t;\ntype systemd_unit_file_t;\n",
        work.path(),
    )
    .unwrap();
    install_module(root, POLICY, &types).unwrap();
    let policy_file = root
        .join("etc/selinux")
        .join(POLICY)
        .join("policy/policy.33");
    let before = std::fs::read(&policy_file).unwrap();
    install_module(root, POLICY, &pp).unwrap();
    let listed = installed_modules(root);
    assert!(listed.lines().any(|l| l.trim() == MODULE_NAME), "{listed}");
    assert_ne!(
        before,
        std::fs::read(&policy_file).unwrap(),
        "the binary policy was not rebuilt with the module"
    );

    // Labels at build time: files get their contexts from the image's own policy.
    for (rel, dir) in [("usr/bin/systemctl", false), ("etc/keepalived", true)] {
        let p = root.join(rel);
        std::fs::create_dir_all(if dir { &p } else { p.parent().unwrap() }).unwrap();
        if !dir {
            std::fs::write(&p, b"").unwrap();
        }
    }
    label_tree(root, POLICY).unwrap();
    assert_eq!(
        label(&root.join("usr/bin/systemctl")),
        "system_u:object_r:bin_t:s0"
    );
    assert!(
        label(&root.join("etc")).contains(":etc_t:"),
        "{}",
        label(&root.join("etc"))
    );
}

#[test]
fn labelling_needs_the_policy_in_the_tree() {
    let root = tempfile::tempdir().unwrap();
    let err = format!("{:#}", label_tree(root.path(), "targeted").unwrap_err());
    assert!(err.contains("contexts/files/file_contexts"), "{err}");
    assert!(label_tree(root.path(), "../x").is_err());
}
