//! `axoha-firstboot health`: is this node doing its job, so that the boot loader may keep
//! this boot entry? Run by `axoha-boot-check.service` before `boot-complete.target` in boots
//! that systemd-boot counts; a failure there reboots the node and, once the entry's tries
//! are used up, boot counting falls back to the other slot.
//!
//! Healthy means all of:
//! - `keepalived.service` is active, and the process it runs reads our config: its
//!   `/proc/PID/cmdline` has only options axoha allows ([`running_of`]: no `-f`/`--use-file`
//!   naming another file, no `--namespace`, no `--check`-only, ...), so an `EnvironmentFile=`
//!   such as `/etc/default/keepalived` cannot make it run a config nothing validated,
//! - `/etc/keepalived/keepalived.conf` is the file axoha-firstboot rendered: its first line
//!   starts with the template's header ([`HEADER`]; the image ships no sample config, and a
//!   file written by anyone else would not carry it),
//! - the last VRRP state keepalived reported for the group [`keepalived::GROUP`] through the
//!   notify script (`/run/axoha/transitions`, read as `status` reads it) is MASTER or BACKUP:
//!   not FAULT, not STOP, not missing,
//! - `axorouter.service` is active.
//!
//! A drained node (`drain`) is a healthy BACKUP: the summary says it is drained.
//!
//! [`judge`] decides from an [`Observed`] and is pure; [`observe`] is the I/O edge
//! (`systemctl is-active`, two small file reads); [`wait`] polls until healthy or out of time.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::render::{keepalived, KEEPALIVED_CONF};
use crate::status::{parse_transitions, RunDir, Transition};
use axoha_root::{Last, RootDir};

/// How the first line of every keepalived.conf axoha-firstboot renders starts
/// (`templates/keepalived.conf.j2`).
pub const HEADER: &str = "# Written by axoha-firstboot from this node's metadata.";

pub const KEEPALIVED_UNIT: &str = "keepalived.service";
pub const AXOROUTER_UNIT: &str = "axorouter.service";

/// How often `wait` looks again.
pub const POLL: Duration = Duration::from_secs(2);

/// The most of keepalived.conf and of the transitions file that is read (both are a few KiB).
const READ_MAX: u64 = 256 * 1024;

/// What `systemctl is-active` said about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    Active,
    /// Its word for any other state: `inactive`, `failed`, `activating`, `reloading`, ...
    Not(String),
    /// systemctl could not be asked or said nothing.
    Unknown(String),
}

/// Whose keepalived.conf is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conf {
    Ours,
    /// There, but without our header.
    Foreign,
    Missing,
    Unreadable(String),
}

/// What the keepalived that runs was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// Only options that keep our keepalived.conf in charge.
    Ours,
    /// An option that does not: the option, as found.
    Foreign(String),
    /// Not looked at (the unit is not active) or could not be read.
    Unknown(String),
}

/// The last VRRP state the notify script recorded for our group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vrrp {
    State(String),
    /// No transition of our group recorded (no file, or no line of ours in it).
    None,
    Unreadable(String),
}

/// One look at the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub keepalived: UnitState,
    pub running: Running,
    pub conf: Conf,
    pub vrrp: Vrrp,
    pub axorouter: UnitState,
    /// The drain files: a drained node is healthy and says so (`None`: unreadable, which
    /// changes nothing about its health).
    pub drain: Option<crate::drain::Drain>,
}

/// The verdict on one [`Observed`]: healthy with a summary, or the list of what is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy(String),
    Unhealthy(Vec<String>),
}

fn unit_problem(unit: &str, state: &UnitState) -> Option<String> {
    match state {
        UnitState::Active => None,
        UnitState::Not(word) => Some(format!("{unit} is {word}")),
        UnitState::Unknown(why) => Some(format!("{unit}: state unknown ({why})")),
    }
}

