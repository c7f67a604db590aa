//! A minimal DHCPv4 client (RFC 2131/2132): DISCOVER, OFFER, REQUEST, ACK, nothing else.
//! The PXE installer needs one lease for a few minutes, first boot one for the seconds it
//! takes to ask the OpenStack metadata service, so there is no renewal or release.
//!
//! The installer asks as a PXE client ([`Identity::PxeClient`]): a proxy DHCP server (dnsmasq
//! `dhcp-range=...,proxy` beside a site DHCP server that knows nothing of PXE) answers only
//! PXE clients, with an offer that has no address but names the PXE server. The address then
//! comes from the site server's offer, the boot server from the proxy's answer.
//!
//! Packets go over an ordinary UDP socket on port 68, bound to the interface with
//! SO_BINDTODEVICE and allowed to broadcast: Linux routes a limited broadcast out of the bound
//! device even before it has an address, and we set the BOOTP broadcast flag so the server's
//! replies come back as broadcasts the socket receives (no raw packet socket needed).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const MAGIC: [u8; 4] = [99, 130, 83, 99];
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

/// How long a PXE client keeps listening after its ACK for a proxy DHCP answer that has not
/// come yet (a proxy answers the DISCOVER; it is normally there before the site's ACK).
const PROXY_GRACE: Duration = Duration::from_secs(1);

/// Who the client says it is in its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// An ordinary client (first boot asking for the metadata service's lease).
    Plain,
    /// A UEFI x86-64 PXE client (vendor class `PXEClient:Arch:00007:UNDI:003016`, client
    /// architecture 7, RFC 4578), as the firmware that booted the installer was: proxy DHCP
    /// servers answer only these, and only with the architecture option present.
    PxeClient,
}

/// Option 60 of a PXE client: the class, the architecture (7: EFI x86-64) and UNDI 3.16.
const PXE_VENDOR_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003016";

/// What a server offered or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub msg_type: u8,
    pub xid: u32,
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    /// Option 54: the server that answered.
    pub server_id: Option<Ipv4Addr>,
    /// BOOTP `siaddr`: the next server (TFTP), when set.
    pub next_server: Option<Ipv4Addr>,
    /// Option 66, the TFTP server name (an address, for us).
    pub tftp_server: Option<String>,
    /// Option 121 (RFC 3442), classless static routes: (destination, prefix, router; the
    /// unspecified router means on-link). Neutron sends 169.254.169.254/32 this way.
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// The PXE server a proxy DHCP server named: in a proxy's own reply (no address, vendor
    /// class `PXEClient`) its next server, else its server identifier; in a lease, the one
    /// from the proxy reply that came with it.
    pub pxe_server: Option<Ipv4Addr>,
}

/// How to reach an address from a lease's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Gateway(Ipv4Addr),
    OnLink,
}

impl Lease {
    /// Where `tftp:///path` goes: the PXE server a proxy DHCP server named (it answers PXE
    /// clients only, so it is the install network's PXE server on purpose; the site server's
    /// next-server may be anything, dnsmasq sets its own address), then next-server, then
    /// option 66, then the DHCP server.
    pub fn boot_server(&self) -> Option<Ipv4Addr> {
        self.pxe_server
            .or(self.next_server)
            .or_else(|| self.tftp_server.as_deref().and_then(|s| s.parse().ok()))
            .or(self.server_id)
    }

    /// A proxy DHCP answer: boot information for a PXE client, no address.
    fn is_proxy(&self) -> bool {
        self.address.is_unspecified() && self.pxe_server.is_some()
    }

    /// The route to `dst`: with option 121 its longest match (RFC 3442: the router option is
    /// then ignored), else the router, else on-link.
    pub fn route_to(&self, dst: Ipv4Addr) -> Via {
        if !self.routes.is_empty() {
            let mask = |p: u8| u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            return self
                .routes
                .iter()
                .filter(|(net, p, _)| u32::from(dst) & mask(*p) == u32::from(*net) & mask(*p))
                .max_by_key(|(_, p, _)| *p)
                .map_or(Via::OnLink, |(_, _, gw)| {
                    if gw.is_unspecified() {
                        Via::OnLink
                    } else {
                        Via::Gateway(*gw)
                    }
                });
        }
        self.router.map_or(Via::OnLink, Via::Gateway)
    }
}

