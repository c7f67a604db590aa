//! Bringing up the NIC and giving it the DHCP lease's address and default route, with the
//! classic SIOCSIF*/SIOCADDRT ioctls: a handful of fixed-size structs, no netlink library.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[repr(C)]
struct IfReqAddr {
    name: [u8; libc::IFNAMSIZ],
    addr: libc::sockaddr_in,
    _pad: [u8; 8],
}

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ifname_bytes(ifname: &str) -> Result<[u8; libc::IFNAMSIZ]> {
    let mut n = [0u8; libc::IFNAMSIZ];
    if ifname.is_empty() || ifname.len() >= n.len() {
        bail!("bad interface name {ifname:?}");
    }
    n[..ifname.len()].copy_from_slice(ifname.as_bytes());
    Ok(n)
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    }
}

#[allow(unsafe_code)]
fn as_sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = sockaddr(a);
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; the kernel reads sin_family first.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn control_socket() -> Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("opening a control socket")
}

#[allow(unsafe_code)]
fn ioctl<T>(fd: &OwnedFd, req: libc::c_ulong, arg: &mut T, what: &str) -> Result<()> {
    // SAFETY: `arg` is the repr(C) struct this request expects, alive for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg as *mut T) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_owned());
    }
    Ok(())
}

pub fn set_up(ifname: &str) -> Result<()> {
    let fd = control_socket()?;
    let mut r = IfReqFlags {
        name: ifname_bytes(ifname)?,
        flags: 0,
        _pad: [0; 22],
    };
    ioctl(&fd, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
    r.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(
        &fd,
        libc::SIOCSIFFLAGS,
        &mut r,
        &format!("bringing {ifname} up"),
    )
}

#[allow(unsafe_code)]
pub fn configure(
    ifname: &str,
    addr: Ipv4Addr,
    mask: Ipv4Addr,
    router: Option<Ipv4Addr>,
) -> Result<()> {
    let fd = control_socket()?;
    let name = ifname_bytes(ifname)?;
    for (req, a, what) in [
        (libc::SIOCSIFADDR, addr, "setting the address"),
        (libc::SIOCSIFNETMASK, mask, "setting the netmask"),
    ] {
        let mut r = IfReqAddr {
            name,
            addr: sockaddr(a),
            _pad: [0; 8],
        };
        ioctl(&fd, req, &mut r, what)?;
    }
    if let Some(gw) = router {
        // SAFETY: rtentry is plain data; zero is a valid "unset" for every field.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = as_sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = as_sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = as_sockaddr(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        if let Err(e) = ioctl(&fd, libc::SIOCADDRT, &mut rt, "adding the default route") {
            // Same-subnet servers still work; say so instead of failing.
            crate::console::say(&format!(
                "{e:#} (continuing: the boot server may be on-link)"
            ));
        }
    }
    Ok(())
}

/// The Ethernet interface with MAC `want`, else the first one (not lo), waiting for the
/// driver to create it.
pub fn first_nic(wait: Duration, want: Option<[u8; 6]>) -> Result<(String, [u8; 6])> {
    let started = Instant::now();
    loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            let t = std::fs::read_to_string(format!("/sys/class/net/{n}/type")).unwrap_or_default();
            let mac =
                std::fs::read_to_string(format!("/sys/class/net/{n}/address")).unwrap_or_default();
            if t.trim() == "1" {
                if let Some(m) = parse_mac(mac.trim()).filter(|m| want.is_none_or(|w| w == *m)) {
                    return Ok((n, m));
                }
            }
        }
        if started.elapsed() > wait {
            match want {
                Some(w) => bail!(
                    "no network interface with BOOTIF's MAC {} appeared in {wait:?}",
                    mac_string(w)
                ),
                None => bail!(
                    "no network interface appeared in {wait:?} (is its driver in the initramfs?)"
                ),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        let m = super::parse_mac("52:54:00:0A:00:0a").unwrap();
        assert_eq!(super::mac_string(m), "52:54:00:0a:00:0a");
        assert!(super::parse_mac("52:54:00").is_none());
        assert!(super::ifname_bytes("an-interface-name-too-long").is_err());
    }
}
