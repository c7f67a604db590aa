//! Which peers this node hears on which heartbeat path: VRRP adverts received per interface.
//!
//! A raw socket of IP protocol 112 gets a copy of every VRRP packet the kernel delivers (after
//! the firewall), beside keepalived's own; one socket per interface (`SO_BINDTODEVICE`) tells
//! the paths apart. Only a master advertises, so a backup hears the master on each working
//! path and a master hears nobody. Listening is the I/O edge; [`parse_advert`] is pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::libc;

use crate::types::{InterfaceName, Vrid};

const IPPROTO_VRRP: libc::c_int = 112;

/// One advert: who sent it on which interface, with which priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub interface: InterfaceName,
    pub from: IpAddr,
    pub priority: u8,
}

/// The VRID and priority of a VRRP packet (RFC 3768/5798: version/type, VRID, priority), or
/// `None` for anything that is not an advertisement.
pub fn parse_vrrp(vrrp: &[u8]) -> Option<(u8, u8)> {
    let (&vers_type, &vrid, &priority) = (vrrp.first()?, vrrp.get(1)?, vrrp.get(2)?);
    let advert = vers_type & 0x0f == 1 && matches!(vers_type >> 4, 2 | 3);
    advert.then_some((vrid, priority))
}

/// An IPv4 raw socket reads the IP header too: the source is at bytes 12-15, the VRRP packet
/// starts after IHL 32-bit words.
pub fn parse_ipv4_packet(packet: &[u8]) -> Option<(Ipv4Addr, u8, u8)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    let (vrid, priority) = parse_vrrp(packet.get(ihl..)?)?;
    Some((Ipv4Addr::from(src), vrid, priority))
}

/// A raw VRRP socket bound to one interface.
struct Listener {
    fd: OwnedFd,
    interface: InterfaceName,
    v6: bool,
}

impl Listener {
    #[allow(unsafe_code)]
    fn open(interface: &InterfaceName, v6: bool) -> Result<Listener> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain syscalls; the descriptor is owned by `fd` from here on.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                IPPROTO_VRRP,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error())
                .context("opening a raw VRRP socket (needs root or CAP_NET_RAW)");
        }
        // SAFETY: `raw` is the descriptor socket() just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = interface.as_str().as_bytes();
        // SAFETY: `name` is alive for the call and its length is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("binding a raw VRRP socket to {interface}"));
        }
        Ok(Listener {
            fd,
            interface: interface.clone(),
            v6,
        })
    }

    /// Reads every packet waiting; adverts of `vrid` are appended to `out`.
    #[allow(unsafe_code)]
    fn drain(&self, vrid: u8, out: &mut Vec<Advert>) {
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: sockaddr_storage is plain data; all zeros is a valid value.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are alive for the call, their sizes passed with them.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_storage).cast(),
                    &mut len,
                )
            };
            let Ok(n) = usize::try_from(n) else { return };
            let packet = &buf[..n];
            let parsed = if self.v6 {
                // An IPv6 raw socket reads the VRRP packet only; the source is the peer address.
                // SAFETY: an AF_INET6 socket's recvfrom fills a sockaddr_in6, which fits in
                // sockaddr_storage (aligned for any address family).
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&from as *const libc::sockaddr_storage).cast()) };
                parse_vrrp(packet)
                    .map(|(v, p)| (IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)), v, p))
            } else {
                parse_ipv4_packet(packet).map(|(a, v, p)| (IpAddr::V4(a), v, p))
            };
            if let Some((from, _, priority)) = parsed.filter(|(_, v, _)| *v == vrid) {
                out.push(Advert {
                    interface: self.interface.clone(),
                    from,
                    priority,
                });
            }
        }
    }
}

/// Listens on `interfaces` for `window` and returns the adverts of `vrid` received.
pub fn listen(
    interfaces: &[&InterfaceName],
    v6: bool,
    vrid: Vrid,
    window: Duration,
) -> Result<Vec<Advert>> {
    let vrid = u8::try_from(vrid.get()).context("VRID out of range")?;
    let listeners = interfaces
        .iter()
        .map(|i| Listener::open(i, v6))
        .collect::<Result<Vec<_>>>()?;
    let deadline = Instant::now() + window;
    let mut adverts = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<nix::poll::PollFd> = listeners
            .iter()
            .map(|l| nix::poll::PollFd::new(l.fd.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("poll on the raw VRRP sockets: {e}"),
        }
        for l in &listeners {
            l.drain(vrid, &mut adverts);
        }
    }
    Ok(adverts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vrid_and_priority_of_adverts_only() {
        assert_eq!(parse_vrrp(&[0x31, 51, 254, 1]), Some((51, 254)));
        assert_eq!(parse_vrrp(&[0x21, 7, 100]), Some((7, 100)));
        assert_eq!(parse_vrrp(&[0x32, 51, 254]), None, "not an advert");
        assert_eq!(parse_vrrp(&[0x41, 51, 254]), None, "no such version");
        assert_eq!(parse_vrrp(&[0x31, 51]), None, "short");
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0, 192, 0, 2, 10, 192, 0, 2, 11,
        ];
        ip.extend([0x31, 51, 254, 1, 0, 20, 0, 0]);
        assert_eq!(
            parse_ipv4_packet(&ip),
            Some((Ipv4Addr::new(192, 0, 2, 10), 51, 254))
        );
        assert_eq!(parse_ipv4_packet(&ip[..18]), None);
    }
}