/// The decision, from what was observed only.
pub fn judge(o: &Observed) -> Verdict {
    let mut problems = Vec::new();
    problems.extend(unit_problem(KEEPALIVED_UNIT, &o.keepalived));
    if o.keepalived == UnitState::Active {
        match &o.running {
            Running::Ours => {}
            Running::Foreign(option) => problems.push(format!(
                "keepalived runs with {}, which axoha does not set: it may not be running \
                 /{KEEPALIVED_CONF}",
                crate::log::quote(option)
            )),
            Running::Unknown(why) => {
                problems.push(format!("keepalived's command line cannot be read ({why})"))
            }
        }
    }
    let conf = format!("/{KEEPALIVED_CONF}");
    match &o.conf {
        Conf::Ours => {}
        Conf::Foreign => problems.push(format!(
            "{conf} was not written by axoha-firstboot (no {HEADER:?} header)"
        )),
        Conf::Missing => problems.push(format!("{conf} is missing")),
        Conf::Unreadable(why) => problems.push(format!("{conf} cannot be read ({why})")),
    }
    let state = match &o.vrrp {
        Vrrp::State(s) if s == "MASTER" || s == "BACKUP" => Some(s.as_str()),
        Vrrp::State(s) => {
            problems.push(format!("VRRP state is {s}"));
            None
        }
        Vrrp::None => {
            problems.push("keepalived has reported no VRRP state yet".to_owned());
            None
        }
        Vrrp::Unreadable(why) => {
            problems.push(format!("VRRP state cannot be read ({why})"));
            None
        }
    };
    problems.extend(unit_problem(AXOROUTER_UNIT, &o.axorouter));
    match state {
        Some(state) if problems.is_empty() => Verdict::Healthy(format!(
            "{KEEPALIVED_UNIT} active with axoha's keepalived.conf, VRRP {state}{}, \
             {AXOROUTER_UNIT} active",
            match o.drain {
                Some(d) if d.any() => format!(" ({})", d.describe()),
                _ => String::new(),
            }
        )),
        _ => Verdict::Unhealthy(problems),
    }
}

/// Whose file `contents` is (`None`: there is no file).
pub fn conf_of(contents: Option<&[u8]>) -> Conf {
    match contents {
        None => Conf::Missing,
        Some(c) if c.starts_with(HEADER.as_bytes()) => Conf::Ours,
        Some(_) => Conf::Foreign,
    }
}

/// keepalived's options that leave our keepalived.conf in charge (logging, pid files, the
/// process model). Everything else, from `--use-file` of another file to `--namespace`,
/// `--check` (no VRRP) or `--dont-release-vrrp` (a stopped node keeps the VIP), is foreign.
const FLAGS: [&str; 14] = [
    "-n",
    "--dont-fork",
    "-D",
    "--log-detail",
    "-l",
    "--log-console",
    "-G",
    "--no-syslog",
    "-P",
    "--vrrp",
    "-B",
    "--no_bfd",
    "-a",
    "--address-monitoring",
];
/// Options with a value (`-S 3`, `--log-facility=3`) that leave the config in charge.
const WITH_VALUE: [(&str, &str); 5] = [
    ("-S", "--log-facility"),
    ("-p", "--pid"),
    ("-r", "--vrrp_pid"),
    ("-c", "--checkers_pid"),
    ("-b", "--bfd_pid"),
];
/// `-f`/`--use-file`: allowed only with our file.
const USE_FILE: (&str, &str) = ("-f", "--use-file");

/// Whether the keepalived started as `argv` (from `/proc/PID/cmdline`) runs our config.
pub fn running_of(argv: &[&str]) -> Running {
    let ours = format!("/{KEEPALIVED_CONF}");
    match argv.first() {
        Some(a) if a.rsplit('/').next() == Some("keepalived") => {}
        other => return Running::Foreign(other.unwrap_or(&"").to_string()),
    }
    let mut args = argv[1..].iter();
    while let Some(arg) = args.next() {
        if FLAGS.contains(arg) {
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ if arg.len() > 2 && arg.is_char_boundary(2) && !arg.starts_with("--") => {
                (&arg[..2], Some(&arg[2..]))
            }
            _ => (*arg, None),
        };
        let takes_value = WITH_VALUE
            .iter()
            .chain([&USE_FILE])
            .any(|(short, long)| name == *short || name == *long);
        if !takes_value {
            return Running::Foreign(arg.to_string());
        }
        let value = match inline.or_else(|| args.next().copied()) {
            Some(v) => v,
            None => return Running::Foreign(arg.to_string()),
        };
        if (name == USE_FILE.0 || name == USE_FILE.1) && value != ours {
            return Running::Foreign(format!("{name} {value}"));
        }
    }
    Running::Ours
}

/// keepalived's main process, from systemd, and its command line from `/proc` (of the running
/// system, like the units' states).
fn running() -> Running {
    let pid = match Command::new("systemctl")
        .args(["show", "--property=MainPID", "--value", KEEPALIVED_UNIT])
        .output()
    {
        Err(e) => return Running::Unknown(format!("running systemctl: {e}")),
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    };
    match pid.parse() {
        Ok(p) if p > 0 => running_pid(p),
        _ => Running::Unknown(format!("systemd names no main process ({pid:?})")),
    }
}

