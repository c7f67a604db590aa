//! The one HTTP request first boot makes: an HTTP/1.0 GET of a small document from an address
//! literal (no DNS, no TLS, no redirects). HTTP/1.0 so that the server sends the body as is and
//! closes the connection (no chunked encoding to undo); the whole answer is read with a cap, so
//! a server can neither make us allocate more than [`HEAD_MAX`] + the caller's cap nor hold us
//! past the deadline.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The most a response head may hold (Nova's is a few hundred bytes).
const HEAD_MAX: usize = 8 * 1024;

/// `http://ADDRESS[:PORT]/PATH`, the address a literal (IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub addr: SocketAddr,
    /// The `Host` header: the address as written in the URL.
    host: String,
    path: String,
}

impl FromStr for Url {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Url> {
        let rest = s
            .strip_prefix("http://")
            .with_context(|| format!("{s:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.bytes().any(|b| !b.is_ascii_graphic()) {
            bail!("{s:?}: the path must be printable ASCII without spaces");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().ok()),
            _ => (authority, Some(80)),
        };
        let port = port.with_context(|| format!("{s:?}: bad port"))?;
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("{s:?}: the host must be an IP address (no DNS)"))?;
        Ok(Url {
            addr: SocketAddr::new(ip, port),
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host, self.path)
    }
}

/// Why a GET gave no document.
#[derive(Debug)]
pub enum Failure {
    /// No connection (refused, no route, no answer in time): worth trying again.
    Unreachable(std::io::Error),
    /// The server answered, with a status other than 200.
    Status(u16),
    /// The answer itself is wrong (too large, cut short, not HTTP).
    Bad(anyhow::Error),
}

/// The body of a 200 answer to `GET url`, at most `cap` bytes, before `deadline`.
pub fn get(url: &Url, cap: u64, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    let mut stream = TcpStream::connect_timeout(&url.addr, left().map_err(Failure::Unreachable)?)
        .map_err(Failure::Unreachable)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: axoha-firstboot\r\n\r\n",
        url.path, url.host
    );
    stream
        .set_write_timeout(Some(left().map_err(Failure::Unreachable)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(Failure::Unreachable)?;
    let limit = HEAD_MAX as u64 + cap + 1;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let timeout = left()
            .map_err(|e| Failure::Bad(anyhow::Error::new(e).context("reading the answer")))?;
        stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| Failure::Bad(e.into()))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Bad(
                    anyhow::Error::new(e).context("reading the answer"),
                ))
            }
        };
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.len() as u64 >= limit {
            break;
        }
    }
    parse_answer(&answer, cap)
}

/// The body of a complete answer (pure).
fn parse_answer(answer: &[u8], cap: u64) -> Result<Vec<u8>, Failure> {
    let bad = |m: String| Failure::Bad(anyhow::anyhow!(m));
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(bad(if answer.len() > HEAD_MAX {
            format!("the response head is larger than {HEAD_MAX} bytes")
        } else {
            "the answer ended inside the response head".into()
        }));
    };
    if end > HEAD_MAX {
        return Err(bad(format!(
            "the response head is larger than {HEAD_MAX} bytes"
        )));
    }
    let head = std::str::from_utf8(&answer[..end])
        .map_err(|_| bad("the response head is not text".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("not an HTTP answer: {:?}", status_line)))?;
    if status != 200 {
        return Err(Failure::Status(status));
    }
    let body = &answer[end + 4..];
    if body.len() as u64 > cap {
        return Err(bad(format!("the document is larger than {cap} bytes")));
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            let length: u64 = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {:?}", value.trim())))?;
            if length > cap {
                return Err(bad(format!("the document is larger than {cap} bytes")));
            }
            if length != body.len() as u64 {
                return Err(bad(format!(
                    "the answer was cut short ({} of {length} bytes)",
                    body.len()
                )));
            }
        }
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_address_literals() {
        let u: Url = "http://169.254.169.254/openstack/latest/meta_data.json"
            .parse()
            .unwrap();
        assert_eq!(u.addr, "169.254.169.254:80".parse().unwrap());
        assert_eq!(u.path, "/openstack/latest/meta_data.json");
        assert!(
            "http://[fe80::a9fe:a9fe%2]:8080/x".parse::<Url>().is_err(),
            "a zone needs an interface: not supported"
        );
        let u: Url = "http://[2001:db8::1]:8080/x".parse().unwrap();
        assert_eq!(u.addr.port(), 8080);
        for bad in [
            "https://169.254.169.254/",
            "http://metadata.local/",
            "http://169.254.169.254:99999/",
            "http://169.254.169.254/a b",
        ] {
            assert!(bad.parse::<Url>().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_checked() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_answer(ok, 10).unwrap(), b"{}");
        assert!(matches!(
            parse_answer(b"HTTP/1.1 404 Not Found\r\n\r\n", 10),
            Err(Failure::Status(404))
        ));
        for (answer, why) in [
            (
                &b"HTTP/1.0 200 OK\r\n\r\n0123456789ab"[..],
                "larger than 10",
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\n{}",
                "larger than 10",
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n{}",
                "cut short",
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n{}",
                "Content-Length",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
            (b"HTTP/1.0 200 OK\r\n", "inside the response head"),
        ] {
            match parse_answer(answer, 10) {
                Err(Failure::Bad(e)) => assert!(e.to_string().contains(why), "{e}"),
                other => panic!("{answer:?}: {other:?}"),
            }
        }
    }
}
