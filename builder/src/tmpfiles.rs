//! `[[files]]` in a tmpfiles.d directory: systemd-tmpfiles runs every line as root at each
//! boot and may create, truncate, remove, replace or re-own the file it names. A line may
//! touch the operator's paths, never the appliance's: its path (or, for a glob or specifier,
//! the directory before the first one) must not be claimed (`own_files::claimed`), nor hold
//! anything claimed below it (`R /var/lib` would remove the first-boot stamp).

use anyhow::{bail, Result};

use crate::image_path::ImagePath;
use crate::own_files::{claim_roots, claimed};

/// Where systemd-tmpfiles reads its configuration (tmpfiles.d(5); `/run` is claimed whole).
const DIRS: [&str; 3] = [
    "/etc/tmpfiles.d",
    "/usr/local/lib/tmpfiles.d",
    "/usr/lib/tmpfiles.d",
];

/// Characters that make a tmpfiles path a pattern (globs) or expand it (`%` specifiers).
const SPECIAL: [char; 4] = ['*', '?', '[', '%'];

/// Whether `path` is a tmpfiles.d configuration file.
pub fn is_config(path: &ImagePath) -> bool {
    DIRS.iter().any(|d| path.parent() == *d) && path.file_name().ends_with(".conf")
}

/// Refuses the first line of `contents` (the tmpfiles.d file at `path`) that touches the
/// appliance, naming the line and why.
pub fn check(path: &ImagePath, contents: &str, homes: &[String]) -> Result<()> {
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("");
        let fixed = match target.find(SPECIAL) {
            Some(i) => target[..i].rsplit_once('/').map_or("", |(d, _)| d),
            None => target,
        };
        let why = match fixed.parse::<ImagePath>() {
            Err(_) => Some(format!("its path {target:?} is not an absolute path")),
            Ok(p) => claimed(&p, homes)
                // A directory whose entries systemd would read (a drop-in directory).
                .or_else(|| {
                    let entry = format!("{}/x.conf", p.as_str()).parse().ok()?;
                    claimed(&entry, homes)
                })
                .or_else(|| {
                    let keys = homes.iter().map(|h| format!("{h}/.ssh/authorized_keys"));
                    claim_roots()
                        .into_iter()
                        .chain(keys)
                        .find(|r| {
                            r.parse::<ImagePath>()
                                .is_ok_and(|r| r.is_within(p.as_str()))
                        })
                        .map(|r| format!("{} holds {r}, which the appliance owns", p.as_str()))
                }),
        };
        if let Some(why) = why {
            bail!(
                "files: path {:?} line {}: systemd-tmpfiles would apply {line:?} as root at \
                 every boot: {why}",
                path.as_str(),
                n + 1
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(contents: &str) -> Result<()> {
        check(
            &"/etc/tmpfiles.d/site.conf".parse().unwrap(),
            contents,
            &["/home/ops".into()],
        )
    }

    #[test]
    fn lines_that_touch_the_appliance_are_refused() {
        for line in [
            "r /var/lib/axoha/firstboot.done",
            "R /var/lib - - - -",
            "R /var",
            "L+ /etc/keepalived/keepalived.conf - - - - /tmp/evil.conf",
            "f+ /etc/default/keepalived 0644 root root - DAEMON_ARGS=--use-file=/tmp/x",
            "d /etc/systemd/system/axoha-.service.d",
            "r /etc/systemd/system/*",
            "R /var/lib/axoha*",
            "z /usr/bin/axoha-firstboot 4755",
            "r /%C/axoha",
            "R /home/ops",
            "r /",
            "e /",
            "w relative - - - - x",
        ] {
            let err = match run(line) {
                Ok(()) => panic!("{line} passed"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                err.contains("line 1") && err.contains("tmpfiles"),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn the_operators_own_paths_pass() {
        run(
            "# comment\n\nd /var/lib/site 0750 root root -\nf /etc/site.conf 0644 - - - x\n\
             e /var/tmp/site-* - - - 10d\nL /etc/motd - - - - /usr/share/site/motd\n",
        )
        .unwrap();
        assert!(is_config(&"/etc/tmpfiles.d/x.conf".parse().unwrap()));
        assert!(!is_config(&"/etc/tmpfiles.d/x.txt".parse().unwrap()));
    }
}
