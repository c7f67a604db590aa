//! VMs booted with `axoha-image boot` for the image and update tests: a loopback-only network
//! namespace for their socket networks, the VM itself (killed by PID on drop), its console,
//! SSH into it, and the VRRP state it last printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::console::Console;
use crate::demo::sh;

/// Under TCG a boot takes one to three minutes; a hung one gets this long.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

/// A network namespace with only `lo` up: the VMs' loopback socket networks and QEMU's
/// forwards live in it, so their traffic cannot reach the host's own interfaces.
pub struct IsolatedLoopback(pub String);

impl IsolatedLoopback {
    pub fn new(tag: &str) -> IsolatedLoopback {
        let name = format!("axoha-vm-{}-{tag}", std::process::id());
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = IsolatedLoopback(name);
        sh(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
        ns
    }

    /// `cmd` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for IsolatedLoopback {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A VM booted with `axoha-image boot`; dropping it powers it off (SIGTERM to axoha-image,
/// which kills its QEMU by PID and removes the temporary disk).
pub struct Vm {
    pub child: Child,
    pub console: Console,
}

impl Vm {
    pub fn start(
        image_bin: &Path,
        image: &Path,
        log: &Path,
        args: &[String],
        netns: Option<&IsolatedLoopback>,
    ) -> Vm {
        let console = Console::new(log);
        let mut cmd = match netns {
            Some(ns) => ns.command(image_bin),
            None => Command::new(image_bin),
        };
        cmd.arg("boot")
            .arg(image)
            .arg("--serial-log")
            .arg(log)
            .args(args);
        let child = cmd.spawn().expect("axoha-image boot");
        Vm { child, console }
    }

    pub fn console(&self) -> String {
        self.console.text()
    }

    /// Waits until each needle matches a console line; `None` on timeout or exit.
    pub fn wait_for(&mut self, needles: &[&[&str]], timeout: Duration) -> Option<String> {
        self.console
            .wait(&mut self.child, timeout, |text| {
                needles.iter().all(|n| has_line(text, n))
            })
            .map(|(text, _)| text)
    }

    /// Waits until each needle matches a console line printed after byte `from` of the log
    /// (what a later boot of the same VM prints).
    pub fn wait_after(
        &mut self,
        from: usize,
        needles: &[&[&str]],
        timeout: Duration,
    ) -> Option<String> {
        self.console
            .wait(&mut self.child, timeout, |text| {
                let tail = text.get(from..).unwrap_or("");
                needles.iter().all(|n| has_line(tail, n))
            })
            .map(|(text, _)| text.get(from..).unwrap_or("").to_owned())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// True when one line of `text` contains every word of `needle` (systemd colours its status
/// lines, so "Started" and the unit name are separated by escape codes).
pub fn has_line(text: &str, needle: &[&str]) -> bool {
    text.lines().any(|l| needle.iter().all(|w| l.contains(w)))
}

/// The VRRP state a node's console reported last (keepalived's notify script prints
/// `axoha: VRRP axoha is now STATE`); `None` also when the node rebooted since (a firmware or
/// kernel banner after the last state line).
pub fn vrrp_state(console: &str) -> Option<&str> {
    let last_state = console.rfind("VRRP axoha is now ")?;
    let rebooted = ["BdsDxe:", "Linux version "]
        .iter()
        .filter_map(|m| console.rfind(m))
        .any(|at| at > last_state);
    if rebooted {
        return None;
    }
    console[last_state..]
        .strip_prefix("VRRP axoha is now ")?
        .split_whitespace()
        .next()
}

/// Polls `cond` every 250 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// `--karg K` for each argument.
pub fn kargs(list: &[&str]) -> Vec<String> {
    list.iter()
        .flat_map(|k| ["--karg".to_owned(), k.to_string()])
        .collect()
}

/// A free TCP port on this namespace's loopback (the VMs' forwards bind it in theirs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SSH (and scp) to a node as a `[[users]]` user through QEMU's forward of 127.0.0.1:PORT,
/// inside `netns` when the VM runs there.
pub struct Ssh<'a> {
    pub key: PathBuf,
    pub user: String,
    pub port: u16,
    pub netns: Option<&'a IsolatedLoopback>,
}

const SSH_OPTIONS: [&str; 10] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
];

impl Ssh<'_> {
    fn command(&self, program: &str) -> Command {
        match self.netns {
            Some(ns) => ns.command(program),
            None => Command::new(program),
        }
    }

    /// Runs `script` on the node.
    pub fn run(&self, script: &str) -> Output {
        self.command("ssh")
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .args(SSH_OPTIONS)
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(script)
            .output()
            .unwrap()
    }

    /// Runs `script`, which must succeed; returns its stdout.
    pub fn ok(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "ssh {script:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the node lets us in (sshd up, host keys made), up to `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.run("true").status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(3));
        }
        false
    }

    /// Copies `file` to `dest` on the node.
    pub fn copy(&self, file: &Path, dest: &str) {
        sh(self
            .command("scp")
            .arg("-i")
            .arg(&self.key)
            .args(["-P", &self.port.to_string()])
            .args(SSH_OPTIONS)
            .arg(file)
            .arg(format!("{}@127.0.0.1:{dest}", self.user)));
    }
}
