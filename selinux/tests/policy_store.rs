//! The install and labelling steps against a real policy store, made here with `semodule -p`
//! from Debian's reference policy (package `selinux-policy-default`, installed by
//! `scripts/install-deps test`): the same libsemanage link and setfiles run an AlmaLinux build
//! does against the image's `targeted` store.
//!
//! Debian's policy lacks four Fedora/RHEL types our module requires, so the test first shows
//! the loud failure naming the first of them, then installs `axoha_rhel_types` (which declares
//! them, as a debian-12 image with SELinux does) and a test module with RHEL's label for
//! keepalived's scripts and its file contexts, then ours.
//!
//! Then the files keepalived executes (the health check's program and the VRRP notify
//! script, from axoha-firstboot) are labelled by the store and checked against the labels
//! keepalived_t may execute in the RHEL targeted policy. What this proves here: Debian's own
//! rules give anything under `/usr/lib/` `lib_t` (as RHEL's do), so the notify script must not
//! live there; and RHEL's rules for `/usr/libexec/keepalived(/.*)?` and `/usr/bin/systemctl`,
//! copied into the stand-in module, win over Debian's broader `/usr/libexec(/.*)?` and
//! `/usr/bin(/.*)?`, so our paths match them. What needs the real RHEL policy (an AlmaLinux
//! build): its complete rule set and which domain may execute what (the list below is read
//! from the c10s policy sources, not computed), and the label a generated unit gets at run time
//! (`systemd_generator_unit_file_t`, by a type transition, not by a file context).

use std::path::Path;
use std::process::Command;

use axoha_firstboot::metadata::DEFAULT_HEALTH_COMMAND;
use axoha_firstboot::render::keepalived::NOTIFY_SCRIPT;
use axoha_selinux::{
    compile_module, compile_rhel_types, compile_with_contexts, install_module, label_tree,
    MODULE_NAME,
};

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

    // With the Fedora/RHEL types declared (the module a debian-12 image with SELinux
    // installs), the module links and the policy is rebuilt.
    install_module(root, POLICY, &compile_rhel_types(work.path()).unwrap()).unwrap();
    let stand_in = compile_with_contexts(
        "axoha_test_fedora_types",
        RHEL_STAND_IN,
        Some(RHEL_FILE_CONTEXTS),
        work.path(),
    )
    .unwrap();
    install_module(root, POLICY, &stand_in).unwrap();
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
    let executed = executed_by_keepalived();
    let old_notify = "/usr/lib/axoha/vrrp-notify";
    for rel in executed.iter().chain([&old_notify]) {
        let p = root.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
    }
    std::fs::create_dir_all(root.join("etc/keepalived")).unwrap();
    label_tree(root, POLICY).unwrap();
    for path in &executed {
        let t = label_type(&root.join(path.trim_start_matches('/')));
        assert!(
            KEEPALIVED_MAY_EXECUTE.contains(&t.as_str()),
            "keepalived runs {path}, labelled {t}, which keepalived_t may not execute \
             (it may: {KEEPALIVED_MAY_EXECUTE:?})"
        );
    }
    assert_eq!(
        label_type(&root.join(NOTIFY_SCRIPT.trim_start_matches('/'))),
        "keepalived_unconfined_script_exec_t"
    );
    assert_eq!(
        label_type(&root.join("usr/bin/systemctl")),
        "systemd_systemctl_exec_t"
    );
    // The old place of the notify script: lib_t by Debian's own rules, as by RHEL's.
    assert_eq!(
        label_type(&root.join(old_notify.trim_start_matches('/'))),
        "lib_t"
    );
    assert!(!KEEPALIVED_MAY_EXECUTE.contains(&"lib_t"));
    assert_eq!(label_type(&root.join("etc")), "etc_t");
}

/// The label of keepalived's scripts in the Fedora/RHEL targeted policy (the types our module
/// requires come from `axoha_rhel_types`), with RHEL's file contexts below.
const RHEL_STAND_IN: &str = "module axoha_test_fedora_types 1.0;\n\
    require { class file read; }\n\
    type keepalived_unconfined_script_exec_t;\n";

/// The c10s targeted policy's file contexts for what keepalived executes
/// (`policy/modules/contrib/keepalived.fc`, `policy/modules/system/systemd.fc`), contexts
/// written out instead of `gen_context(...)`.
const RHEL_FILE_CONTEXTS: &str = "\
/usr/libexec/keepalived(/.*)?\tsystem_u:object_r:keepalived_unconfined_script_exec_t:s0\n\
/usr/bin/systemctl\t--\tsystem_u:object_r:systemd_systemctl_exec_t:s0\n";

/// What keepalived_t may execute in the c10s targeted policy: `corecmd_exec_bin` and
/// `corecmd_exec_shell` in keepalived.te (bin_t, shell_exec_t), its scripts' entry type
/// (keepalived_unconfined_script_exec_t, run in keepalived_unconfined_script_t), and
/// systemctl by our module.
const KEEPALIVED_MAY_EXECUTE: [&str; 4] = [
    "bin_t",
    "shell_exec_t",
    "keepalived_unconfined_script_exec_t",
    "systemd_systemctl_exec_t",
];

/// Every file keepalived executes with the config axoha-firstboot renders: the health check's
/// program (the default command's first word) and the VRRP notify script.
fn executed_by_keepalived() -> Vec<&'static str> {
    let health = DEFAULT_HEALTH_COMMAND
        .split_whitespace()
        .next()
        .expect("a health command");
    vec![health, NOTIFY_SCRIPT]
}

fn label_type(path: &Path) -> String {
    let l = label(path);
    l.split(':')
        .nth(2)
        .unwrap_or_else(|| panic!("{}: label {l:?}", path.display()))
        .to_owned()
}

#[test]
fn labelling_needs_the_policy_in_the_tree() {
    let root = tempfile::tempdir().unwrap();
    let err = format!("{:#}", label_tree(root.path(), "targeted").unwrap_err());
    assert!(err.contains("contexts/files/file_contexts"), "{err}");
    assert!(label_tree(root.path(), "../x").is_err());
}