/// Whether the keepalived with process id `pid` runs our config, from `/proc/PID/cmdline`.
pub fn running_pid(pid: u32) -> Running {
    let path = format!("/proc/{pid}/cmdline");
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&path)
        .and_then(|f| std::io::Read::take(f, READ_MAX).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Running::Unknown(format!("reading {path}: {e}"));
    }
    let text = String::from_utf8_lossy(&bytes);
    let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
    running_of(&argv)
}

/// The last state recorded for our group in the notify script's `transitions` text.
pub fn vrrp_of(transitions: &[u8]) -> Vrrp {
    last_of_group(&parse_transitions(transitions))
}

fn last_of_group(transitions: &[Transition]) -> Vrrp {
    transitions
        .iter()
        .rev()
        .find(|t| t.name == keepalived::GROUP)
        .map_or(Vrrp::None, |t| Vrrp::State(t.state.clone()))
}

/// `systemctl is-active UNIT`, as a state.
fn unit_state(unit: &str) -> UnitState {
    match Command::new("systemctl").args(["is-active", unit]).output() {
        Err(e) => UnitState::Unknown(format!("running systemctl: {e}")),
        Ok(out) => {
            let word = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && word == "active" {
                UnitState::Active
            } else if word.is_empty() || word.contains(char::is_whitespace) {
                let err = String::from_utf8_lossy(&out.stderr);
                let err = err.lines().next().unwrap_or("").trim();
                UnitState::Unknown(format!("systemctl is-active: {}: {err}", out.status))
            } else {
                UnitState::Not(word)
            }
        }
    }
}

/// One look at the node: keepalived.conf under `root`, the transitions in `run_dir` (read
/// as `status` reads them: confined, regular file only, capped, line by line), both units
/// and keepalived's command line from the running system.
pub fn observe(root: &RootDir, run_dir: &RunDir) -> Observed {
    let conf = match root.read(KEEPALIVED_CONF, READ_MAX, Last::Follow) {
        Ok(c) => conf_of(c.as_deref()),
        Err(e) => Conf::Unreadable(format!("{e:#}")),
    };
    let vrrp = match run_dir.transitions() {
        Ok(t) => last_of_group(&t),
        Err(e) => Vrrp::Unreadable(format!("{e:#}")),
    };
    let keepalived = unit_state(KEEPALIVED_UNIT);
    let running = if keepalived == UnitState::Active {
        running()
    } else {
        Running::Unknown("not active".into())
    };
    Observed {
        keepalived,
        running,
        conf,
        vrrp,
        axorouter: unit_state(AXOROUTER_UNIT),
        drain: crate::drain::read(root).ok(),
    }
}

