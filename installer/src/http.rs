//! Plain HTTP/1.1 GET with Content-Length (what any static file server sends). No TLS, no
//! DNS (the host is an IP address), no chunked encoding: the sha256 check is the integrity.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

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
            length = Some(v.parse().with_context(|| format!("Content-Length {v:?}"))?);
        }
        if k == "transfer-encoding" && !v.eq_ignore_ascii_case("identity") {
            bail!(
                "HTTP Transfer-Encoding {v:?} is not supported: serve the file with Content-Length"
            );
        }
    }
    Ok((code, length))
}

pub fn get(
    host: &str,
    port: u16,
    path: &str,
    mut sink: impl FnMut(&[u8], Option<u64>) -> Result<()>,
) -> Result<()> {
    let addr: std::net::IpAddr = host
        .parse()
        .with_context(|| format!("{host:?}: the installer has no DNS; use an IP address"))?;
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(10))
        .with_context(|| format!("connecting to {host}:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: axoha-install\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let (code, length) = parse_head(&head)?;
    if code != 200 {
        bail!("http://{host}:{port}{path}: HTTP status {code}");
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    // Stop at Content-Length rather than waiting for the close: a server may keep the
    // connection open despite `Connection: close`.
    while length.is_none_or(|len| got < len) {
        let want = length.map_or(buf.len(), |len| buf.len().min((len - got) as usize));
        let n = r.read(&mut buf[..want]).context("reading the HTTP body")?;
        if n == 0 {
            break;
        }
        got += n as u64;
        sink(&buf[..n], length)?;
    }
    if let Some(len) = length {
        if got != len {
            bail!("http://{host}:{port}{path}: got {got} of {len} bytes");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_head;

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
    }
}
