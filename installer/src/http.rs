//! Plain HTTP/1.1 GET with Content-Length (what any static file server sends). No TLS, no
//! DNS (the host is an IP address), no chunked encoding: the sha256 check is the integrity.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::receive::{Budget, Receiver};

/// Status code and Content-Length from a response head (pure).
pub fn parse_head(head: &str) -> Result<(u16, Option<u64>)> {
    let mut lines = head.lines();
    let status = lines.next().context("empty HTTP response")?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad HTTP status line {status:?}"))?;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            let n: u64 = v.parse().with_context(|| format!("Content-Length {v:?}"))?;
            if length.is_some_and(|l| l != n) {
                bail!("two different Content-Length headers");
            }
            length = Some(n);
        }
        if k == "transfer-encoding" && !v.eq_ignore_ascii_case("identity") {
            bail!(
                "HTTP Transfer-Encoding {v:?} is not supported: serve the file with Content-Length"
            );
        }
    }
    Ok((code, length))
}

/// A response head line longer than this is refused (servers send a few dozen bytes).
const MAX_LINE: usize = 8 << 10;
/// The whole head, likewise.
const MAX_HEAD: usize = 64 << 10;

/// Reads the response head up to its blank line, each line and the whole head capped.
pub fn read_head(r: &mut impl BufRead) -> Result<String> {
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        r.by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("reading the HTTP response head")?;
        if line.is_empty() {
            bail!("the server closed the connection inside the HTTP response head");
        }
        if !line.ends_with(b"\n") {
            if line.len() > MAX_LINE {
                bail!("an HTTP response head line is longer than {MAX_LINE} bytes");
            }
            bail!("the server closed the connection inside the HTTP response head");
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok(head);
        }
        head.push_str(&String::from_utf8_lossy(&line));
        if head.len() > MAX_HEAD {
            bail!("the HTTP response head is longer than {MAX_HEAD} bytes");
        }
    }
}

/// A socket whose every read waits no longer than the fetch's deadline allows (a server
/// trickling one byte at a time cannot keep the installer forever).
struct Deadlined<'a> {
    stream: TcpStream,
    budget: Budget,
    what: &'a str,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self
            .budget
            .left(self.what)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e.to_string()))?;
        self.stream
            .set_read_timeout(Some(left.min(Duration::from_secs(30))))?;
        self.stream.read(buf)
    }
}

pub fn get(host: &str, port: u16, path: &str, rx: &mut Receiver) -> Result<()> {
    let url = format!("http://{host}:{port}{path}");
    let addr: std::net::IpAddr = host
        .parse()
        .with_context(|| format!("{host:?}: the installer has no DNS; use an IP address"))?;
    let connect = rx.budget().left(&url)?.min(Duration::from_secs(10));
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), connect)
        .with_context(|| format!("connecting to {host}:{port}"))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: axoha-install\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::with_capacity(
        1 << 16,
        Deadlined {
            stream: s,
            budget: rx.budget(),
            what: &url,
        },
    );
    let head = read_head(&mut r).with_context(|| url.clone())?;
    let (code, length) = parse_head(&head).with_context(|| url.clone())?;
    if code != 200 {
        bail!("{url}: HTTP status {code}");
    }
    if let Some(len) = length {
        rx.announce(len).with_context(|| url.clone())?;
    }
    let mut buf = vec![0u8; 1 << 16];
    // Stop at Content-Length rather than waiting for the close: a server may keep the
    // connection open despite `Connection: close`.
    while length.is_none_or(|len| rx.received() < len) {
        let want = length.map_or(buf.len(), |len| {
            buf.len()
                .min(usize::try_from(len - rx.received()).unwrap_or(usize::MAX))
        });
        let n = r
            .read(&mut buf[..want])
            .with_context(|| format!("{url}: reading the body"))?;
        if n == 0 {
            break;
        }
        rx.push(&buf[..n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_head, read_head};

    #[test]
    fn heads() {
        assert_eq!(
            parse_head("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n").unwrap(),
            (200, Some(42))
        );
        assert_eq!(
            parse_head("HTTP/1.0 404 Not Found\r\n").unwrap(),
            (404, None)
        );
        assert!(parse_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n").is_err());
        assert!(parse_head("garbage").is_err());
        assert!(
            parse_head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n").is_err()
        );
        assert!(parse_head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n").is_err());
        assert!(
            parse_head("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n").is_err()
        );
    }

    #[test]
    fn head_lines_and_heads_are_capped() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let mut r = std::io::Cursor::new(&ok[..]);
        assert_eq!(
            read_head(&mut r).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
        );
        let long_line = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(super::MAX_LINE)
        );
        let err = read_head(&mut std::io::Cursor::new(long_line.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: y\r\n".repeat(20_000));
        let err = read_head(&mut std::io::Cursor::new(many.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("head is longer"), "{err}");
        let cut = b"HTTP/1.1 200 OK\r\nContent-Le";
        assert!(read_head(&mut std::io::Cursor::new(&cut[..])).is_err());
    }
}
