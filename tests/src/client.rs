//! What a client on the public side sees: one TCP line and one UDP datagram to the VIP every
//! 10 ms, and a server on every node recording what arrived where.
//!
//! Every socket lives in a namespace of the cluster: each thread enters its namespace
//! (`setns(CLONE_NEWNET)` on `/run/netns/NAME`, which changes only that thread) before it
//! opens its sockets, so no traffic ever leaves the namespaces and no helper process runs.
//!
//! The client behaves like a simple application: it keeps one TCP connection; a write that
//! fails (the RST a node answers for a connection it does not know) closes it, and the lines
//! not written yet are sent again on the next connection. A line whose write succeeded but
//! that never reached a server is lost silently: that is what [`Window::tcp_lost`] counts.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cluster::{Cluster, VIP};
use crate::netns::Namespace;

pub const UDP_PORT: u16 = 5000;
pub const TCP_PORT: u16 = 5001;
/// The client's address on the public bridge.
pub const CLIENT_IP: &str = "198.51.100.200";
/// One line and one datagram per tick: 100 messages/s each.
pub const TICK: Duration = Duration::from_millis(10);

/// Moves the calling thread into network namespace `name`.
#[allow(unsafe_code)]
fn enter(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let ns = File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: a plain syscall on a descriptor we own; it changes this thread only.
    let rc = unsafe { nix::libc::setns(ns.as_raw_fd(), nix::libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns({path})"));
    }
    Ok(())
}

/// Spawns `f` on a thread inside namespace `ns`.
fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> JoinHandle<Result<T>> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter(&ns)?;
        f()
    })
}

#[derive(Clone, Copy, Debug)]
struct Arrival {
    node: usize,
    seq: u64,
    at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    seq: u64,
    at: Instant,
    /// When the TCP line's write succeeded (`None`: not written yet, or never).
    written: Option<Instant>,
}

#[derive(Default)]
struct Log {
    sent: Vec<Sent>,
    tcp: Vec<Arrival>,
    udp: Vec<Arrival>,
    /// Failed writes and connects: when, and the error kind.
    errors: Vec<(Instant, ErrorKind)>,
}

/// What the client saw between two instants.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// From the window's start to the first TCP line the holder received.
    pub first_line: Option<Duration>,
    /// Lines written successfully that no node ever received.
    pub tcp_lost: usize,
    /// Datagrams sent that no node received.
    pub udp_lost: usize,
    /// From the window's start to the send time of the first datagram from which on every
    /// datagram of the window reached the holder (`None`: the last ones did not).
    pub udp_on_holder: Option<Duration>,
    /// Writes refused with ECONNRESET (a node answered the connection with an RST).
    pub resets: usize,
    /// Lines the client wrote in the window (for scale).
    pub lines: usize,
    /// The longest time between two lines accepted by any node in the window (from the last
    /// one before it): how long the client went without service.
    pub longest_gap: Duration,
}

/// The servers on every node and the client, running until dropped.
pub struct Traffic {
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    // Dropped after the threads stopped (see Drop).
    _client_ns: Namespace,
}