/// Option 121's routes (RFC 3442): width, the destination's significant octets, the router.
/// Malformed data ends the list where it stops making sense.
fn classless_routes(data: &[u8]) -> Vec<(Ipv4Addr, u8, Ipv4Addr)> {
    let mut routes = Vec::new();
    let mut rest = data;
    while let Some((&width, tail)) = rest.split_first() {
        if width > 32 {
            break;
        }
        let n = usize::from(width).div_ceil(8);
        if tail.len() < n + 4 {
            break;
        }
        let mut dst = [0u8; 4];
        dst[..n].copy_from_slice(&tail[..n]);
        let gw = Ipv4Addr::new(tail[n], tail[n + 1], tail[n + 2], tail[n + 3]);
        routes.push((Ipv4Addr::from(dst), width, gw));
        rest = &tail[n + 4..];
    }
    routes
}

/// A BOOTREQUEST: DISCOVER (no `requested`) or REQUEST (with the offered address and server).
pub fn request(
    msg_type: u8,
    xid: u32,
    mac: [u8; 6],
    requested: Option<(Ipv4Addr, Ipv4Addr)>,
    identity: Identity,
) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[10..12].copy_from_slice(&0x8000u16.to_be_bytes()); // broadcast replies, please
    p[28..34].copy_from_slice(&mac);
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&[53, 1, msg_type]);
    // Client identifier: hardware type + MAC, as most clients send.
    p.extend_from_slice(&[61, 7, 1]);
    p.extend_from_slice(&mac);
    if let Some((addr, server)) = requested {
        p.extend_from_slice(&[50, 4]);
        p.extend_from_slice(&addr.octets());
        p.extend_from_slice(&[54, 4]);
        p.extend_from_slice(&server.octets());
    }
    if identity == Identity::PxeClient {
        p.extend_from_slice(&[60, PXE_VENDOR_CLASS.len() as u8]);
        p.extend_from_slice(PXE_VENDOR_CLASS);
        // Client system architecture (RFC 4578): 7, EFI x86-64; network interface: UNDI 3.16.
        p.extend_from_slice(&[93, 2, 0, 7, 94, 3, 1, 3, 16]);
    }
    // Parameter request list: netmask, router, TFTP server name, bootfile, classless routes.
    p.extend_from_slice(&[55, 5, 1, 3, 66, 67, 121]);
    p.push(255);
    // Some relays drop BOOTP messages shorter than the historical 300 bytes.
    if p.len() < 300 {
        p.resize(300, 0);
    }
    p
}

/// Parses a BOOTREPLY for our `xid` and MAC; `None` for anything else on the wire.
pub fn parse_reply(p: &[u8], xid: u32, mac: [u8; 6]) -> Option<Lease> {
    if p.len() < 240 || p[0] != 2 || p[236..240] != MAGIC {
        return None;
    }
    if u32::from_be_bytes(p[4..8].try_into().ok()?) != xid || p[28..34] != mac {
        return None;
    }
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let mut lease = Lease {
        msg_type: 0,
        xid,
        address: ip(&p[16..20]),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: None,
        server_id: None,
        next_server: Some(ip(&p[20..24])).filter(|a| !a.is_unspecified()),
        tftp_server: None,
        routes: Vec::new(),
        pxe_server: None,
    };
    let mut pxe_vendor = false;
    // Option 121 may come in several pieces, to be joined (RFC 3396).
    let mut classless = Vec::new();
    let mut i = 240;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = *p.get(i + 1)? as usize;
        let v = p.get(i + 2..i + 2 + len)?;
        match (code, len) {
            (53, 1) => lease.msg_type = v[0],
            (1, 4) => lease.netmask = ip(v),
            (3, l) if l >= 4 => lease.router = Some(ip(v)),
            (54, 4) => lease.server_id = Some(ip(v)),
            (121, _) => classless.extend_from_slice(v),
            (60, _) => pxe_vendor = v.starts_with(b"PXEClient"),
            (66, _) => {
                lease.tftp_server =
                    Some(String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
            }
            _ => {}
        }
        i += 2 + len;
    }
    lease.routes = classless_routes(&classless);
    if pxe_vendor && lease.address.is_unspecified() {
        lease.pxe_server = lease.next_server.or(lease.server_id);
    }
    (lease.msg_type != 0).then_some(lease)
}

