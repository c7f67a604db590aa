//! Runs the built `axorouter` stand-in on loopback and talks to it.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Kills the child by PID if the test did not stop it, so no stand-in outlives a failed test.
struct Running {
    child: Child,
    stderr: BufReader<ChildStderr>,
}

impl Running {
    /// Starts `axorouter` with `args` and `env`, and waits for its "listening" line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> (Self, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_axorouter"));
        command
            .args(args)
            .env_remove("AXOROUTER_LISTEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn axorouter");
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut running = Running { child, stderr };
        let mut line = String::new();
        running.stderr.read_line(&mut line).expect("read stderr");
        (running, line)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// Sends `signal` to the child's PID and waits (bounded) for it to exit.
    #[allow(unsafe_code)]
    fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        unsafe extern "C" {
            #[allow(unsafe_code)]
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: plain kill(2) on our own, not yet reaped, child.
        assert_eq!(unsafe { kill(self.pid(), signal) }, 0, "kill -{signal}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "axorouter ignored signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port that was free a moment ago: bind port 0, note the port, release it.
fn free_loopback_addr() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    probe.local_addr().expect("local addr")
}

fn ask(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    reply
}

const SIGTERM: i32 = 15;

#[test]
fn answers_ok_and_exits_zero_on_sigterm() {
    let addr = free_loopback_addr();
    let (mut axorouter, line) = Running::start(&["--listen", &addr.to_string()], &[]);
    assert_eq!(line, format!("axorouter stand-in listening on {addr}\n"));

    // Every connection gets the line, then the server closes it.
    for _ in 0..3 {
        assert_eq!(ask(addr), "axorouter-standin OK\n");
    }

    let status = axorouter.signal_and_wait(SIGTERM);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must be a clean exit: {status}"
    );
}

#[test]
fn listen_address_from_environment() {
    let addr = free_loopback_addr();
    let (_axorouter, line) = Running::start(&[], &[("AXOROUTER_LISTEN", &addr.to_string())]);
    assert_eq!(line, format!("axorouter stand-in listening on {addr}\n"));
    assert_eq!(ask(addr), "axorouter-standin OK\n");
}

#[test]
fn rejects_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_axorouter"))
        .arg("--bogus")
        .output()
        .expect("run axorouter");
    assert_eq!(output.status.code(), Some(2));
}
