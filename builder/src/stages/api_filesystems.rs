//! `/proc`, `/sys` and `/dev` inside the image tree while dnf and dracut run there, as
//! AlmaLinux's own image builds have them: the kernel's and other packages' scriptlets, and
//! dracut, read them (without them dracut cannot even redirect to /dev/null).
//!
//! The mounts exist only in a private mount namespace of the one child process, made between
//! fork and exec: the build host never sees them, and the kernel removes them when the last
//! process of that namespace exits, whatever happens to dnf, dracut or axoha-image (an error,
//! a panic, SIGKILL). There is nothing to unmount, so nothing can stay mounted, and removing
//! the work directory afterwards can never reach the host's /dev through a bind mount.
//!
//! Each is a plain, non-recursive bind: `/dev` without the host's `/dev/pts` and `/dev/shm`,
//! and `/sys` without its submounts, read-only: in particular without `/sys/fs/selinux`, so a
//! policy package's scriptlet on an SELinux build host sees SELinux disabled in the tree and
//! never loads the image's policy into the host's kernel.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// The filesystems and whether the tree gets them read-only.
const API_FILESYSTEMS: [(&str, bool); 3] = [("proc", false), ("sys", true), ("dev", false)];

/// Makes `cmd` run with the host's `/proc`, `/sys` (read-only) and `/dev` bound into `tree`,
/// in its own mount namespace (see the module comment). Needs root, as dnf --installroot does.
#[allow(unsafe_code)]
pub fn bind_into(cmd: &mut Command, tree: &Path) -> Result<()> {
    let mut binds: Vec<(CString, CString, bool)> = Vec::new();
    for (name, read_only) in API_FILESYSTEMS {
        let target = tree.join(name);
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {} for the bind mount", target.display()))?;
        binds.push((
            CString::new(format!("/{name}")).expect("no NUL"),
            CString::new(target.as_os_str().as_bytes())
                .with_context(|| format!("{}: a path without NUL", target.display()))?,
            read_only,
        ));
    }
    let none: Option<&CStr> = None;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes system calls on strings prepared above and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            Errno::result(nix::libc::unshare(nix::libc::CLONE_NEWNS))?;
            // Private first: on a host whose / is shared (systemd's default), mounts made in
            // the new namespace would otherwise propagate back to the host's.
            mount(
                none,
                c"/",
                none,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                none,
            )?;
            for (source, target, read_only) in &binds {
                mount(
                    Some(source.as_c_str()),
                    target.as_c_str(),
                    none,
                    MsFlags::MS_BIND,
                    none,
                )?;
                if *read_only {
                    mount(
                        none,
                        target.as_c_str(),
                        none,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        none,
                    )?;
                }
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs as root only (the mounts need it); elsewhere there is nothing to check.
    #[test]
    fn the_child_sees_them_and_the_host_never_does() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tree = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(
            "test -c \"$1/dev/null\" && test -e \"$1/proc/self/mountinfo\" && \
             test -d \"$1/sys/kernel\" && ! touch \"$1/sys/axoha-test\" 2>/dev/null",
        );
        cmd.arg("sh").arg(tree.path());
        bind_into(&mut cmd, tree.path()).unwrap();
        let status = cmd.status().unwrap();
        assert!(
            status.success(),
            "the child did not see /dev, /proc, /sys (ro)"
        );
        // Nothing is mounted in this process's namespace: the directories are empty.
        for name in ["proc", "sys", "dev"] {
            let entries = std::fs::read_dir(tree.path().join(name)).unwrap().count();
            assert_eq!(entries, 0, "{name} is still mounted on the host");
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(&tree.path().display().to_string()),
            "{mountinfo}"
        );
    }
}