/// Looks with `look` until the node is healthy or `wait` has passed (at least once, and
/// once more at the end), sleeping `poll` between looks. `Ok`: the healthy summary;
/// `Err`: the last look's problems, in one line.
pub fn wait(
    wait: Duration,
    poll: Duration,
    mut look: impl FnMut() -> Observed,
    mut sleep: impl FnMut(Duration),
) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let problems = match judge(&look()) {
            Verdict::Healthy(summary) => return Ok(summary),
            Verdict::Unhealthy(problems) => problems,
        };
        let elapsed = start.elapsed();
        if elapsed >= wait {
            let waited = if wait.is_zero() {
                String::new()
            } else {
                format!(" after {} s", wait.as_secs())
            };
            return Err(format!("unhealthy{waited}: {}", problems.join("; ")));
        }
        sleep(poll.min(wait - elapsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Observed {
        Observed {
            keepalived: UnitState::Active,
            running: Running::Ours,
            conf: Conf::Ours,
            vrrp: Vrrp::State("BACKUP".into()),
            axorouter: UnitState::Active,
            drain: None,
        }
    }

    fn problems(o: &Observed) -> Vec<String> {
        match judge(o) {
            Verdict::Unhealthy(p) => p,
            Verdict::Healthy(s) => panic!("judged healthy: {s}"),
        }
    }

    #[test]
    fn master_and_backup_with_everything_up_are_healthy() {
        for state in ["MASTER", "BACKUP"] {
            let o = Observed {
                vrrp: Vrrp::State(state.into()),
                ..healthy()
            };
            match judge(&o) {
                Verdict::Healthy(s) => assert!(s.contains(&format!("VRRP {state}")), "{s}"),
                v => panic!("{state}: {v:?}"),
            }
        }
    }

    #[test]
    fn each_problem_is_named() {
        let cases = [
            (
                Observed {
                    keepalived: UnitState::Not("failed".into()),
                    ..healthy()
                },
                "keepalived.service is failed",
            ),
            (
                Observed {
                    keepalived: UnitState::Not("activating".into()),
                    ..healthy()
                },
                "keepalived.service is activating",
            ),
            (
                Observed {
                    conf: Conf::Foreign,
                    ..healthy()
                },
                "was not written by axoha-firstboot",
            ),
            (
                Observed {
                    conf: Conf::Missing,
                    ..healthy()
                },
                "/etc/keepalived/keepalived.conf is missing",
            ),
            (
                Observed {
                    vrrp: Vrrp::State("FAULT".into()),
                    ..healthy()
                },
                "VRRP state is FAULT",
            ),
            (
                Observed {
                    vrrp: Vrrp::State("STOP".into()),
                    ..healthy()
                },
                "VRRP state is STOP",
            ),
            (
                Observed {
                    vrrp: Vrrp::None,
                    ..healthy()
                },
                "no VRRP state yet",
            ),
            (
                Observed {
                    axorouter: UnitState::Not("inactive".into()),
                    ..healthy()
                },
                "axorouter.service is inactive",
            ),
            (
                Observed {
                    axorouter: UnitState::Unknown("no systemd".into()),
                    ..healthy()
                },
                "axorouter.service: state unknown (no systemd)",
            ),
        ];
        for (o, want) in cases {
            let p = problems(&o);
            assert_eq!(p.len(), 1, "{o:?}: {p:?}");
            assert!(p[0].contains(want), "{o:?}: {p:?}");
        }
    }

    #[test]
    fn a_node_that_never_came_up_lists_everything() {
        // First boot failed (no stamp): keepalived and axorouter never started, no config.
        let o = Observed {
            keepalived: UnitState::Not("inactive".into()),
            running: Running::Unknown("not active".into()),
            conf: Conf::Missing,
            vrrp: Vrrp::None,
            axorouter: UnitState::Not("inactive".into()),
            drain: None,
        };
        assert_eq!(problems(&o).len(), 4);
    }

    #[test]
    fn a_drained_backup_is_healthy_and_says_so() {
        let o = Observed {
            drain: Some(crate::drain::Drain {
                operator: true,
                reboot: false,
            }),
            ..healthy()
        };
        match judge(&o) {
            Verdict::Healthy(s) => {
                assert!(s.contains("VRRP BACKUP (drained by the operator"), "{s}")
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn our_conf_is_told_by_its_first_line() {
        let template = include_str!("../templates/keepalived.conf.j2");
        assert!(template.starts_with(HEADER), "template header changed");
        assert_eq!(conf_of(Some(template.as_bytes())), Conf::Ours);
        assert_eq!(conf_of(None), Conf::Missing);
        // The packaged sample and a hand-written file.
        assert_eq!(
            conf_of(Some(b"! Configuration File for keepalived\n")),
            Conf::Foreign
        );
        assert_eq!(conf_of(Some(b"")), Conf::Foreign);
        // The header further down is not ours.
        let moved = format!("# edited\n{HEADER}\n");
        assert_eq!(conf_of(Some(moved.as_bytes())), Conf::Foreign);
    }

    #[test]
    fn vrrp_state_is_the_last_one_of_our_group() {
        let t = format!(
            "2026-11-26T10:00:00.000Z {g} BACKUP 100\n\
             2026-11-26T10:00:03.000Z {g} MASTER 100\n\
             2026-11-26T10:00:04.000Z axoha_ha FAULT 100\n",
            g = keepalived::GROUP
        );
        assert_eq!(vrrp_of(t.as_bytes()), Vrrp::State("MASTER".into()));
        let t = format!(
            "{t}2026-11-26T10:01:00.000Z {} FAULT 100\n",
            keepalived::GROUP
        );
        assert_eq!(vrrp_of(t.as_bytes()), Vrrp::State("FAULT".into()));
        assert_eq!(vrrp_of(b""), Vrrp::None);
        assert_eq!(vrrp_of(b"garbage\n"), Vrrp::None);
        // A bad line is skipped, not the file.
        let t = format!(
            "2026-11-26T10:00:00.000Z {} BACKUP 100\n",
            keepalived::GROUP
        );
        let mut bytes = t.into_bytes();
        bytes.extend_from_slice(b"\xff\n2026-11-26T10:00:01.000Z axoha MASTER \xfe\n");
        assert_eq!(vrrp_of(&bytes), Vrrp::State("BACKUP".into()));
        assert_eq!(
            vrrp_of(b"2026-11-26T10:00:00.000Z other MASTER 1\n"),
            Vrrp::None
        );
    }

    #[test]
    fn only_a_keepalived_running_our_config_is_ours() {
        let ours = [
            &["/usr/sbin/keepalived", "--dont-fork"][..],
            &["/usr/sbin/keepalived", "--dont-fork", "-D"],
            &["keepalived", "-n", "-f", "/etc/keepalived/keepalived.conf"],
            &[
                "/usr/sbin/keepalived",
                "--use-file=/etc/keepalived/keepalived.conf",
            ],
            &[
                "/usr/sbin/keepalived",
                "-f/etc/keepalived/keepalived.conf",
                "-S",
                "3",
            ],
            &[
                "/usr/sbin/keepalived",
                "--log-facility=3",
                "-p",
                "/run/k.pid",
            ],
        ];
        for argv in ours {
            assert_eq!(running_of(argv), Running::Ours, "{argv:?}");
        }
        let foreign = [
            (
                &[
                    "/usr/sbin/keepalived",
                    "--dont-fork",
                    "--use-file=/tmp/x.conf",
                ][..],
                "--use-file /tmp/x.conf",
            ),
            (
                &["/usr/sbin/keepalived", "-f", "/etc/keepalived/other.conf"],
                "-f /etc/keepalived/other.conf",
            ),
            (&["/usr/sbin/keepalived", "-f/tmp/x"], "-f /tmp/x"),
            (
                &[
                    "/usr/sbin/keepalived",
                    "--use-file",
                    "/etc/keepalived//keepalived.conf",
                ],
                "--use-file",
            ),
            (&["/usr/sbin/keepalived", "-f"], "-f"),
            (&["/usr/sbin/keepalived", "--check"], "--check"),
            (&["/usr/sbin/keepalived", "-C"], "-C"),
            (&["/usr/sbin/keepalived", "--namespace=x"], "--namespace=x"),
            (&["/usr/sbin/keepalived", "-V"], "-V"),
            (&["/usr/sbin/keepalived", "-nf", "/tmp/x"], "-nf"),
            (&["/tmp/evil", "--dont-fork"], "/tmp/evil"),
            (&["/usr/sbin/keepalived", "-é"], "-é"),
            (&[], ""),
        ];
        for (argv, want) in foreign {
            match running_of(argv) {
                Running::Foreign(o) => assert!(o.starts_with(want), "{argv:?}: {o}"),
                r => panic!("{argv:?}: {r:?}"),
            }
        }
        let o = Observed {
            running: Running::Foreign("--use-file /tmp/x.conf".into()),
            ..healthy()
        };
        let p = problems(&o);
        assert!(
            p[0].contains("keepalived runs with \"--use-file /tmp/x.conf\""),
            "{p:?}"
        );
    }

    #[test]
    fn wait_returns_as_soon_as_healthy() {
        let mut looks = vec![
            healthy(),
            Observed {
                vrrp: Vrrp::None,
                ..healthy()
            },
        ];
        let mut slept = Vec::new();
        let r = wait(
            Duration::from_secs(60),
            POLL,
            || looks.pop().unwrap(),
            |d| slept.push(d),
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(slept, [POLL]);
    }

    #[test]
    fn wait_gives_up_with_the_last_problems_in_one_line() {
        let mut n = 0;
        let r = wait(
            Duration::from_millis(30),
            Duration::from_millis(10),
            || {
                n += 1;
                Observed {
                    vrrp: Vrrp::State(if n == 1 { "BACKUP" } else { "FAULT" }.into()),
                    keepalived: UnitState::Not("inactive".into()),
                    ..healthy()
                }
            },
            std::thread::sleep,
        );
        let e = r.unwrap_err();
        assert!(e.starts_with("unhealthy after 0 s: "), "{e}");
        assert!(
            e.contains("keepalived.service is inactive; VRRP state is FAULT"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(n >= 2);
        // No wait: one look.
        let mut looks = 0;
        let r = wait(
            Duration::ZERO,
            POLL,
            || {
                looks += 1;
                Observed {
                    conf: Conf::Missing,
                    ..healthy()
                }
            },
            |_| panic!("slept"),
        );
        assert_eq!(looks, 1);
        assert_eq!(
            r.unwrap_err(),
            "unhealthy: /etc/keepalived/keepalived.conf is missing"
        );
    }
}
