//! The systemd units in `systemd/`: `systemd-analyze verify` accepts them without a
//! warning, they form no ordering cycle with the units they meet on Debian and RHEL-family
//! images, and they say what the design needs (restart policy, conditions, presets).
//!
//! Each check builds a throw-away root holding our files where the image puts them, the
//! real `.target` units of the systemd running the test, and small stand-ins for the units
//! ours meet (keepalived, AxoRouter, firewalld, cloud-init, D-Bus), then runs
//! `systemd-analyze verify --root=ROOT` (systemd 252) on it. The tests prove they can fail:
//! `verification_catches_mistakes` breaks the units on purpose and expects complaints.
//!
//! Needs `systemd-analyze` and `systemctl` (Debian package `systemd`); no root, no running
//! systemd.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unit directory of an image root.
const UNIT_DIR: &str = "usr/lib/systemd/system";
/// Where the host's systemd keeps its own units (the `.target` files are copied from it).
const HOST_UNIT_DIR: &str = "/usr/lib/systemd/system";

/// Names in `systemd-analyze` messages that concern our files.
const OURS: [&str; 3] = ["axoha", "keepalived", "axorouter"];

fn repo_systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

fn read_repo_file(rel: &str) -> String {
    let path = repo_systemd_dir().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// A minimal unit-file reader: `[Section]` headers and `Key=Value` lines; `#` and `;` start
// comments. Enough for our own files, which use no line continuations.

type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: continuation lines are not supported",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            unit.entry(section.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `Key=Value`: {raw}", n + 1));
        assert!(!section.is_empty(), "line {}: key outside a section", n + 1);
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    unit
}

/// Every value of `key` in `section`, in order.
fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    unit.get(section)
        .and_then(|s| s.get(key))
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The words of every value of a list-valued key (`After=`, `Before=`, ...).
fn words<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    values(unit, section, key)
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect()
}