/// Runs DISCOVER/OFFER/REQUEST/ACK on `ifname` as `identity`; retries with backoff for
/// `total`. A PXE client's lease carries the PXE server of a proxy DHCP answer, if one came.
pub fn obtain(ifname: &str, mac: [u8; 6], identity: Identity, total: Duration) -> Result<Lease> {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))
        .context("binding UDP port 68")?;
    sock.set_broadcast(true)?;
    bind_to_device(&sock, ifname)?;
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let started = Instant::now();
    let mut attempt = 0u32;
    // The xid only needs to differ between our own attempts and other clients.
    let seed = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ std::process::id();
    while started.elapsed() < total {
        attempt += 1;
        let xid = seed.wrapping_add(attempt);
        let mut rx = Exchange {
            sock: &sock,
            xid,
            mac,
            proxy: None,
        };
        // Backing off, but never past `total` (first boot tries one link after another).
        let wait = Duration::from_secs(u64::from(attempt.min(4)) * 2)
            .min(total.saturating_sub(started.elapsed()));
        sock.send_to(&request(DISCOVER, xid, mac, None, identity), bcast)
            .context("sending DHCPDISCOVER")?;
        let Some(offer) = rx.receive(OFFER, wait)? else {
            continue;
        };
        let server = offer
            .server_id
            .context("DHCPOFFER without a server identifier")?;
        sock.send_to(
            &request(REQUEST, xid, mac, Some((offer.address, server)), identity),
            bcast,
        )
        .context("sending DHCPREQUEST")?;
        let Some(mut ack) = rx.receive(ACK, wait)? else {
            continue;
        };
        // Some servers put siaddr only in the OFFER.
        ack.next_server = ack.next_server.or(offer.next_server);
        ack.tftp_server = ack.tftp_server.or(offer.tftp_server);
        if identity == Identity::PxeClient && rx.proxy.is_none() {
            rx.receive(0, PROXY_GRACE)?;
        }
        ack.pxe_server = rx.proxy;
        return Ok(ack);
    }
    bail!("no DHCP lease on {ifname} after {total:?} ({attempt} attempts)")
}

/// The replies to one transaction: the awaited OFFER or ACK, and on the way any proxy DHCP
/// answer (which comes as an OFFER without an address, so is never taken for a lease).
struct Exchange<'a> {
    sock: &'a UdpSocket,
    xid: u32,
    mac: [u8; 6],
    proxy: Option<Ipv4Addr>,
}

impl Exchange<'_> {
    /// Waits for a reply of type `want` (a NAK restarts the exchange; `want` 0 only listens
    /// for proxy answers until `wait` is over or one came).
    fn receive(&mut self, want: u8, wait: Duration) -> Result<Option<Lease>> {
        let until = Instant::now() + wait;
        let mut buf = [0u8; 1500];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(10))))?;
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e).context("receiving DHCP replies"),
            };
            match parse_reply(&buf[..n], self.xid, self.mac) {
                Some(l) if l.is_proxy() => {
                    self.proxy = self.proxy.or(l.pxe_server);
                    if want == 0 {
                        return Ok(None);
                    }
                }
                Some(l) if l.msg_type == NAK => return Ok(None),
                // An answer that is no lease (a proxy's for another class of client).
                Some(l) if l.address.is_unspecified() => {}
                Some(l) if l.msg_type == want => return Ok(Some(l)),
                _ => {}
            }
        }
        Ok(None)
    }
}

