//! The HTTP edge: `axoha-metrics --serve`. std sockets and `httparse`; a slow or
//! stuck client never holds up another: a fixed pool of workers takes connections from a
//! queue, and past a bound on open connections the next one is answered 503 at once,
//! without reading it, each connection has
//! read and write timeouts and one deadline for its whole request head, and one scrape's
//! facts are shared by the scrapes of the same second.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use axoha_firstboot::config::NodeConfig;

use crate::facts::{gather, node_config, FactPaths, Facts};
use crate::{banner, expose, heard};

/// Connections served at once.
pub const WORKERS: usize = 8;
/// Connections waiting for a worker (beyond the ones being answered); beyond that, 503.
pub const QUEUE: usize = 16;
/// Each read and write, and the whole request head, must be done within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a request head that is read.
pub const HEAD_MAX: usize = 8 * 1024;
/// The most a refused connection holds the accepting thread.
const DRAIN: Duration = Duration::from_millis(20);
/// Scrapes within this long of each other share one look at the node.
const FRESH: Duration = Duration::from_secs(1);
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct ServeOptions {
    pub paths: FactPaths,
    /// `None`: every address on the metrics port (`axoha_firstboot::metrics::PORT`).
    pub listen: Option<SocketAddr>,
    /// Also keep the console banner (`banner.rs`) up to date.
    pub banner: bool,
}

struct State {
    paths: FactPaths,
    config: Mutex<Option<NodeConfig>>,
    heard: Mutex<Option<heard::Shared>>,
    last: Mutex<Option<(Instant, String)>>,
    /// What was last logged about unreadable parts (said once, not at every scrape).
    said: Mutex<Vec<String>>,
}

impl State {
    /// The node's config, resolved once it resolves; the heartbeat listener starts then.
    fn config(&self) -> Result<NodeConfig, String> {
        let mut c = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = &*c {
            return Ok(config.clone());
        }
        let config = node_config(&self.paths)?;
        *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = Some(heard::spawn(config.clone()));
        *c = Some(config.clone());
        Ok(config)
    }

    fn facts(&self) -> Facts {
        let config = self.config();
        let heard = self
            .heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| {
                h.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_else(|| Err("listening (the first window has not ended)".into()))
            });
        let facts = gather(&self.paths, config, heard);
        let problems = problems(&facts);
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if *said != problems {
            for p in &problems {
                eprintln!("axoha-metrics: {p}");
            }
            *said = problems;
        }
        facts
    }

    /// One scrape's text, shared by scrapes within [`FRESH`] of it.
    fn scrape(&self) -> Result<String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, text)) = &*last {
            if at.elapsed() < FRESH {
                return Ok(text.clone());
            }
        }
        let text = expose::encode(&self.facts())?;
        *last = Some((Instant::now(), text.clone()));
        Ok(text)
    }
}

/// Each unreadable part of the facts, as a line for the log.
fn problems(f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |part: &str, r: Result<(), &String>| {
        if let Err(e) = r {
            out.push(format!("{part}: {e}"));
        }
    };
    note("config", f.config.as_ref().map(|_| ()));
    note("pair", f.pair.as_ref().map(|_| ()));
    note("health", f.health.as_ref().map(|_| ()));
    note("update", f.update.as_ref().map(|_| ()));
    if let Some(h) = &f.heard {
        note("heartbeat", h.as_ref().map(|_| ()));
    }
    out
}

fn bind(listen: Option<SocketAddr>) -> Result<TcpListener> {
    let port = axoha_firstboot::metrics::PORT;
    match listen {
        Some(a) => TcpListener::bind(a).with_context(|| format!("listening on {a}")),
        // [::] takes IPv4 too (bindv6only is 0 by default); without IPv6, 0.0.0.0.
        None => TcpListener::bind(("::", port))
            .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
            .with_context(|| format!("listening on port {port}")),
    }
}

