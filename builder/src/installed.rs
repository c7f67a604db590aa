//! What a distribution tree has installed: its package list (dpkg's status file or the rpm
//! database) and the AxoRouter package in it. Read by the plan's check after the rootfs
//! stage, by the layer for the manifest, and by `axoha-image rootfs`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};

use crate::plan::Plan;
use crate::profile::Profile;
use crate::tree::Tree;

/// Where AlmaLinux 10's rpm keeps its database, inside the tree.
pub const RPMDB: &str = "/usr/lib/sysimage/rpm";

const DPKG_STATUS: &str = "var/lib/dpkg/status";

/// rpm reading and writing the tree's own database, not the build host's.
pub fn rpm_in(tree: &Path) -> std::process::Command {
    let mut cmd = command("rpm");
    cmd.arg("--root").arg(tree).args(["--dbpath", RPMDB]);
    cmd
}

/// Installed packages and versions, from dpkg's status file or the rpm database.
pub fn package_list(tree: &Tree) -> Result<Vec<(String, String)>> {
    if tree.is_file(DPKG_STATUS) {
        let text = tree.read_to_string(DPKG_STATUS)?;
        let mut out = Vec::new();
        for para in text.split("\n\n") {
            let field = |n: &str| para.lines().find_map(|l| l.strip_prefix(n)).map(str::trim);
            if let (Some(p), Some(v), Some(s)) =
                (field("Package:"), field("Version:"), field("Status:"))
            {
                if s.ends_with(" installed") {
                    out.push((p.to_owned(), v.to_owned()));
                }
            }
        }
        out.sort();
        return Ok(out);
    }
    let out = run(rpm_in(tree.path()).args(["-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n"]))
        .context("listing the image's rpm packages")?;
    let mut list: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect();
    list.sort();
    Ok(list)
}

/// After the rootfs stage: the installed AxoRouter is there, and it is the stand-in exactly
/// when the build is a demo (a repository's package is only known once installed).
pub fn check_axorouter(plan: &Plan, tree: &Tree) -> Result<()> {
    let description = match plan.profile {
        Profile::Debian12 => {
            let status = tree
                .read_to_string(DPKG_STATUS)
                .context("reading the image's dpkg status")?;
            status
                .split("\n\n")
                .find(|p| p.lines().any(|l| l == "Package: axorouter"))
                .map(str::to_owned)
        }
        Profile::Almalinux10 => {
            run(rpm_in(tree.path()).args(["-q", "--qf", "%{SUMMARY} %{DESCRIPTION}", "axorouter"]))
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        }
    };
    let Some(description) = description else {
        bail!("the image has no axorouter package (is it in the AxoRouter repository?)");
    };
    let standin = description.to_lowercase().contains("stand-in");
    match (standin, plan.axorouter.standin) {
        (true, false) => bail!(
            "the installed axorouter is the axoha test stand-in, not the product: pass --demo \
             to build a demo image (its name and manifest say so)"
        ),
        (false, true) => {
            bail!("--demo is only for the stand-in AxoRouter package; the installed one is real")
        }
        _ => Ok(()),
    }
}