pub fn bind_to_device(sock: &UdpSocket, ifname: &str) -> Result<()> {
    use std::os::fd::AsFd;
    nix::sys::socket::setsockopt(
        &sock.as_fd(),
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )
    .with_context(|| format!("SO_BINDTODEVICE {ifname}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x0a, 0, 0x0a];

    /// A reply as a server would send it, built from a request.
    fn reply(req: &[u8], msg_type: u8) -> Vec<u8> {
        let mut p = req[..240].to_vec();
        p[0] = 2;
        p[16..20].copy_from_slice(&[192, 0, 2, 15]);
        p[20..24].copy_from_slice(&[192, 0, 2, 2]);
        p.extend_from_slice(&[53, 1, msg_type, 1, 4, 255, 255, 255, 0]);
        p.extend_from_slice(&[3, 4, 192, 0, 2, 2, 54, 4, 192, 0, 2, 2]);
        p.extend_from_slice(&[0, 66, 9]);
        p.extend_from_slice(b"192.0.2.3");
        p.push(255);
        p
    }

    #[test]
    fn discover_layout() {
        let p = request(DISCOVER, 0x01020304, MAC, None, Identity::Plain);
        assert_eq!(p.len(), 300);
        assert_eq!(&p[0..3], &[1, 1, 6]);
        assert_eq!(&p[4..8], &[1, 2, 3, 4]);
        assert_eq!(&p[10..12], &[0x80, 0]);
        assert_eq!(&p[28..34], &MAC);
        assert_eq!(&p[236..243], &[99, 130, 83, 99, 53, 1, DISCOVER]);
    }

    #[test]
    fn request_carries_address_and_server() {
        let a = Ipv4Addr::new(192, 0, 2, 15);
        let s = Ipv4Addr::new(192, 0, 2, 2);
        let p = request(REQUEST, 7, MAC, Some((a, s)), Identity::Plain);
        let opts = &p[240..];
        assert!(opts.windows(6).any(|w| w == [50, 4, 192, 0, 2, 15]));
        assert!(opts.windows(6).any(|w| w == [54, 4, 192, 0, 2, 2]));
    }

    #[test]
    fn parses_an_offer() {
        let req = request(DISCOVER, 42, MAC, None, Identity::Plain);
        let l = parse_reply(&reply(&req, OFFER), 42, MAC).unwrap();
        assert_eq!(l.msg_type, OFFER);
        assert_eq!(l.address, Ipv4Addr::new(192, 0, 2, 15));
        assert_eq!(l.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(l.router, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(l.tftp_server.as_deref(), Some("192.0.2.3"));
        assert_eq!(l.boot_server(), Some(Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn ignores_other_transactions_and_garbage() {
        let req = request(DISCOVER, 42, MAC, None, Identity::Plain);
        let r = reply(&req, OFFER);
        assert!(parse_reply(&r, 43, MAC).is_none());
        assert!(parse_reply(&r, 42, [0; 6]).is_none());
        assert!(parse_reply(&r[..100], 42, MAC).is_none());
        let mut truncated = r.clone();
        truncated.truncate(245); // option length runs past the end
        truncated[244] = 200;
        assert!(parse_reply(&truncated, 42, MAC).is_none());
    }

    #[test]
    fn classless_routes_win_over_the_router() {
        let req = request(DISCOVER, 42, MAC, None, Identity::Plain);
        let mut r = reply(&req, ACK);
        r.pop();
        // 169.254.169.254/32 via 192.0.2.1, 0.0.0.0/0 via 192.0.2.2, 198.51.100.0/24 on-link.
        r.extend_from_slice(&[121, 22, 32, 169, 254, 169, 254, 192, 0, 2, 1]);
        r.extend_from_slice(&[0, 192, 0, 2, 2, 24, 198, 51, 100, 0, 0, 0, 0]);
        r.push(255);
        let l = parse_reply(&r, 42, MAC).unwrap();
        assert_eq!(l.routes.len(), 3, "{:?}", l.routes);
        let gw = |a, b, c, d| Via::Gateway(Ipv4Addr::new(a, b, c, d));
        assert_eq!(
            l.route_to(Ipv4Addr::new(169, 254, 169, 254)),
            gw(192, 0, 2, 1)
        );
        assert_eq!(l.route_to(Ipv4Addr::new(203, 0, 113, 1)), gw(192, 0, 2, 2));
        assert_eq!(l.route_to(Ipv4Addr::new(198, 51, 100, 7)), Via::OnLink);
        let plain = parse_reply(&reply(&req, ACK), 42, MAC).unwrap();
        assert_eq!(
            plain.route_to(Ipv4Addr::new(169, 254, 169, 254)),
            gw(192, 0, 2, 2)
        );
        assert!(classless_routes(&[33, 1, 2, 3, 4, 5, 6, 7, 8]).is_empty());
        assert!(classless_routes(&[24, 1, 2]).is_empty());
    }

    #[test]
    fn a_pxe_client_says_so_with_its_architecture() {
        let p = request(DISCOVER, 42, MAC, None, Identity::PxeClient);
        let opts = &p[240..];
        let class = b"PXEClient:Arch:00007:UNDI:003016";
        assert!(opts.windows(class.len()).any(|w| w == class));
        assert!(opts.windows(4).any(|w| w == [93, 2, 0, 7]));
        let plain = request(DISCOVER, 42, MAC, None, Identity::Plain);
        assert!(!plain.windows(9).any(|w| w == b"PXEClient"));
    }

    /// dnsmasq's proxy answer to a UEFI PXE client: no address, siaddr and server identifier
    /// its own, vendor class PXEClient. It names the boot server, and wins over the site's.
    #[test]
    fn a_proxy_answer_names_the_pxe_server() {
        let req = request(DISCOVER, 42, MAC, None, Identity::PxeClient);
        let mut p = req[..240].to_vec();
        p[0] = 2;
        p[20..24].copy_from_slice(&[192, 0, 2, 5]);
        p.extend_from_slice(&[53, 1, OFFER, 54, 4, 192, 0, 2, 5, 60, 9]);
        p.extend_from_slice(b"PXEClient");
        p.push(255);
        let proxy = parse_reply(&p, 42, MAC).unwrap();
        assert!(proxy.is_proxy());
        assert_eq!(proxy.pxe_server, Some(Ipv4Addr::new(192, 0, 2, 5)));
        // Without siaddr, the server identifier.
        p[20..24].copy_from_slice(&[0; 4]);
        let proxy = parse_reply(&p, 42, MAC).unwrap();
        assert_eq!(proxy.pxe_server, Some(Ipv4Addr::new(192, 0, 2, 5)));
        // The site's lease (next-server 192.0.2.2) with the proxy's answer.
        let mut lease = parse_reply(&reply(&req, ACK), 42, MAC).unwrap();
        assert!(!lease.is_proxy() && lease.pxe_server.is_none());
        lease.pxe_server = proxy.pxe_server;
        assert_eq!(lease.boot_server(), Some(Ipv4Addr::new(192, 0, 2, 5)));
        // An address offer that happens to say PXEClient is a lease, not a proxy answer.
        let mut full = reply(&req, OFFER);
        full.pop();
        full.extend_from_slice(&[60, 9]);
        full.extend_from_slice(b"PXEClient");
        full.push(255);
        let l = parse_reply(&full, 42, MAC).unwrap();
        assert!(!l.is_proxy() && l.pxe_server.is_none());
    }

    #[test]
    fn boot_server_falls_back_to_option_66_then_server_id() {
        let req = request(DISCOVER, 42, MAC, None, Identity::Plain);
        let mut r = reply(&req, ACK);
        r[20..24].copy_from_slice(&[0, 0, 0, 0]);
        let l = parse_reply(&r, 42, MAC).unwrap();
        assert_eq!(l.boot_server(), Some(Ipv4Addr::new(192, 0, 2, 3)));
    }
}
