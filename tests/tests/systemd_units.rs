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
    /// Extra environment of `systemd-analyze` and so of the generators it runs (the
    /// initrd's: `SYSTEMD_IN_INITRD`, `SYSTEMD_PROC_CMDLINE`).
    env: Vec<(&'static str, String)>,
}

impl Root {
    /// Our units and drop-ins, the host's targets, stand-ins for keepalived, AxoRouter and
    /// firewalld, and executable stubs for every ExecStart.
    fn new() -> Self {
        let root = Root {
            dir: tempfile::tempdir().expect("creating a temporary root"),
            generators: false,
            env: Vec::new(),
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
        for unit in [
            "axoha-firstboot.service",
            "axoha-heartbeat.service",
            BOOT_CHECK,
            BOOT_DEADLINE,
            UPDATE_RECORD,
            METRICS,
        ] {
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
        root.stub("usr/bin/axoha-update");
        root.stub("usr/bin/axoha-metrics");
        root.stub("usr/bin/stand-in");
        root.stub("usr/lib/systemd/systemd-bless-boot");

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
        // As Debian 12's systemd-boot package ships it (the generator pulls it in from
        // basic.target in boots that systemd-boot counts).
        root.unit("systemd-bless-boot.service", BLESS_BOOT);
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
    /// What `systemctl enable` makes: `DIR/UNIT` (`multi-user.target.wants/...`) -> `../UNIT`.
    fn enable(&self, dir: &str, unit: &str) {
        let dir = self.units().join(dir);
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(format!("../{unit}"), dir.join(unit)).unwrap();
    }

    /// With `edit` (from, to) made to our `unit`, verifying `units` finds an ordering cycle.
    fn assert_cycle_when(&self, unit: &str, edit: (&str, &str), units: &[&str], what: &str) {
        self.edit(&format!("{UNIT_DIR}/{unit}"), |t| t.replace(edit.0, edit.1));
        self.verify(units).assert_complains(what, "cycl");
    }

    fn verify(&self, units: &[&str]) -> Verdict {
        let mut command = Command::new("systemd-analyze");
        command
            .arg("verify")
            .arg(format!("--root={}", self.path().display()))
            .args(["--man=no", "--recursive-errors=yes"])
            .args(units)
            .current_dir(self.path())
            .env("SYSTEMD_LOG_COLOR", "0");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
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

/// The health check that blesses a counted boot (enabled into boot-complete.target, not
/// multi-user.target, hence not in `OUR_UNITS`).
const BOOT_CHECK: &str = "axoha-boot-check.service";
/// Reboots a counted boot never blessed (enabled into sysinit, emergency and rescue).
const BOOT_DEADLINE: &str = "axoha-boot-deadline.service";
/// Remembers update outcomes at every boot (`axoha-update record`).
const UPDATE_RECORD: &str = "axoha-update-record.service";
/// The Prometheus endpoint and login banner (`axoha-metrics --serve --banner`).
const METRICS: &str = "axoha-metrics.service";

/// `systemd-bless-boot.service` of Debian 12 (systemd-boot 252.39-1~deb12u2, `dpkg -c`;
/// AlmaLinux 10's systemd-udev has the same unit), ExecStart moved under /usr.
const BLESS_BOOT: &str = "[Unit]\nDescription=Mark the Current Boot Loader Entry as Good\n\
    DefaultDependencies=no\nRequires=boot-complete.target\n\
    After=local-fs.target boot-complete.target\nConflicts=shutdown.target\n\
    Before=shutdown.target\n\
    [Service]\nType=oneshot\nRemainAfterExit=yes\n\
    ExecStart=/usr/lib/systemd/systemd-bless-boot good\n";

// ---------------------------------------------------------------------------------------

#[test]
fn units_verify_cleanly() {
    Root::new().verify(&OUR_UNITS).assert_clean("our units");
}

/// The metrics unit runs its own binary, which must be where the image installs it.
#[test]
fn metrics_unit_verifies_cleanly_and_needs_its_binary() {
    let root = Root::new();
    root.verify(&[METRICS]).assert_clean(METRICS);
    fs::remove_file(root.path().join("usr/bin/axoha-metrics")).unwrap();
    root.verify(&[METRICS])
        .assert_complains("a missing ExecStart binary", "/usr/bin/axoha-metrics");
}

/// A counted boot: basic.target pulls systemd-bless-boot.service, which needs
/// boot-complete.target, which needs our check; the check is after keepalived, axorouter and
/// first boot. One transaction with all of them: no ordering cycle.
#[test]
fn boot_check_verifies_cleanly_in_a_counted_boot() {
    let root = Root::new().with_debian_cloud_init();
    // What `systemctl enable` makes from [Install] RequiredBy=boot-complete.target.
    root.enable("boot-complete.target.requires", BOOT_CHECK);
    let mut units = OUR_UNITS.to_vec();
    units.extend([
        BOOT_CHECK,
        "systemd-bless-boot.service",
        "boot-complete.target",
        "multi-user.target",
        "cloud-init-local.service",
    ]);
    root.verify(&units)
        .assert_clean("the boot check with systemd-bless-boot");

    // The check can fail: ordered after the blessing it guards, it makes a cycle.
    root.assert_cycle_when(
        BOOT_CHECK,
        (
            "\nAfter=keepalived.service",
            "\nAfter=systemd-bless-boot.service keepalived.service",
        ),
        &units,
        "the boot check after systemd-bless-boot",
    );
}

/// A counted boot with the deadline and the record unit enabled as their [Install] says: one
/// transaction, no cycle; the record waits for the blessing, multi-user.target does not wait
/// for the record; the deadline is pulled in by emergency and rescue boots too.
#[test]
fn boot_deadline_and_update_record_verify_in_a_counted_boot() {
    let root = Root::new();
    for target in ["sysinit.target", "emergency.target", "rescue.target"] {
        root.enable(&format!("{target}.wants"), BOOT_DEADLINE);
    }
    root.enable("multi-user.target.wants", UPDATE_RECORD);
    root.enable("boot-complete.target.requires", BOOT_CHECK);
    let mut units = OUR_UNITS.to_vec();
    units.extend([
        BOOT_CHECK,
        BOOT_DEADLINE,
        UPDATE_RECORD,
        "systemd-bless-boot.service",
        "boot-complete.target",
        "multi-user.target",
    ]);
    root.stub("bin/sh");
    root.unit(
        "systemd-journald.socket",
        "[Unit]\nDescription=stand-in journal socket\nDefaultDependencies=no\n\
         [Socket]\nListenStream=/run/systemd/journal/stdout\n",
    );
    root.verify(&units)
        .assert_clean("the boot deadline and the update record");

    let deadline = parse_unit(&read_repo_file(BOOT_DEADLINE));
    assert_eq!(single(&deadline, "Unit", "FailureAction"), "reboot-force");
    assert_eq!(single(&deadline, "Unit", "IgnoreOnIsolate"), "yes");
    assert_eq!(single(&deadline, "Unit", "DefaultDependencies"), "no");
    assert_eq!(
        words(&deadline, "Unit", "After"),
        ["systemd-journald.socket"]
    );
    assert!(single(&deadline, "Unit", "ConditionPathExists").contains("LoaderBootCountPath-"));
    assert_eq!(
        words(&deadline, "Install", "WantedBy"),
        ["sysinit.target", "emergency.target", "rescue.target"]
    );
    let record = parse_unit(&read_repo_file(UPDATE_RECORD));
    assert!(words(&record, "Unit", "After").contains(&"systemd-bless-boot.service"));
    // Default dependencies would order multi-user.target after it, and so after the blessing.
    assert_eq!(single(&record, "Unit", "DefaultDependencies"), "no");
    assert_eq!(
        single(&record, "Service", "ExecStart"),
        "/usr/bin/axoha-update record"
    );

    // The check can fail: a record unit with default dependencies ordered before
    // boot-complete.target makes a cycle with the blessing it waits for.
    root.assert_cycle_when(
        UPDATE_RECORD,
        (
            "\nConflicts=shutdown.target",
            "\nBefore=boot-complete.target\nConflicts=shutdown.target",
        ),
        &units,
        "the record before boot-complete.target",
    );
}

/// The boot deadline's script, run by sh with its /proc files, systemctl and sleep replaced:
/// `complete` stands for boot-complete.target active, each sleep advances the uptime 100 s.
#[test]
fn boot_deadline_script_reboots_only_an_unblessed_boot() {
    let unit = parse_unit(&read_repo_file(BOOT_DEADLINE));
    let body = single(&unit, "Service", "ExecStart")
        .strip_prefix("/bin/sh -c '")
        .and_then(|b| b.strip_suffix('\''))
        .expect("ExecStart=/bin/sh -c '...'");
    assert!(!body.contains('\'') && !body.contains('\\'));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = body.replace("$$", "$");
    for (from, count) in [
        ("/proc/cmdline", 1),
        ("/proc/uptime", 2),
        (
            "/usr/bin/systemctl is-active --quiet boot-complete.target",
            1,
        ),
        ("sleep 5;", 1),
    ] {
        assert_eq!(script.matches(from).count(), count, "{from}");
    }
    let script = script
        .replace("/proc/cmdline", &format!("{d}/cmdline"))
        .replace("/proc/uptime", &format!("{d}/uptime"))
        .replace(
            "/usr/bin/systemctl is-active --quiet boot-complete.target",
            &format!("test -e {d}/complete"),
        )
        .replace("sleep 5;", &format!("echo $((up + 100)) 0 > {d}/uptime;"));
    let cases: [(&str, bool, i32, &[&str]); 5] = [
        ("quiet", true, 0, &["within 600 s of boot (590 s from now)"]),
        (
            "axoha.boot_deadline=30",
            false,
            1,
            &["not reached within 30 s"],
        ),
        (
            "axoha.boot_deadline=300",
            false,
            1,
            &["not reached within 300 s"],
        ),
        ("axoha.boot_deadline=0", false, 0, &["deadline off"]),
        (
            "axoha.boot_deadline=1e3",
            false,
            1,
            &["ignoring", "using 600", "within 600 s"],
        ),
    ];
    for (cmdline, complete, code, words) in cases {
        fs::write(dir.path().join("cmdline"), format!("{cmdline}\n")).unwrap();
        fs::write(dir.path().join("uptime"), "10.50 1.00\n").unwrap();
        let _ = fs::remove_file(dir.path().join("complete"));
        if complete {
            fs::write(dir.path().join("complete"), "").unwrap();
        }
        let out = run(Command::new("/bin/sh").arg("-c").arg(&script));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{cmdline}: {text}");
        for w in words {
            assert!(text.contains(w), "{cmdline}: {w:?} in {text}");
        }
    }
}

#[test]
fn boot_check_unit_says_what_the_design_needs() {
    let unit = parse_unit(&read_repo_file(BOOT_CHECK));
    assert_eq!(single(&unit, "Service", "Type"), "oneshot");
    let exec = single(&unit, "Service", "ExecStart");
    assert_eq!(exec, "/usr/bin/axoha-firstboot health --wait 180");
    let wait: u64 = exec.rsplit(' ').next().unwrap().parse().unwrap();
    let timeout: u64 = single(&unit, "Service", "TimeoutStartSec").parse().unwrap();
    assert!(
        timeout > wait,
        "TimeoutStartSec={timeout} must exceed --wait {wait}"
    );
    assert_eq!(single(&unit, "Unit", "FailureAction"), "reboot");
    assert_eq!(
        single(&unit, "Service", "StandardOutput"),
        "journal+console"
    );
    // Only boots that systemd-boot counts (LoaderBootCountPath, Boot Loader Interface GUID).
    assert_eq!(
        single(&unit, "Unit", "ConditionPathExists"),
        "/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    );
    assert_eq!(words(&unit, "Unit", "Before"), ["boot-complete.target"]);
    let after = words(&unit, "Unit", "After");
    for dep in [
        "keepalived.service",
        "axorouter.service",
        "axoha-firstboot.service",
    ] {
        assert!(after.contains(&dep), "After= lacks {dep}: {after:?}");
    }
    // Ordering only: whether they run is what the check judges.
    assert!(values(&unit, "Unit", "Wants").is_empty());
    assert!(values(&unit, "Unit", "Requires").is_empty());
    assert_eq!(
        words(&unit, "Install", "RequiredBy"),
        ["boot-complete.target"]
    );
    assert!(values(&unit, "Install", "WantedBy").is_empty());

    // `systemctl enable` puts it into boot-complete.target only.
    let root = Root::new();
    let output = run(Command::new("systemctl")
        .arg(format!("--root={}", root.path().display()))
        .args(["enable", BOOT_CHECK]));
    assert!(
        output.status.success(),
        "systemctl enable failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let etc = root.path().join("etc/systemd/system");
    assert!(etc
        .join("boot-complete.target.requires")
        .join(BOOT_CHECK)
        .is_symlink());
    assert!(!etc
        .join("multi-user.target.wants")
        .join(BOOT_CHECK)
        .exists());
}

/// Nothing among the host's systemd units pulls boot-complete.target in except
/// systemd-bless-boot.service (which the bless-boot generator pulls in only in boots that
/// systemd-boot counts): a blessed boot never reaches the check. On Debian 12 hosts this is
/// the image's own systemd 252.
#[test]
fn only_bless_boot_pulls_boot_complete_target() {
    let mut pullers = Vec::new();
    for entry in fs::read_dir(HOST_UNIT_DIR).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name.starts_with("boot-complete.target.") {
                for e in fs::read_dir(&path).unwrap() {
                    pullers.push(format!(
                        "{name}/{}",
                        e.unwrap().file_name().to_string_lossy()
                    ));
                }
            }
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let unit = parse_unit_lenient(&text);
        for key in ["Wants", "Requires", "Requisite", "BindsTo", "Upholds"] {
            if words(&unit, "Unit", key).contains(&"boot-complete.target") {
                pullers.push(name.clone());
            }
        }
    }
    pullers.sort();
    pullers.dedup();
    assert!(
        pullers.iter().all(|p| p == "systemd-bless-boot.service"),
        "units that pull boot-complete.target in: {pullers:?}"
    );
}

/// Like `parse_unit`, for the host's files: continuation lines and odd lines skipped.
fn parse_unit_lenient(text: &str) -> Unit {
    let cleaned: String = text
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.ends_with('\\')
                && (l.is_empty()
                    || l.starts_with('#')
                    || l.starts_with(';')
                    || l.starts_with('[')
                    || l.contains('='))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    parse_unit(&cleaned)
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
            BOOT_CHECK,
            BOOT_DEADLINE,
            "axoha-firstboot.service",
            "axoha-heartbeat.service",
            METRICS,
            UPDATE_RECORD,
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
    let output = run(Command::new("systemctl")
        .arg(format!("--root={}", root.path().display()))
        .args(["preset", BOOT_CHECK]));
    assert!(output.status.success());
    assert!(
        root.path()
            .join("etc/systemd/system/boot-complete.target.requires")
            .join(BOOT_CHECK)
            .is_symlink(),
        "{BOOT_CHECK} was not enabled by the preset"
    );
}

// ---------------------------------------------------------------------------------------
// The initrd: dracut module 90axoha (`dracut/90axoha/`), checked against the host's systemd
// 252 initrd units and its real fstab and veritysetup generators, run as in an initrd
// (`SYSTEMD_IN_INITRD=1`) on the kernel command line of an axoha image.

const DEADLINE: &str = "axoha-initrd-deadline.service";
const PREPARE_ROOT: &str = "axoha-prepare-root.service";

/// The kernel command line the initrd's generators see: the spec's loader entry.
const IMAGE_CMDLINE: &str =
    "usrhash=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
     root=PARTUUID=6a1e3f2c-8d4b-4c3a-9e1f-2b3c4d5e6f70 rw console=ttyS0";

fn dracut_module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dracut/90axoha")
}

fn read_module_file(name: &str) -> String {
    let path = dracut_module_dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The services of systemd's own that the initrd's targets name (copied from the host).
const HOST_INITRD_SERVICES: [&str; 7] = [
    "initrd-switch-root.service",
    "initrd-cleanup.service",
    "initrd-parse-etc.service",
    "initrd-udevadm-cleanup-db.service",
    "emergency.service",
    "rescue.service",
    "systemd-journald.service",
];

impl Root {
    /// An initrd as dracut builds it with our module: the host's targets and initrd
    /// services, our two units enabled for initrd.target the way module-setup.sh does,
    /// /etc/initrd-release, the fstab and veritysetup generators, stubs for what runs.
    fn initrd() -> Self {
        let root = Root {
            dir: tempfile::tempdir().expect("creating a temporary root"),
            generators: true,
            env: vec![
                ("SYSTEMD_IN_INITRD", "1".into()),
                ("SYSTEMD_PROC_CMDLINE", IMAGE_CMDLINE.into()),
            ],
        };
        let units = root.units();
        fs::create_dir_all(&units).unwrap();
        for entry in fs::read_dir(HOST_UNIT_DIR).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".target") && entry.path().is_file() {
                fs::copy(entry.path(), units.join(&name)).unwrap();
            }
        }
        for unit in HOST_INITRD_SERVICES {
            let from = Path::new(HOST_UNIT_DIR).join(unit);
            fs::copy(&from, units.join(unit))
                .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
        let wants = units.join("initrd.target.wants");
        fs::create_dir_all(&wants).unwrap();
        for unit in [DEADLINE, PREPARE_ROOT] {
            fs::copy(dracut_module_dir().join(unit), units.join(unit)).unwrap();
            std::os::unix::fs::symlink(format!("../{unit}"), wants.join(unit)).unwrap();
        }
        let generators = root.path().join("usr/lib/systemd/system-generators");
        fs::create_dir_all(&generators).unwrap();
        for g in ["systemd-fstab-generator", "systemd-veritysetup-generator"] {
            let from = Path::new("/usr/lib/systemd/system-generators").join(g);
            fs::copy(&from, generators.join(g))
                .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/initrd-release"), "NAME=dracut\n").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.path().join("lib")).unwrap();
        for stub in [
            "usr/bin/axoha-update",
            "usr/bin/sh",
            "usr/bin/systemctl",
            "usr/bin/plymouth",
            "usr/lib/systemd/systemd-veritysetup",
            "usr/lib/systemd/systemd-sulogin-shell",
            "usr/lib/systemd/systemd-journald",
            "usr/lib/systemd/systemd-fsck",
        ] {
            root.stub(stub);
        }
        root
    }
}

/// The boot as dracut runs it (initrd.target pulls both our units in, next to the mounts
/// the generators made from usrhash= and root=), the failure path and the end of the
/// initrd: each its own transaction, each without an ordering cycle.
#[test]
fn initrd_units_verify_cleanly() {
    let root = Root::initrd();
    root.verify(&["initrd.target", DEADLINE, PREPARE_ROOT])
        .assert_clean("the initrd with our units");
    root.verify(&["emergency.target"])
        .assert_clean("the initrd's emergency target");
    root.verify(&["initrd-switch-root.target"])
        .assert_clean("the switch to the real root");
}

/// The initrd checks see the generated mounts and can fail.
#[test]
fn initrd_verification_catches_mistakes() {
    // Ordered before the /usr mount it needs (sysusr-usr.mount comes from the fstab
    // generator, on usrhash=): a cycle through sysroot-usr.mount.
    let root = Root::initrd();
    root.edit(&format!("{UNIT_DIR}/{PREPARE_ROOT}"), |t| {
        t.replace(
            "\nBefore=initrd-parse-etc.service initrd-fs.target\n",
            "\nBefore=initrd-parse-etc.service initrd-fs.target sysusr-usr.mount\n",
        )
    });
    root.verify(&["initrd.target", PREPARE_ROOT])
        .assert_complains("prepare-root before the /usr mount", "cycl");

    // Ordered before the root file system it prepares.
    let root = Root::initrd();
    root.edit(&format!("{UNIT_DIR}/{PREPARE_ROOT}"), |t| {
        t.replace(
            "\nBefore=initrd-parse-etc.service initrd-fs.target\n",
            "\nBefore=initrd-parse-etc.service initrd-fs.target initrd-root-fs.target\n",
        )
    });
    // (systemd deletes a job to break this one and exits 0: the complaint is what fails
    // assert_clean.)
    let v = root.verify(&["initrd.target", PREPARE_ROOT]);
    assert!(
        v.ours.iter().any(|l| l.contains("ordering cycle")),
        "no cycle reported for prepare-root before initrd-root-fs.target:\n{}",
        v.stderr
    );

    // A bad emergency action.
    let root = Root::initrd();
    root.edit(&format!("{UNIT_DIR}/{DEADLINE}"), |t| {
        t.replace("FailureAction=reboot-force", "FailureAction=reboot-forced")
    });
    root.verify(&["initrd.target", DEADLINE])
        .assert_complains("FailureAction=reboot-forced", "reboot-forced");

    // The updater missing from the initrd.
    let root = Root::initrd();
    fs::remove_file(root.path().join("usr/bin/axoha-update")).unwrap();
    root.verify(&["initrd.target", PREPARE_ROOT])
        .assert_complains("no axoha-update in the initrd", "/usr/bin/axoha-update");
}

#[test]
fn deadline_unit_says_what_the_design_needs() {
    let unit = parse_unit(&read_module_file(DEADLINE));
    assert_eq!(
        single(&unit, "Unit", "ConditionPathExists"),
        "/etc/initrd-release"
    );
    assert_eq!(single(&unit, "Unit", "DefaultDependencies"), "no");
    // Survives the isolate to emergency.target...
    assert_eq!(single(&unit, "Unit", "IgnoreOnIsolate"), "yes");
    // ...but not the end of the initrd, and is gone before switch-root runs.
    let conflicts = words(&unit, "Unit", "Conflicts");
    assert!(
        conflicts.contains(&"initrd-switch-root.target"),
        "{conflicts:?}"
    );
    let before = words(&unit, "Unit", "Before");
    for dep in ["initrd-switch-root.target", "initrd-switch-root.service"] {
        assert!(before.contains(&dep), "Before= lacks {dep}: {before:?}");
    }
    // Nothing in the emergency path may stop it.
    for dep in ["emergency.target", "emergency.service", "rescue.target"] {
        assert!(!conflicts.contains(&dep), "Conflicts={dep}");
    }
    // Reboots on failure only: SuccessAction= would also fire on the stop at switch-root.
    assert_eq!(single(&unit, "Unit", "FailureAction"), "reboot-force");
    assert!(values(&unit, "Unit", "SuccessAction").is_empty());
    assert!(values(&unit, "Unit", "OnFailure").is_empty());
    assert_eq!(single(&unit, "Service", "Type"), "simple");
    assert!(values(&unit, "Service", "RuntimeMaxSec").is_empty());
    assert!(values(&unit, "Service", "Restart").is_empty());
    assert_eq!(
        single(&unit, "Service", "StandardOutput"),
        "journal+console"
    );
    let exec = single(&unit, "Service", "ExecStart");
    assert!(exec.starts_with("/bin/sh -c '"), "{exec}");
}

#[test]
fn prepare_root_unit_says_what_the_design_needs() {
    let unit = parse_unit(&read_module_file(PREPARE_ROOT));
    assert_eq!(
        single(&unit, "Service", "ExecStart"),
        "/usr/bin/axoha-update prepare-root /sysroot"
    );
    assert_eq!(single(&unit, "Service", "Type"), "oneshot");
    assert_eq!(single(&unit, "Unit", "DefaultDependencies"), "no");
    assert_eq!(single(&unit, "Unit", "RequiresMountsFor"), "/sysroot/usr");
    let after = words(&unit, "Unit", "After");
    for dep in ["initrd-root-fs.target", "initrd-usr-fs.target"] {
        assert!(after.contains(&dep), "After= lacks {dep}: {after:?}");
    }
    let before = words(&unit, "Unit", "Before");
    for dep in ["initrd-parse-etc.service", "initrd-fs.target"] {
        assert!(before.contains(&dep), "Before= lacks {dep}: {before:?}");
    }
    // A failure stops the boot in the initrd, where the deadline reboots it.
    assert_eq!(single(&unit, "Unit", "OnFailure"), "emergency.target");
    assert_eq!(
        single(&unit, "Unit", "OnFailureJobMode"),
        "replace-irreversibly"
    );
}

/// The deadline's shell script, as systemd hands it to /bin/sh (`$$` is `$`, `%%` is `%`),
/// reading `cmdline` and `uptime` from `dir` and printing instead of sleeping.
fn deadline_script(dir: &Path) -> String {
    let unit = parse_unit(&read_module_file(DEADLINE));
    let exec = single(&unit, "Service", "ExecStart");
    let body = exec
        .strip_prefix("/bin/sh -c '")
        .and_then(|b| b.strip_suffix('\''))
        .expect("ExecStart=/bin/sh -c '...'");
    assert!(!body.contains('\''), "a quote inside the script");
    assert!(
        !body.contains('\\'),
        "a backslash: systemd would unescape it"
    );
    let script = body.replace("$$", "$").replace("%%", "%");
    assert_eq!(script.matches("/proc/cmdline").count(), 1);
    assert_eq!(script.matches("/proc/uptime").count(), 1);
    assert_eq!(script.matches("sleep \"$left\"").count(), 1);
    script
        .replace("/proc/cmdline", &dir.join("cmdline").display().to_string())
        .replace("/proc/uptime", &dir.join("uptime").display().to_string())
        .replace("sleep \"$left\"", "echo \"SLEEP $left\"")
}

/// (kernel command line, /proc/uptime, exit status, seconds slept, words in the output)
type DeadlineCase = (
    &'static str,
    &'static str,
    i32,
    Option<u64>,
    &'static [&'static str],
);

#[test]
fn deadline_script_counts_from_boot_and_reads_its_argument() {
    let shells: Vec<&str> = ["/bin/sh", "/usr/bin/dash", "/bin/bash"]
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect();
    assert!(!shells.is_empty());
    let dir = tempfile::tempdir().unwrap();
    // A `*` on the command line must not expand to the files of the working directory.
    fs::write(dir.path().join("axoha.initrd_deadline=1"), "").unwrap();
    let script = deadline_script(dir.path());
    let cases: [DeadlineCase; 9] = [
        (
            "quiet",
            "3.52 1.00",
            1,
            Some(237),
            &["within 240 s of boot"],
        ),
        (
            "axoha.initrd_deadline=60 quiet",
            "10.99 1",
            1,
            Some(50),
            &["within 60 s"],
        ),
        (
            "x axoha.initrd_deadline=60 axoha.initrd_deadline=90",
            "0.5 0",
            1,
            Some(90),
            &[],
        ),
        (
            "axoha.initrd_deadline=30",
            "45.00 1",
            1,
            Some(1),
            &["within 30 s"],
        ),
        (
            "axoha.initrd_deadline=0",
            "1.0 1",
            0,
            None,
            &["deadline off"],
        ),
        (
            "axoha.initrd_deadline=abc",
            "0.0 0",
            1,
            Some(240),
            &["ignoring", "using 240"],
        ),
        (
            "axoha.initrd_deadline=0600",
            "0.0 0",
            1,
            Some(240),
            &["ignoring"],
        ),
        (
            "axoha.initrd_deadline=1234567",
            "0.0 0",
            1,
            Some(240),
            &["ignoring"],
        ),
        (
            "* axoha.initrd_deadline=",
            "0.0 0",
            1,
            Some(240),
            &["ignoring"],
        ),
    ];
    for shell in shells {
        for (cmdline, uptime, status, sleep, words) in cases {
            fs::write(dir.path().join("cmdline"), format!("{cmdline}\n")).unwrap();
            fs::write(dir.path().join("uptime"), format!("{uptime}\n")).unwrap();
            let out = run(Command::new(shell)
                .args(["-c", &script])
                .current_dir(dir.path()));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let what = format!("{shell}, cmdline {cmdline:?}, uptime {uptime}:\n{stdout}");
            assert_eq!(out.status.code(), Some(status), "{what}");
            assert!(
                out.stderr.is_empty(),
                "{what}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let slept = stdout
                .lines()
                .find_map(|l| l.strip_prefix("SLEEP "))
                .map(|s| s.parse::<u64>().unwrap());
            assert_eq!(slept, sleep, "{what}");
            for w in words {
                assert!(stdout.contains(w), "{what}");
            }
            if status == 1 {
                let last = stdout.lines().last().unwrap();
                assert!(
                    last.starts_with("axoha: the root file system was not reached within ")
                        && last
                            .ends_with("rebooting so that the boot loader counts this failed try"),
                    "{what}"
                );
            }
        }
    }
}

/// module-setup.sh as dracut calls it, with dracut's helpers replaced by recorders.
#[test]
fn dracut_module_setup_installs_and_enables_both_units() {
    let setup = dracut_module_dir().join("module-setup.sh");
    let syntax = run(Command::new("bash").arg("-n").arg(&setup));
    assert!(syntax.status.success(), "bash -n module-setup.sh failed");
    let shellcheck = Command::new("shellcheck")
        .args(["--shell=bash", "--exclude=SC2154"])
        .arg(&setup)
        .output();
    match shellcheck {
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("note: shellcheck not installed; bash -n only"),
    }

    let initdir = tempfile::tempdir().unwrap();
    let log = initdir.path().join("../inst.log");
    let driver = format!(
        r#"set -eu
inst_multiple() {{ echo "inst_multiple $*" >> "{log}"; }}
inst_simple() {{ echo "inst_simple $*" >> "{log}"; mkdir -p "$initdir$(dirname "$2")"; cp "$1" "$initdir$2"; }}
moddir="{moddir}"
initdir="{initdir}"
systemdsystemunitdir=/usr/lib/systemd/system
. "$moddir/module-setup.sh"
rc=0; check || rc=$?
echo "check $rc"
echo "depends $(depends)"
install
echo installed
"#,
        log = log.display(),
        moddir = dracut_module_dir().display(),
        initdir = initdir.path().display(),
    );
    let out = run(Command::new("bash").args(["-c", &driver]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("check 255\n"), "{stdout}");
    assert!(
        stdout.contains("depends systemd systemd-veritysetup\n"),
        "{stdout}"
    );
    let installed = fs::read_to_string(&log).unwrap();
    let _ = fs::remove_file(&log);
    assert!(
        installed
            .lines()
            .any(|l| l.starts_with("inst_multiple ") && l.contains("/usr/bin/axoha-update")),
        "{installed}"
    );
    // Everything the deadline script runs besides shell builtins.
    assert!(
        installed.lines().any(|l| l.starts_with("inst_multiple ")
            && l.split_whitespace().any(|w| w == "sleep")
            && l.split_whitespace().any(|w| w == "sh")),
        "{installed}"
    );
    let units = initdir.path().join(UNIT_DIR);
    for unit in [DEADLINE, PREPARE_ROOT] {
        assert_eq!(
            fs::read(units.join(unit)).unwrap(),
            fs::read(dracut_module_dir().join(unit)).unwrap()
        );
        let link = units.join("initrd.target.wants").join(unit);
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("..").join(unit),
            "{}",
            link.display()
        );
    }
}

/// The deadline unit under a real systemd manager (the host's, 252): a user instance in a
/// private mount namespace, where `/run/systemd/system` exists only for it. Its unit file
/// is ours with what a user manager cannot do replaced: `FailureAction=exit-force` for
/// `reboot-force` (the same `emergency_action()` path: the manager ends instead of the
/// machine), the kernel command line read from a file whose `axoha.initrd_deadline=` is set
/// from this machine's uptime, no initrd condition. Stand-ins for emergency.target and
/// initrd-switch-root.target are plain isolatable targets. Shown: the unit survives the
/// isolate to emergency.target (another service does not), is stopped by the isolate to
/// initrd-switch-root.target without any action, and ends the manager when its deadline
/// passes; and the rejected design, `SuccessAction=`, ends it at the mere stop.
/// Needs root and `unshare`; skipped (with a note) where they are missing.
#[test]
fn deadline_semantics_under_a_real_systemd_manager() {
    let systemd = Path::new("/usr/lib/systemd/systemd");
    if !nix::unistd::geteuid().is_root() || !systemd.exists() {
        eprintln!("note: skipped: needs root and {}", systemd.display());
        return;
    }
    let original = read_module_file(DEADLINE);
    let uptime: u64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let scenario = |unit_text: &str, deadline: u64, steps: &str| -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("config/systemd/user");
        fs::create_dir_all(&units).unwrap();
        fs::create_dir_all(dir.path().join("runtime")).unwrap();
        fs::set_permissions(
            dir.path().join("runtime"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let cmdline = dir.path().join("cmdline");
        fs::write(
            &cmdline,
            format!("quiet axoha.initrd_deadline={}\n", uptime + deadline),
        )
        .unwrap();
        let unit = unit_text
            .replace("ConditionPathExists=/etc/initrd-release\n", "")
            .replace("=reboot-force\n", "=exit-force\n")
            .replace("/proc/cmdline", &cmdline.display().to_string());
        assert_eq!(unit.matches("exit-force").count(), 1, "{unit}");
        fs::write(units.join(DEADLINE), unit).unwrap();
        for target in ["emergency.target", "initrd-switch-root.target"] {
            fs::write(units.join(target), "[Unit]\nAllowIsolate=yes\n").unwrap();
        }
        fs::write(
            units.join("other.service"),
            "[Service]\nExecStart=/bin/sleep 600\n",
        )
        .unwrap();
        let driver = format!(
            r#"mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system || {{ echo SETUP-FAILED; exit 0; }}
export XDG_RUNTIME_DIR={d}/runtime XDG_CONFIG_HOME={d}/config HOME={d}
{systemd} --user > {d}/manager.log 2>&1 &
pid=$!
sc() {{ systemctl --user "$@"; }}
i=0; until sc is-system-running > /dev/null 2>&1; do i=$((i+1)); [ $i -gt 50 ] && {{ echo SETUP-FAILED; kill $pid; exit 0; }}; sleep 0.1; done
alive() {{ if kill -0 $pid 2> /dev/null; then echo "manager alive"; else echo "manager gone"; fi; }}
state() {{ echo "$1: $(sc is-active {deadline} other.service | tr '\n' ' ')"; }}
{steps}
kill $pid 2> /dev/null
exit 0
"#,
            d = dir.path().display(),
            systemd = systemd.display(),
            deadline = DEADLINE,
        );
        let out = run(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &driver])
            .current_dir(dir.path()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout.lines().map(str::to_owned).collect()
    };

    // Survives emergency, stopped cleanly by the switch to the real root.
    let lines = scenario(
        &original,
        30,
        &format!(
            "sc start {DEADLINE} other.service; state started
sc isolate emergency.target; sleep 0.5; state emergency
sc isolate initrd-switch-root.target; sleep 0.5; state switch-root
echo \"result $(sc show -P Result {DEADLINE})\"; alive"
        ),
    );
    if lines.first().map(String::as_str) == Some("SETUP-FAILED") || lines.is_empty() {
        eprintln!("note: skipped: no private mount namespace or user manager here: {lines:?}");
        return;
    }
    assert_eq!(
        lines,
        [
            "started: active active ",
            "emergency: active inactive ",
            "switch-root: inactive inactive ",
            "result success",
            "manager alive",
        ]
    );

    // The deadline passes in emergency mode: the failure action ends the manager.
    let lines = scenario(
        &original,
        2,
        &format!(
            "sc start {DEADLINE}; sc isolate emergency.target; alive
i=0; while kill -0 $pid 2> /dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; alive"
        ),
    );
    assert_eq!(lines, ["manager alive", "manager gone"]);

    // The rejected design: SuccessAction= acts on the stop at switch-root.
    let success_action = original.replace("\nFailureAction=", "\nSuccessAction=");
    let lines = scenario(
        &success_action,
        30,
        &format!("sc start {DEADLINE}; sc isolate initrd-switch-root.target; sleep 1; alive"),
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("manager gone"),
        "{lines:?}"
    );
}