impl Traffic {
    /// Starts a TCP and a UDP server on every node of `c` and the client in a namespace of its
    /// own on the public bridge; returns once the client's first line reached the VIP's holder.
    pub fn start(c: &Cluster) -> Result<Traffic> {
        let client_ns = c.add_client("cl", CLIENT_IP)?;
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for node in 0..c.len() {
            let ns = c.namespace(node).name().to_owned();
            let (log1, stop1) = (log.clone(), stop.clone());
            threads.push(spawn_in(&ns, move || tcp_server(node, &log1, &stop1)));
            let (log2, stop2) = (log.clone(), stop.clone());
            threads.push(spawn_in(&ns, move || udp_server(node, &log2, &stop2)));
        }
        let t = Traffic {
            log: log.clone(),
            stop: stop.clone(),
            threads,
            _client_ns: client_ns,
        };
        // The servers must listen before the first line goes out.
        thread::sleep(Duration::from_millis(100));
        let mut t = t;
        let (log3, stop3) = (log, stop);
        t.threads
            .push(spawn_in(t._client_ns.name(), move || client(&log3, &stop3)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while t.log.lock().expect("log").tcp.is_empty() {
            if Instant::now() > deadline {
                bail!("the client's first line reached no node within 10 s");
            }
            thread::sleep(TICK);
        }
        Ok(t)
    }

    /// What the client saw from `from` to `to` with `holder` holding the VIP at the end. Call
    /// it a few hundred ms after `to`, so lines in flight have arrived.
    pub fn window(&self, from: Instant, to: Instant, holder: usize) -> Window {
        let log = self.log.lock().expect("log");
        window(&log, from, to, holder)
    }

    /// The node that received the most recent datagram.
    pub fn udp_node(&self) -> Option<usize> {
        self.log.lock().expect("log").udp.last().map(|a| a.node)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: traffic thread: {e:#}"),
                Err(_) => eprintln!("warning: a traffic thread panicked"),
            }
        }
    }
}

fn window(log: &Log, from: Instant, to: Instant, holder: usize) -> Window {
    let tcp_at: HashMap<u64, usize> = log.tcp.iter().map(|a| (a.seq, a.node)).collect();
    let udp_at: HashMap<u64, usize> = log.udp.iter().map(|a| (a.seq, a.node)).collect();
    let inside = |t: Instant| t >= from && t <= to;
    let sent: Vec<&Sent> = log.sent.iter().filter(|s| inside(s.at)).collect();
    let written: Vec<&Sent> = log
        .sent
        .iter()
        .filter(|s| s.written.is_some_and(inside))
        .collect();
    let tcp_lost = written
        .iter()
        .filter(|s| !tcp_at.contains_key(&s.seq))
        .count();
    let udp_lost = sent.iter().filter(|s| !udp_at.contains_key(&s.seq)).count();
    let first_line = log
        .tcp
        .iter()
        .find(|a| a.node == holder && a.at >= from)
        .map(|a| a.at - from);
    let udp_on_holder = match sent
        .iter()
        .rposition(|s| udp_at.get(&s.seq) != Some(&holder))
    {
        None => Some(Duration::ZERO),
        Some(i) => sent
            .get(i + 1)
            .map(|s| s.at.saturating_duration_since(from)),
    };
    let resets = log
        .errors
        .iter()
        .filter(|(t, k)| inside(*t) && *k == ErrorKind::ConnectionReset)
        .count();
    // The outage at the window's start counts: from the last line accepted before it.
    let before = log.tcp.iter().map(|a| a.at).filter(|&t| t < from).max();
    let accepted: Vec<Instant> = before
        .into_iter()
        .chain(log.tcp.iter().map(|a| a.at).filter(|&t| inside(t)))
        .collect();
    let longest_gap = accepted
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    Window {
        longest_gap,
        first_line,
        tcp_lost,
        udp_lost,
        udp_on_holder,
        resets,
        lines: written.len(),
    }
}

fn tcp_server(node: usize, log: &Arc<Mutex<Log>>, stop: &Arc<AtomicBool>) -> Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", TCP_PORT)).context("binding the TCP server")?;
    listener.set_nonblocking(true)?;
    let mut readers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let (log, stop) = (log.clone(), stop.clone());
                // A thread spawned here starts in this thread's namespace; it needs none.
                readers.push(thread::spawn(move || read_lines(node, conn, &log, &stop)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e).context("accept"),
        }
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(())
}

