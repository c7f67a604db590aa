//! A minimal TFTP client: read requests only (RFC 1350), with the blksize and tsize options
//! (RFC 2347/2348/2349) so large images move in 1428-byte blocks and we know the size first.
//! Block numbers wrap at 65535 (what servers such as dnsmasq and QEMU's do for big files).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::receive::Receiver;

/// Fits one Ethernet frame with IP and UDP headers and leaves room for VLAN tags.
pub const BLKSIZE: usize = 1428;
const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Data {
        block: u16,
        data: &'a [u8],
    },
    Error {
        code: u16,
        message: String,
    },
    /// Option acknowledgement: (blksize, tsize) when the server accepted them.
    Oack {
        blksize: Option<usize>,
        tsize: Option<u64>,
    },
}

pub fn rrq(path: &str) -> Vec<u8> {
    let mut p = RRQ.to_be_bytes().to_vec();
    for field in [path, "octet", "blksize", &BLKSIZE.to_string(), "tsize", "0"] {
        p.extend_from_slice(field.as_bytes());
        p.push(0);
    }
    p
}

pub fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, ACK as u8, b[0], b[1]]
}

pub fn parse(p: &[u8]) -> Option<Packet<'_>> {
    if p.len() < 4 {
        return None;
    }
    let op = u16::from_be_bytes([p[0], p[1]]);
    let num = u16::from_be_bytes([p[2], p[3]]);
    match op {
        DATA => Some(Packet::Data {
            block: num,
            data: &p[4..],
        }),
        ERROR => Some(Packet::Error {
            code: num,
            message: String::from_utf8_lossy(&p[4..])
                .trim_end_matches('\0')
                .to_owned(),
        }),
        OACK => {
            let mut fields = p[2..].split(|b| *b == 0).map(String::from_utf8_lossy);
            let (mut blksize, mut tsize) = (None, None);
            while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
                match k.to_ascii_lowercase().as_str() {
                    "blksize" => blksize = v.parse().ok(),
                    "tsize" => tsize = v.parse().ok(),
                    _ => {}
                }
            }
            Some(Packet::Oack { blksize, tsize })
        }
        _ => None,
    }
}

/// The block size the server chose: what we asked for or less, and at least RFC 2348's 8
/// (a block size of 0 would never end the transfer).
pub fn accepted_blksize(offered: Option<usize>) -> Result<usize> {
    match offered {
        None => Ok(512),
        Some(b) if (8..=BLKSIZE).contains(&b) => Ok(b),
        Some(b) => bail!("the TFTP server chose blksize {b}; we asked for 8 to {BLKSIZE}"),
    }
}

/// Fetches `path` from `server` into `rx`, within its size and time budget.
pub fn get(server: SocketAddrV4, path: &str, ifname: &str, rx: &mut Receiver) -> Result<()> {
    let what = format!("tftp://{server}/{path}");
    let sock = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket for TFTP")?;
    crate::dhcp::bind_to_device(&sock, ifname)?;
    let request = rrq(path);
    sock.send_to(&request, server)
        .with_context(|| format!("sending the TFTP request to {server}"))?;
    // The server answers from a new port (its transfer ID); everything after goes there.
    let mut peer: Option<SocketAddr> = None;
    let mut blksize = 512;
    let mut expect: u16 = 1;
    let mut last_sent = request;
    let mut retries = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = rx.budget().left(&what)?;
        sock.set_read_timeout(Some(left.min(Duration::from_secs(3))))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                retries += 1;
                if retries > 5 {
                    bail!("{what}: timed out waiting for block {expect}");
                }
                let to = peer.unwrap_or(SocketAddr::V4(server));
                sock.send_to(&last_sent, to)?;
                continue;
            }
            Err(e) => return Err(e).context("receiving TFTP data"),
        };
        if from.ip() != std::net::IpAddr::V4(*server.ip()) || peer.is_some_and(|p| p != from) {
            continue; // not our transfer
        }
        peer = Some(from);
        retries = 0;
        match parse(&buf[..n]) {
            Some(Packet::Oack {
                blksize: b,
                tsize: t,
            }) if expect == 1 => {
                blksize = accepted_blksize(b).with_context(|| what.clone())?;
                if let Some(t) = t {
                    rx.announce(t).with_context(|| what.clone())?;
                }
                last_sent = ack(0).to_vec();
                sock.send_to(&last_sent, from)?;
            }
            Some(Packet::Data { block, data }) if block == expect => {
                if data.len() > blksize {
                    bail!(
                        "{what}: block {block} has {} bytes, blksize is {blksize}",
                        data.len()
                    );
                }
                rx.push(data)?;
                last_sent = ack(block).to_vec();
                sock.send_to(&last_sent, from)?;
                if data.len() < blksize {
                    return Ok(());
                }
                expect = expect.wrapping_add(1);
            }
            Some(Packet::Error { code, message }) => {
                bail!("TFTP server {server} refused {path:?}: error {code}: {message}")
            }
            _ => {} // a duplicate block: our ACK is already on its way
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_request_with_options() {
        assert_eq!(
            rrq("nodes/x"),
            b"\0\x01nodes/x\0octet\0blksize\x001428\0tsize\x000\0".to_vec()
        );
    }

    #[test]
    fn parses_data_error_and_oack() {
        assert_eq!(
            parse(b"\0\x03\x01\x02abc"),
            Some(Packet::Data {
                block: 0x0102,
                data: b"abc"
            })
        );
        assert_eq!(
            parse(b"\0\x05\0\x01File not found\0"),
            Some(Packet::Error {
                code: 1,
                message: "File not found".into()
            })
        );
        assert_eq!(
            parse(b"\0\x06blksize\x001428\0TSIZE\x00123456\0"),
            Some(Packet::Oack {
                blksize: Some(1428),
                tsize: Some(123456)
            })
        );
        assert_eq!(parse(b"\0\x09xx"), None);
        assert_eq!(parse(b"\0"), None);
    }

    #[test]
    fn the_servers_blksize_is_checked() {
        assert_eq!(accepted_blksize(None).unwrap(), 512);
        assert_eq!(accepted_blksize(Some(1428)).unwrap(), 1428);
        assert_eq!(accepted_blksize(Some(8)).unwrap(), 8);
        for bad in [0, 7, 1429, 65464, usize::MAX] {
            let err = accepted_blksize(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn ack_bytes() {
        assert_eq!(ack(0xfffe), [0, 4, 0xff, 0xfe]);
    }
}