/// The single value of `key` in `section`.
fn single<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    match values(unit, section, key).as_slice() {
        [one] => one,
        other => panic!("expected exactly one [{section}] {key}=, found {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The throw-away image root.

struct Root {
    dir: tempfile::TempDir,
    /// Run the root's own generators (`usr/lib/systemd/system-generators/`) when verifying.
    generators: bool,
}

impl Root {
    /// Our units and drop-ins, the host's targets, stand-ins for keepalived, AxoRouter and
    /// firewalld, and executable stubs for every ExecStart.
    fn new() -> Self {
        let root = Root {
            dir: tempfile::tempdir().expect("creating a temporary root"),
            generators: false,
        };
        let units = root.units();
        fs::create_dir_all(&units).unwrap();

        // The real targets, so default dependencies and sysinit ordering are the real ones.
        let mut targets = 0;
        for entry in fs::read_dir(HOST_UNIT_DIR)
            .unwrap_or_else(|e| panic!("reading {HOST_UNIT_DIR}: {e} (is systemd installed?)"))
        {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".target") && entry.path().is_file() {
                fs::copy(entry.path(), units.join(&name)).unwrap();
                targets += 1;
            }
        }
        assert!(targets > 0, "no .target units in {HOST_UNIT_DIR}");

        // Ours, where the image installs them.
        let ours = repo_systemd_dir();
        for unit in ["axoha-firstboot.service", "axoha-heartbeat.service"] {
            fs::copy(ours.join(unit), units.join(unit)).unwrap();
        }
        for dropin in ["keepalived.service.d", "axorouter.service.d"] {
            fs::create_dir_all(units.join(dropin)).unwrap();
            fs::copy(
                ours.join(dropin).join("axoha.conf"),
                units.join(dropin).join("axoha.conf"),
            )
            .unwrap();
        }
        let presets = root.path().join("usr/lib/systemd/system-preset");
        fs::create_dir_all(&presets).unwrap();
        fs::copy(
            ours.join("90-axoha.preset"),
            presets.join("90-axoha.preset"),
        )
        .unwrap();

        root.stub("usr/bin/axoha-firstboot");
        root.stub("usr/bin/stand-in");

        // Stand-ins, shaped like the packaged units (default dependencies, WantedBy).
        root.unit(
            "keepalived.service",
            "[Unit]\nDescription=stand-in keepalived\nAfter=network-online.target\n\
             Wants=network-online.target\n\
             [Service]\nType=notify\nExecStart=/usr/bin/stand-in\n\
             [Install]\nWantedBy=multi-user.target\n",
        );
        root.unit(
            "axorouter.service",
            "[Unit]\nDescription=stand-in AxoRouter\nAfter=network-online.target\n\
             [Service]\nExecStart=/usr/bin/stand-in\n\
             [Install]\nWantedBy=multi-user.target\n",
        );
        // firewalld orders itself before network-pre.target and after D-Bus.
        root.unit(
            "firewalld.service",
            "[Unit]\nDescription=stand-in firewalld\nBefore=network-pre.target\n\
             Wants=network-pre.target\nAfter=dbus.service\n\
             [Service]\nExecStart=/usr/bin/stand-in\n\
             [Install]\nWantedBy=multi-user.target\n",
        );
        root.unit(
            "dbus.socket",
            "[Unit]\nDescription=stand-in D-Bus socket\n\
             [Socket]\nListenStream=/run/dbus/system_bus_socket\n",
        );
        root.unit(
            "dbus.service",
            "[Unit]\nDescription=stand-in D-Bus\nRequires=dbus.socket\n\
             [Service]\nExecStart=/usr/bin/stand-in\n",
        );
        root
    }

    /// Adds cloud-init's local stage as packaged for RHEL-family systems (cloud-init 24.x):
    /// its single process, cloud-init-main, runs after dbus.socket, hence after
    /// sysinit.target, and cloud-init-local after it.
    fn with_rhel_cloud_init(self) -> Self {
        self.unit(
            "cloud-init-main.service",
            "[Unit]\nDescription=stand-in cloud-init main (RHEL)\nDefaultDependencies=no\n\
             Requires=dbus.socket\nAfter=dbus.socket\nAfter=systemd-remount-fs.service\n\
             Before=cloud-init-local.service\nBefore=shutdown.target\n\
             Conflicts=shutdown.target\n\
             [Service]\nType=notify\nExecStart=/usr/bin/stand-in\n",
        );
        self.unit(
            "cloud-init-local.service",
            "[Unit]\nDescription=stand-in cloud-init local (RHEL)\nDefaultDependencies=no\n\
             Wants=network-pre.target\nBefore=network-pre.target\nBefore=shutdown.target\n\
             Before=firewalld.target\nConflicts=shutdown.target\n\
             [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/stand-in\n",
        );
        self
    }

    /// Adds cloud-init's local stage as packaged for Debian: before sysinit.target.
    fn with_debian_cloud_init(self) -> Self {
        self.unit(
            "cloud-init-local.service",
            "[Unit]\nDescription=stand-in cloud-init local (Debian)\nDefaultDependencies=no\n\
             Wants=network-pre.target\nAfter=systemd-remount-fs.service\n\
             Before=network-pre.target\nBefore=shutdown.target\nBefore=sysinit.target\n\
             Conflicts=shutdown.target\n\
             [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/stand-in\n",
        );
        self
    }

    /// AxoRouter as a generated unit, as a quadlet (`axorouter.container`) would make it: no
    /// `axorouter.service` in the unit directory, a generator that writes one into the normal
    /// generator directory (its first argument) instead.
    fn with_generated_axorouter(mut self) -> Self {
        fs::remove_file(self.units().join("axorouter.service")).unwrap();
        let generator = self
            .path()
            .join("usr/lib/systemd/system-generators/axorouter-generator");
        fs::create_dir_all(generator.parent().unwrap()).unwrap();
        fs::write(
            &generator,
            "#!/bin/sh
# A stand-in for a quadlet: AxoRouter's unit, generated.
\
             cat > \"$1/axorouter.service\" <<EOF
\
             [Unit]
Description=stand-in AxoRouter (generated)
After=network-online.target
\
             [Service]
ExecStart=/usr/bin/stand-in
\
             [Install]
WantedBy=multi-user.target
EOF
",
        )
        .unwrap();
        fs::set_permissions(&generator, fs::Permissions::from_mode(0o755)).unwrap();
        self.generators = true;
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn units(&self) -> PathBuf {
        self.path().join(UNIT_DIR)
    }

    fn unit(&self, name: &str, text: &str) {
        fs::write(self.units().join(name), text).unwrap();
    }

    fn stub(&self, rel: &str) {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Rewrites a file of the root (relative path) with `edit`, which must change it.
    fn edit(&self, rel: &str, edit: impl FnOnce(&str) -> String) {
        let path = self.path().join(rel);
        let before = fs::read_to_string(&path).unwrap();
        let after = edit(&before);
        assert_ne!(before, after, "the edit of {rel} changed nothing");
        fs::write(&path, after).unwrap();
    }

    /// `systemd-analyze verify` on `units` (one transaction holds all their start jobs, so
    /// ordering cycles between them are found).
    fn verify(&self, units: &[&str]) -> Verdict {
        let mut command = Command::new("systemd-analyze");
        command
            .arg("verify")
            .arg(format!("--root={}", self.path().display()))
            .args(["--man=no", "--recursive-errors=yes"])
            .args(units)
            .current_dir(self.path())
            .env("SYSTEMD_LOG_COLOR", "0");
        if self.generators {
            // --generators=yes alone runs the host's generators (systemd 252 does not look
            // for them under --root); the search path points it at the root's instead.
            command.arg("--generators=yes").env(
                "SYSTEMD_GENERATOR_PATH",
                self.path().join("usr/lib/systemd/system-generators"),
            );
        } else {
            command.arg("--generators=no");
        }
        Verdict::new(run(&mut command))
    }
}

fn run(command: &mut Command) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (Debian package `systemd` provides it)"))
}

/// The outcome of `systemd-analyze verify`.
struct Verdict {
    success: bool,
    /// stderr lines that mention one of our units or files.
    ours: Vec<String>,
    stderr: String,
}

impl Verdict {
    fn new(output: Output) -> Self {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let ours = stderr
            .lines()
            .filter(|l| OURS.iter().any(|name| l.contains(name)))
            .map(str::to_string)
            .collect();
        Verdict {
            success: output.status.success(),
            ours,
            stderr,
        }
    }

    fn assert_clean(&self, what: &str) {
        assert!(
            self.success && self.ours.is_empty(),
            "systemd-analyze verify is not clean for {what}:\n{}",
            self.stderr
        );
        if !self.stderr.trim().is_empty() {
            // Not about our units (and the exit status is 0): show, do not fail.
            eprintln!(
                "note: systemd-analyze verify ({what}) printed:\n{}",
                self.stderr
            );
        }
    }

    fn assert_complains(&self, what: &str, expected: &str) {
        assert!(
            !self.success,
            "systemd-analyze verify accepted {what}:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains(expected),
            "systemd-analyze verify rejected {what} but did not say `{expected}`:\n{}",
            self.stderr
        );
    }
}

const OUR_UNITS: [&str; 5] = [
    "axoha-firstboot.service",
    "keepalived.service",
    "axoha-heartbeat.service",
    "axorouter.service",
    "firewalld.service",
];

// ---------------------------------------------------------------------------------------

#[test]
fn units_verify_cleanly() {
    Root::new().verify(&OUR_UNITS).assert_clean("our units");
}

#[test]
fn no_ordering_cycle_with_rhel_cloud_init() {
    let root = Root::new().with_rhel_cloud_init();
    let mut units = OUR_UNITS.to_vec();
    units.extend(["cloud-init-main.service", "cloud-init-local.service"]);
    root.verify(&units)
        .assert_clean("our units with RHEL-style cloud-init");
}

#[test]
fn no_ordering_cycle_with_debian_cloud_init() {
    let root = Root::new().with_debian_cloud_init();
    let mut units = OUR_UNITS.to_vec();
    units.push("cloud-init-local.service");
    root.verify(&units)
        .assert_clean("our units with Debian-style cloud-init");
}

/// The real AxoRouter unit may be a generated one (a quadlet, for one): our units and
/// drop-ins must work with it the same. (The SELinux side, `service status` on the label
/// generated units get, is in selinux/keepalived_axorouter.te; a booted AlmaLinux node would
/// show it, which needs the real mirror.)
#[test]
fn a_generated_axorouter_unit_works_with_ours() {
    let root = Root::new().with_generated_axorouter();
    assert!(!root.units().join("axorouter.service").exists());
    root.verify(&OUR_UNITS)
        .assert_clean("our units with a generated axorouter.service");

    // Without the generator there is no AxoRouter unit at all: the unit above came from it.
    let root = Root::new().with_generated_axorouter();
    fs::remove_file(
        root.path()
            .join("usr/lib/systemd/system-generators/axorouter-generator"),
    )
    .unwrap();
    root.verify(&["axorouter.service"])
        .assert_complains("no axorouter.service", "axorouter.service");

    // Our drop-in applies to the generated unit: broken, it is what systemd complains about.
    let root = Root::new().with_generated_axorouter();
    root.edit(&format!("{UNIT_DIR}/axorouter.service.d/axoha.conf"), |t| {
        t.replace(
            "After=axoha-firstboot.service",
            "Afterr=axoha-firstboot.service",
        )
    });
    root.verify(&OUR_UNITS).assert_complains(
        "a broken drop-in on a generated unit",
        "Unknown key 'Afterr'",
    );
}

/// The checks above can fail: each broken variant of our files must be rejected.
#[test]
fn verification_catches_mistakes() {
    let firstboot = format!("{UNIT_DIR}/axoha-firstboot.service");
    let keepalived = format!("{UNIT_DIR}/keepalived.service.d/axoha.conf");

    // A misspelt key in the unit.
    let root = Root::new();
    root.edit(&firstboot, |t| {
        t.replacen("\nAfter=local-fs.target", "\nAfterr=local-fs.target", 1)
    });
    root.verify(&OUR_UNITS)
        .assert_complains("a misspelt key", "Unknown key 'Afterr'");

    // A misspelt key in the keepalived drop-in.
    let root = Root::new();
    root.edit(&keepalived, |t| {
        t.replace("Restart=always", "Restartt=always")
    });
    root.verify(&OUR_UNITS)
        .assert_complains("a misspelt drop-in key", "Unknown key 'Restartt'");

    // A bad value in the drop-in.
    let root = Root::new();
    root.edit(&keepalived, |t| t.replace("RestartSec=1s", "RestartSec=1q"));
    root.verify(&OUR_UNITS)
        .assert_complains("a bad time span", "1q");

    // The binary is missing from the image.
    let root = Root::new();
    fs::remove_file(root.path().join("usr/bin/axoha-firstboot")).unwrap();
    root.verify(&OUR_UNITS)
        .assert_complains("a missing ExecStart binary", "/usr/bin/axoha-firstboot");

    // The rejected design: ordering first boot before sysinit.target makes a cycle with
    // RHEL's cloud-init (cloud-init-local runs after dbus.socket, after sysinit.target).
    let root = Root::new().with_rhel_cloud_init();
    root.edit(&firstboot, |t| {
        t.replacen(
            "\nBefore=network-pre.target\n",
            "\nBefore=network-pre.target sysinit.target\n",
            1,
        )
    });
    let mut units = OUR_UNITS.to_vec();
    units.extend(["cloud-init-main.service", "cloud-init-local.service"]);
    root.verify(&units)
        .assert_complains("Before=sysinit.target with RHEL cloud-init", "cycl");
}

#[test]
fn firstboot_unit_says_what_the_design_needs() {
    let unit = parse_unit(&read_repo_file("axoha-firstboot.service"));

    assert_eq!(single(&unit, "Service", "Type"), "oneshot");
    assert_eq!(single(&unit, "Service", "RemainAfterExit"), "yes");
    assert_eq!(
        single(&unit, "Service", "ExecStart"),
        "/usr/bin/axoha-firstboot"
    );
    assert_eq!(single(&unit, "Service", "Environment"), "AXOHA_BOOT=1");
    assert_eq!(
        single(&unit, "Service", "StandardOutput"),
        "journal+console"
    );
    assert_eq!(single(&unit, "Service", "StandardError"), "journal+console");
    assert!(!values(&unit, "Service", "TimeoutStartSec").is_empty());

    assert_eq!(
        single(&unit, "Unit", "ConditionPathExists"),
        "!/var/lib/axoha/firstboot.done"
    );
    assert_eq!(single(&unit, "Unit", "DefaultDependencies"), "no");
    let after = words(&unit, "Unit", "After");
    for dep in [
        "local-fs.target",
        "systemd-remount-fs.service",
        "cloud-init-local.service",
    ] {
        assert!(after.contains(&dep), "After= lacks {dep}: {after:?}");
    }
    let before = words(&unit, "Unit", "Before");
    for dep in [
        "network-pre.target",
        "firewalld.service",
        "keepalived.service",
        "axorouter.service",
        "shutdown.target",
    ] {
        assert!(before.contains(&dep), "Before= lacks {dep}: {before:?}");
    }
    assert!(
        !before.contains(&"sysinit.target"),
        "Before=sysinit.target makes a cycle with RHEL's cloud-init"
    );
    // network-pre.target is passive: whoever orders before it pulls it in.
    assert!(words(&unit, "Unit", "Wants").contains(&"network-pre.target"));
    assert!(words(&unit, "Unit", "Conflicts").contains(&"shutdown.target"));
    assert_eq!(words(&unit, "Install", "WantedBy"), ["multi-user.target"]);
}

#[test]
fn keepalived_dropin_restarts_and_needs_our_config() {
    let unit = parse_unit(&read_repo_file("keepalived.service.d/axoha.conf"));
    assert!(words(&unit, "Unit", "After").contains(&"axoha-firstboot.service"));
    // The stamp, written after every file: never a partial set (issue 12).
    assert_eq!(
        single(&unit, "Unit", "ConditionPathExists"),
        "/var/lib/axoha/firstboot.done"
    );
    assert_eq!(single(&unit, "Unit", "StartLimitIntervalSec"), "0");
    assert_eq!(single(&unit, "Service", "Restart"), "always");
    assert_eq!(single(&unit, "Service", "RestartSec"), "1s");
}

#[test]
fn axorouter_dropin_orders_after_firstboot() {
    let unit = parse_unit(&read_repo_file("axorouter.service.d/axoha.conf"));
    assert!(words(&unit, "Unit", "After").contains(&"axoha-firstboot.service"));
    assert_eq!(
        single(&unit, "Unit", "ConditionPathExists"),
        "/var/lib/axoha/firstboot.done"
    );
}

/// Everything that acts on the node's configuration waits for the stamp that the first-boot
/// binary writes last; the first-boot unit itself runs while it is absent.
#[test]
fn services_are_gated_on_the_same_stamp() {
    // firstboot's `render::STAMP`.
    let stamp = "var/lib/axoha/firstboot.done";
    let firstboot = parse_unit(&read_repo_file("axoha-firstboot.service"));
    assert_eq!(
        single(&firstboot, "Unit", "ConditionPathExists"),
        format!("!/{stamp}")
    );
    for file in [
        "keepalived.service.d/axoha.conf",
        "axorouter.service.d/axoha.conf",
        "axoha-heartbeat.service",
    ] {
        let unit = parse_unit(&read_repo_file(file));
        assert_eq!(
            single(&unit, "Unit", "ConditionPathExists"),
            format!("/{stamp}"),
            "{file}"
        );
    }
}

#[test]
fn preset_enables_our_units() {
    let text = read_repo_file("90-axoha.preset");
    let mut enabled: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            l.strip_prefix("enable ")
                .unwrap_or_else(|| panic!("unexpected preset line: {l}"))
                .trim()
        })
        .collect();
    enabled.sort_unstable();
    assert_eq!(
        enabled,
        [
            "axoha-firstboot.service",
            "axoha-heartbeat.service",
            "axorouter.service",
            "firewalld.service",
            "keepalived.service",
        ]
    );

    // And systemctl applies it, even over a distribution default of `disable *` (Fedora and
    // RHEL ship one in 99-default-disable.preset).
    let root = Root::new();
    fs::write(
        root.path()
            .join("usr/lib/systemd/system-preset/99-default-disable.preset"),
        "disable *\n",
    )
    .unwrap();
    let output = run(Command::new("systemctl")
        .arg(format!("--root={}", root.path().display()))
        .arg("preset")
        .args(OUR_UNITS));
    assert!(
        output.status.success(),
        "systemctl preset failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wants = root
        .path()
        .join("etc/systemd/system/multi-user.target.wants");
    for unit in OUR_UNITS {
        assert!(
            wants.join(unit).is_symlink(),
            "{unit} was not enabled by the preset"
        );
    }
}