fn read_lines(node: usize, conn: TcpStream, log: &Mutex<Log>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                if let Ok(seq) = line.trim().parse() {
                    log.lock().expect("log").tcp.push(Arrival {
                        node,
                        seq,
                        at: Instant::now(),
                    });
                }
                line.clear();
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn udp_server(node: usize, log: &Arc<Mutex<Log>>, stop: &Arc<AtomicBool>) -> Result<()> {
    let socket = UdpSocket::bind(("0.0.0.0", UDP_PORT)).context("binding the UDP server")?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                if let Some(seq) = std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    log.lock().expect("log").udp.push(Arrival {
                        node,
                        seq,
                        at: Instant::now(),
                    });
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("recv"),
        }
    }
    Ok(())
}

fn client(log: &Mutex<Log>, stop: &AtomicBool) -> Result<()> {
    let vip: std::net::IpAddr = VIP.parse().expect("VIP is an address");
    let (udp_to, tcp_to) = (
        SocketAddr::new(vip, UDP_PORT),
        SocketAddr::new(vip, TCP_PORT),
    );
    let udp = UdpSocket::bind(("0.0.0.0", 0)).context("binding the client's UDP socket")?;
    let mut conn: Option<TcpStream> = None;
    let mut pending: VecDeque<u64> = VecDeque::new();
    let start = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        // The datagram may fail with an ICMP-caused error of an earlier one; it is counted lost
        // by its absence at the servers either way.
        let _ = udp.send_to(format!("{seq}\n").as_bytes(), udp_to);
        log.lock().expect("log").sent.push(Sent {
            seq,
            at: now,
            written: None,
        });
        pending.push_back(seq);
        if conn.is_none() {
            match TcpStream::connect_timeout(&tcp_to, Duration::from_millis(30)) {
                Ok(c) => {
                    c.set_nodelay(true)?;
                    conn = Some(c);
                }
                Err(e) => log.lock().expect("log").errors.push((now, e.kind())),
            }
        }
        if let Some(c) = conn.as_mut() {
            while let Some(&s) = pending.front() {
                match c.write_all(format!("{s}\n").as_bytes()) {
                    Ok(()) => {
                        pending.pop_front();
                        let mut l = log.lock().expect("log");
                        let at = Instant::now();
                        // Sequence numbers are the indices of `sent`.
                        if let Some(entry) = l.sent.get_mut(s as usize) {
                            entry.written = Some(at);
                        }
                    }
                    Err(e) => {
                        log.lock()
                            .expect("log")
                            .errors
                            .push((Instant::now(), e.kind()));
                        conn = None;
                        break;
                    }
                }
            }
        }
        seq += 1;
        let next = start + TICK * u32::try_from(seq).unwrap_or(u32::MAX);
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_losses_and_when_the_holder_got_the_client() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sent = (0..6)
            .map(|i| Sent {
                seq: i,
                at: at(10 * i),
                written: Some(at(10 * i)),
            })
            .collect();
        let arrive = |node, seq, ms| Arrival {
            node,
            seq,
            at: at(ms),
        };
        let log = Log {
            sent,
            // Line 2 written but never received; 3.. at node 0.
            tcp: vec![arrive(1, 0, 1), arrive(1, 1, 11), arrive(0, 3, 31)],
            // Datagram 1 lost, 2 still at node 1, 3.. at node 0.
            udp: vec![
                arrive(1, 0, 1),
                arrive(1, 2, 21),
                arrive(0, 3, 31),
                arrive(0, 4, 41),
                arrive(0, 5, 51),
            ],
            errors: vec![(at(30), ErrorKind::ConnectionReset)],
        };
        let w = window(&log, at(0), at(50), 0);
        assert_eq!(
            w.tcp_lost, 3,
            "lines 2, 4, 5 were written but never arrived"
        );
        assert_eq!(w.udp_lost, 1);
        assert_eq!(w.first_line, Some(Duration::from_millis(31)));
        assert_eq!(w.udp_on_holder, Some(Duration::from_millis(30)));
        assert_eq!(w.resets, 1);
        assert_eq!(w.lines, 6);
        assert_eq!(w.longest_gap, Duration::from_millis(20));
    }
}
