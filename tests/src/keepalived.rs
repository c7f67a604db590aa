//! One real keepalived daemon per node, run inside the node's namespace.
//!
//! keepalived runs in the foreground (`-n`) so the PID we spawn is its parent process (`ip netns
//! exec` execs it); the VRRP child's PID comes from the per-node `-r` pid file, and is trusted
//! only after checking that its parent is our daemon. That way only processes this harness
//! started are ever signalled. Each daemon gets its own pid files, so several nodes (and several
//! test processes) never see each other as "already running".

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::netns::Namespace;

/// A running keepalived (parent + VRRP child). Dropping it stops it: gracefully first, then by
/// SIGKILL of both processes.
#[derive(Debug)]
pub struct Keepalived {
    child: Child,
    dir: PathBuf,
}

impl Keepalived {
    /// Starts `keepalived -n -l -D -G -P -f CONF -p DIR/keepalived.pid -r DIR/vrrp.pid` in `ns`,
    /// logging to `DIR/keepalived.log` (appended, so restarts keep the history), and waits until
    /// the VRRP child is up.
    ///
    /// `-G` keeps it off syslog (the log file is where failures are read from), `-P` runs only
    /// the VRRP subsystem like the appliance does.
    #[allow(unsafe_code)]
    pub fn start(ns: &Namespace, conf: &Path, dir: &Path) -> Result<Keepalived> {
        fs::create_dir_all(dir)?;
        // A crashed daemon leaves its pid files behind; they must not be mistaken for the new one.
        for f in ["keepalived.pid", "vrrp.pid"] {
            let _ = fs::remove_file(dir.join(f));
        }
        let log_path = dir.join("keepalived.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "===== axoha-tests: starting keepalived =====")?;
        let mut cmd = ns.exec("keepalived");
        cmd.args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If this test process dies without running its guards (SIGKILL, abort), the kernel
        // kills the daemon too instead of leaving it running in a deleted namespace.
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe after fork.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().context("spawning keepalived")?;
        let mut k = Keepalived {
            child,
            dir: dir.to_path_buf(),
        };
        k.wait_vrrp_child(Duration::from_secs(10))?;
        Ok(k)
    }

    /// PID of the keepalived parent process (the one we spawned).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// PID of the VRRP child, read from its pid file and checked to be a child of our parent.
    pub fn vrrp_pid(&self) -> Option<Pid> {
        let text = fs::read_to_string(self.dir.join("vrrp.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (parent_of(pid) == Some(self.pid().as_raw())).then(|| Pid::from_raw(pid))
    }

    /// Whether the parent process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_vrrp_child(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.vrrp_pid().is_some() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("keepalived exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!("keepalived's VRRP child did not start within {timeout:?}");
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Crashes the daemon: SIGKILL to the VRRP child and the parent, so nothing gets to clean up
    /// (the VIP stays configured, like after a real crash).
    ///
    /// The parent is stopped first: killed alone it would make the child exit gracefully (the
    /// child gets a parent-death signal and releases the VIP), and with the child killed first a
    /// running parent would respawn it.
    pub fn crash(&mut self) -> Result<()> {
        let parent = self.pid();
        let vrrp = self.vrrp_pid();
        let _ = kill(parent, Signal::SIGSTOP);
        if let Some(vrrp) = vrrp {
            let _ = kill(vrrp, Signal::SIGKILL);
        }
        let _ = kill(parent, Signal::SIGKILL);
        self.child.wait().context("reaping crashed keepalived")?;
        if let Some(vrrp) = vrrp {
            wait_gone(vrrp, Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Sends SIGTERM (graceful stop: keepalived releases the VIP and sends a priority-0 advert)
    /// without waiting, so a caller can time what follows.
    pub fn terminate(&self) {
        let _ = kill(self.pid(), Signal::SIGTERM);
    }

    /// Graceful stop and wait; falls back to [`Keepalived::crash`] after `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        let vrrp = self.vrrp_pid();
        self.terminate();
        let deadline = Instant::now() + timeout;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.crash()?;
                bail!("keepalived did not stop within {timeout:?} after SIGTERM; killed it");
            }
            sleep(Duration::from_millis(10));
        }
        if let Some(vrrp) = vrrp {
            wait_gone(vrrp, timeout)?;
        }
        Ok(())
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Err(e) = self.stop(Duration::from_secs(5)) {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// Waits until `pid` has exited. The VRRP child is not our child, so we cannot reap it; a zombie
/// (exited, waiting for whoever reaps orphans) counts as gone.
fn wait_gone(pid: Pid, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while kill(pid, None).is_ok() && state_of(pid.as_raw()).is_some_and(|s| s != 'Z') {
        if Instant::now() > deadline {
            bail!("keepalived VRRP child {pid} still exists after {timeout:?}");
        }
        sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The fields of `/proc/PID/stat` after the parenthesised command name (state, ppid, ...).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// Process state letter of `pid` (`R`, `S`, `Z`, ...).
fn state_of(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Parent PID of `pid` (field 4 of `/proc/PID/stat`).
fn parent_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Runs `keepalived -t -f CONF` inside `ns`, where the configured interfaces exist. Returns the
/// exit code and the combined output. keepalived exits 0 only when it reports nothing at all.
pub fn config_test(ns: &Namespace, conf: &Path) -> Result<(i32, String)> {
    let out = ns
        .exec("keepalived")
        .args(["-t", "-f"])
        .arg(conf)
        .output()
        .context("running keepalived -t")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// The last `lines` lines of a log file, or a note that it is missing.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let all: Vec<&str> = s.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}
