//! Network namespaces, veth pairs and bridges for the test networks.
//!
//! Every link is created *inside* a namespace (`ip -n NS link add ... peer ... netns OTHER`), so
//! no interface ever appears in the host namespace, not even for an instant. Bridges live in a
//! dedicated "switch" namespace. Deleting a namespace destroys the links in it and, for veths,
//! their peers, so dropping the [`Namespace`] guards is the whole teardown.

use std::process::Command;

use anyhow::{Context, Result};

use crate::run;

/// Prefix of every namespace this crate creates: `axo<pid>-<tag>-<role>`. The PID makes names
/// unique per test process; the tag makes them unique per test within one process.
const PREFIX: &str = "axo";

/// A network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `axo<pid>-<tag>-<role>` with its loopback up.
    pub fn create(tag: &str, role: &str) -> Result<Namespace> {
        let name = format!("{PREFIX}{}-{tag}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))
            .with_context(|| format!("creating network namespace {name}"))?;
        let ns = Namespace { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NS ARGS...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip -n NS ARGS...` as a command, for callers that spawn it (e.g. in parallel).
    pub fn ip_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name).args(args);
        cmd
    }

    /// A command that runs `program` inside this namespace (`ip netns exec` execs it, so the
    /// spawned PID is the program's own PID).
    pub fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Creates a bridge named `name` in this namespace and brings it up. STP stays off (the
    /// default), so ports forward as soon as they are up.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!(
                "warning: cannot delete network namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// Creates a veth pair: `a_if` in `a`, `b_if` in `b`, both up. Created in `a` with the peer
/// placed straight into `b`.
pub fn veth(a: &Namespace, a_if: &str, b: &Namespace, b_if: &str) -> Result<()> {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])
    .with_context(|| format!("veth {}:{a_if} <-> {}:{b_if}", a.name, b.name))?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Enslaves `port` to `bridge`, both in `ns`.
pub fn attach(ns: &Namespace, port: &str, bridge: &str) -> Result<()> {
    ns.ip(&["link", "set", port, "master", bridge])?;
    Ok(())
}

/// Deletes namespaces left by earlier test processes that were killed before their guards ran
/// (`axo<pid>-...` whose PID no longer exists and that no process is in). Only our own prefix,
/// and only empty namespaces: nothing that might belong to someone else is touched.
pub fn remove_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let empty = run(Command::new("ip").args(["netns", "pids", name]))
            .map(|pids| pids.trim().is_empty())
            .unwrap_or(false);
        if empty {
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}
