//! Running the external tools the design allows, with errors that say what failed and how to
//! get the tool.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// The Debian package that provides each tool we call, for "not installed" errors.
pub fn debian_package(program: &str) -> &'static str {
    match program {
        "mkfs.ext4" | "debugfs" => "e2fsprogs",
        "mkfs.vfat" => "dosfstools",
        "mcopy" | "mmd" | "mdir" | "mtype" => "mtools",
        "sfdisk" => "fdisk",
        "qemu-img" => "qemu-utils",
        "mmdebstrap" => "mmdebstrap",
        "dnf" => "dnf",
        "rpm" => "rpm",
        "createrepo_c" => "createrepo-c",
        "semodule" | "setfiles" => "policycoreutils",
        "checkmodule" => "checkpolicy",
        "semodule_package" => "semodule-utils",
        "xorriso" => "xorriso",
        "tar" => "tar",
        "zstd" => "zstd",
        "mksquashfs" | "unsquashfs" => "squashfs-tools",
        "veritysetup" => "cryptsetup-bin",
        "systemctl" => "systemd",
        "qemu-system-x86_64" => "qemu-system-x86",
        "objcopy" | "objdump" => "binutils",
        "sbsign" | "sbverify" => "sbsigntool",
        "openssl" => "openssl",
        "virt-fw-vars" => "python3-virt-firmware (bookworm-backports)",
        _ => "(see scripts/install-deps)",
    }
}

/// Fails unless every program is on PATH; names the Debian packages of the missing ones.
pub fn require(programs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if !missing.is_empty() {
        let pkgs: Vec<&str> = missing.iter().map(|p| debian_package(p)).collect();
        bail!(
            "missing tools: {} (Debian packages: {}; `scripts/install-deps image` installs them)",
            missing.join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Runs a command to completion; a non-zero exit is an error carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{shown} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(out)
}

/// First line of `PROGRAM ARG`'s output, for the manifest's tool versions.
pub fn version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "not found".into())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args().take(6) {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if cmd.get_args().count() > 6 {
        s.push_str(" ...");
    }
    s
}

/// Builds a command with a fixed environment for reproducible output.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("LC_ALL", "C.UTF-8").env("TZ", "UTC");
    c
}
