//! System-test harness for axoha.
//!
//! The tests run the real `axoha-firstboot` binary and the real keepalived inside network
//! namespaces, so what they prove is what a node does, not what a mock does. Everything lives in
//! namespaces this process creates (the host's network is never touched, and no traffic is sent
//! from the host namespace), uses documentation addresses only, and is torn down by `Drop` guards
//! even when a test panics. Processes are signalled only by the PIDs this process started (or
//! that keepalived wrote for its own child, after checking it is that child).
//!
//! - [`netns`]: namespace guard, veth pairs and bridges.
//! - [`keepalived`]: one keepalived daemon per node, started, crashed, stopped by PID.
//! - [`firstboot`]: locating (building) and running `axoha-firstboot`.
//! - [`console`]: a VM's serial console log, waited on by the image and PXE tests.
//! - [`pxe_net`]: a PXE install network in a namespace: bridges, taps, dnsmasq, a web server.
//! - [`demo`]: release binaries, stand-in package and rootfs cache for the image tests.
//! - [`rpm_repo`]: a local, signed AlmaLinux-shaped repository for the almalinux-10 rootfs.
//! - [`signing`]: the throw-away GPG key those repositories are signed with.
//! - [`vm`]: VMs booted with `axoha-image boot`, their namespace, console, SSH and VRRP state.
//! - [`slots`]: a node's update slots over SSH: root hash, entries, status, apply, blessing.
//! - [`client`]: a client on the public side sending TCP lines and UDP datagrams to the VIP,
//!   and servers on every node recording what arrived where.
//! - [`cluster`]: N nodes wired to an HA bridge and a public bridge, with fault injection and
//!   VIP-holder sampling.

pub mod client;
pub mod cluster;
pub mod console;
pub mod demo;
pub mod firstboot;
pub mod keepalived;
pub mod netns;
pub mod pxe_net;
pub mod rpm_repo;
pub mod signing;
pub mod slots;
pub mod vm;

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `cmd` to completion and returns its stdout; a non-zero exit is an error carrying the
/// command line and its stderr, so a failed `ip` call explains itself in the test output.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with a clear message unless we are root: namespaces, veths and keepalived need it, and
/// an `EPERM` from deep inside `ip` would hide the reason.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the axoha system tests need root (network namespaces, keepalived); run them as root"
        );
    }
    Ok(())
}