/// Runs until killed.
pub fn run(opts: ServeOptions) -> Result<()> {
    let listener = bind(opts.listen)?;
    let state = Arc::new(State {
        paths: opts.paths,
        config: Mutex::new(None),
        heard: Mutex::new(None),
        last: Mutex::new(None),
        said: Mutex::new(Vec::new()),
    });
    eprintln!(
        "axoha-metrics: serving http://{}/metrics",
        listener.local_addr().context("the listening address")?
    );
    let (tx, rx) = channel::<TcpStream>();
    let rx = Arc::new(Mutex::new(rx));
    // Connections queued or being answered.
    let open = Arc::new(AtomicUsize::new(0));
    for _ in 0..WORKERS {
        let (rx, state, open) = (rx.clone(), state.clone(), open.clone());
        std::thread::spawn(move || worker(&rx, &state, &open));
    }
    if opts.banner {
        let state = state.clone();
        std::thread::spawn(move || loop {
            let facts = state.facts();
            if let Err(e) = banner::write(&state.paths, &facts) {
                eprintln!("axoha-metrics: the login banner: {e:#}");
            }
            std::thread::sleep(banner::EVERY);
        });
    }
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                // Counted here, not by the channel's room: a connection a worker has taken
                // but not finished still counts against the bound.
                if open.fetch_add(1, Ordering::SeqCst) >= WORKERS + QUEUE {
                    open.fetch_sub(1, Ordering::SeqCst);
                    busy(stream);
                } else if tx.send(stream).is_err() {
                    return Ok(());
                }
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(())
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, state: &State, open: &AtomicUsize) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(stream) = next else { return };
        // A client that goes away mid-answer is its own business.
        let _ = handle(stream, state);
        open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every worker busy and the queue full: say so without waiting for the request. What the
/// client sent within [`DRAIN`] is read and dropped, since closing a socket with unread bytes
/// resets the connection, and a reset may discard the 503 before the client reads it.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(DRAIN));
    let _ = stream.write_all(&response(
        "503 Service Unavailable",
        "text/plain",
        "busy\n",
        false,
    ));
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN));
    let mut sink = [0u8; 1024];
    let mut left = HEAD_MAX;
    while let Ok(n @ 1..) = stream.read(&mut sink) {
        left = left.saturating_sub(n);
        if left == 0 {
            break;
        }
    }
}

/// What a request head asks for: `Some((method, path))`, `None` while incomplete.
pub fn parse_head(head: &[u8]) -> Result<Option<(String, String)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok(Some((
            req.method.unwrap_or_default().to_owned(),
            req.path.unwrap_or_default().to_owned(),
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The status line, headers and body of an answer.
pub fn route(state_text: impl FnOnce() -> Result<String>, method: &str, path: &str) -> Vec<u8> {
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response(
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
            head_only,
        );
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => match state_text() {
            Ok(text) => response("200 OK", CONTENT_TYPE, &text, head_only),
            Err(e) => response(
                "500 Internal Server Error",
                "text/plain",
                &format!("{e:#}\n"),
                head_only,
            ),
        },
        "/" => response(
            "200 OK",
            "text/plain",
            "axoha node metrics: /metrics\n",
            head_only,
        ),
        _ => response("404 Not Found", "text/plain", "not found\n", head_only),
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn handle(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let asked = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || head.len() >= HEAD_MAX {
            return stream.write_all(&response(
                "408 Request Timeout",
                "text/plain",
                "request head too slow or too long\n",
                false,
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // The deadline passed while waiting: said at the top of the loop.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        match parse_head(&head) {
            Ok(Some(asked)) => break asked,
            Ok(None) => {}
            Err(e) => {
                return stream.write_all(&response(
                    "400 Bad Request",
                    "text/plain",
                    &format!("{e}\n"),
                    false,
                ))
            }
        }
    };
    let answer = route(|| state.scrape(), &asked.0, &asked.1);
    stream.write_all(&answer)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_routes() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(("GET".into(), "/metrics".into())))
        );
        assert!(parse_head(b"\x01\x02 / HTTP/1.1\r\n\r\n").is_err());
        let text = |r: Vec<u8>| String::from_utf8(r).unwrap();
        let ok = text(route(|| Ok("a 1\n".into()), "GET", "/metrics"));
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\na 1\n"));
        assert!(ok.contains("Content-Length: 4\r\n"));
        let head = text(route(|| Ok("a 1\n".into()), "HEAD", "/metrics"));
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        assert!(text(route(|| Ok(String::new()), "POST", "/metrics")).contains(" 405 "));
        assert!(text(route(|| Ok(String::new()), "GET", "/etc/passwd")).contains(" 404 "));
    }
}
