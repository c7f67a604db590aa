//! Directories a build process makes for itself and removes when done (`OUTPUT/.axoha-build-PID`,
//! `CACHE/.rootfs-….tree.tmp-PID`, `CACHE/.build-….tmp-PID`): one killed with SIGKILL leaves
//! its directory behind, and the next build removes it once that process is gone.

use std::path::Path;

/// Removes the entries of `dir` whose name starts with `prefix` and carries, after the last
/// `marker`, the PID (digits, then optionally `.suffix`) of a process that no longer runs.
pub fn remove(dir: &Path, prefix: &str, marker: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let Some(pid) = pid_after(&name, marker) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `….MARKER1234.suffix` -> `1234`.
fn pid_after<'a>(name: &'a str, marker: &str) -> Option<&'a str> {
    let (_, rest) = name.rsplit_once(marker)?;
    let pid = rest.split('.').next()?;
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_gone_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let mk = |name: String| {
            let p = dir.path().join(name);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let dead = mk(".rootfs-debian-12-x.tree.tmp-999999999".into());
        let dead_suffixed = mk(".rootfs-almalinux-10-x.tree.tmp-999999999.dnf-work".into());
        let alive = mk(format!(".rootfs-debian-12-x.tree.tmp-{me}"));
        let entry = mk("rootfs-debian-12-x.tree".into());
        let other_prefix = mk(".build-debian-12-x.tmp-999999999".into());
        let no_pid = mk(".rootfs-debian-12-x.tree.tmp-".into());
        remove(dir.path(), ".rootfs-", ".tmp-");
        assert!(!dead.exists() && !dead_suffixed.exists());
        assert!(alive.exists() && entry.exists() && other_prefix.exists() && no_pid.exists());
    }

    #[test]
    fn work_directories_are_named_by_their_pid_alone() {
        assert_eq!(pid_after(".axoha-build-42", ".axoha-build-"), Some("42"));
        assert_eq!(pid_after(".axoha-build-x", ".axoha-build-"), None);
    }
}
