//! systemd's own rules for which files configure a system unit (systemd.unit(5), "Unit File
//! Load Path" and the drop-in rules), as a function of the unit's name: does systemd apply
//! this path in the image to unit U? `own_files::claimed` asks it for every unit the
//! appliance depends on, so a `[[files]]` entry cannot reach one of them by a spelling a hand
//! list forgot (`axoha-.service.d/`, `service.d/`, an alias's drop-ins, ...). A unit test
//! checks the rule against systemd itself (`systemd-analyze verify` on a tree of probes).

use crate::image_path::ImagePath;

/// The system unit search path, highest priority first, as `systemd-analyze unit-paths`
/// prints it (systemd 252-257; `/lib/systemd/system` is `/usr/lib/systemd/system` in the
/// image's spelling). The `/run` ones are a tmpfs at boot; the image's `/run` is claimed as a
/// whole anyway.
pub const UNIT_DIRS: [&str; 12] = [
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// Directory suffixes systemd reads for a unit name: drop-ins, and the dependency
/// directories whose entries add units the unit pulls in.
const SUFFIXES: [(&str, &str); 4] = [
    (".d", "a drop-in"),
    (".wants", "a Wants= dependency"),
    (".requires", "a Requires= dependency"),
    (".upholds", "an Upholds= dependency"),
];

/// The names systemd looks up drop-ins under for the unit `unit` (`foo-bar@x.service`):
/// the name itself, its template (`foo-bar@.service`), and each dash prefix
/// (`foo-bar-.service`, `foo-.service`), as `unit_file_find_dirs` walks them.
fn dropin_names(unit: &str) -> Vec<String> {
    let Some((stem, kind)) = unit.rsplit_once('.') else {
        return vec![unit.to_owned()];
    };
    let mut names = vec![unit.to_owned()];
    let prefix = match stem.split_once('@') {
        Some((template, _)) => {
            names.push(format!("{template}@.{kind}"));
            template
        }
        None => stem,
    };
    for (i, _) in prefix.match_indices('-') {
        names.push(format!("{}-.{kind}", &prefix[..i]));
    }
    names
}

/// Why systemd applies `path` to the unit named `unit`, or `None`: the unit file itself (a
/// replacement or mask) in any unit directory, a drop-in of the unit's name, template, dash
/// prefixes or type (`service.d/`), a file in one of its dependency directories, or an
/// enablement link of it (`*.wants/UNIT`).
pub fn applies(path: &ImagePath, unit: &str) -> Option<String> {
    let kind = unit.rsplit_once('.').map(|(_, k)| k)?;
    for dir in UNIT_DIRS {
        if path.parent() == dir && path.file_name() == unit {
            return Some(format!("the unit file of {unit} (a replacement or a mask)"));
        }
        for name in dropin_names(unit).iter().map(String::as_str).chain([kind]) {
            for (suffix, what) in SUFFIXES {
                let holder = format!("{dir}/{name}{suffix}");
                if path.is_within(&holder) && path.as_str() != holder {
                    return Some(format!("{what} of {unit} ({name}{suffix}/ applies to it)"));
                }
            }
        }
        let linked_by = path
            .parent()
            .strip_prefix(dir)
            .and_then(|p| p.strip_prefix('/'));
        let is_dependency_dir = linked_by
            .is_some_and(|d| !d.contains('/') && SUFFIXES[1..].iter().any(|(s, _)| d.ends_with(s)));
        if is_dependency_dir && path.file_name() == unit {
            return Some(format!("the link that enables {unit}"));
        }
    }
    None
}

/// The `EnvironmentFile=` paths of a unit file or drop-in text (the leading `-`, which only
/// makes a missing file no error, dropped); an empty assignment resets the list.
pub fn environment_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in text.lines() {
        let Some(value) = line.trim().strip_prefix("EnvironmentFile=") else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            files.clear();
        } else {
            files.extend(
                value
                    .split_whitespace()
                    .map(|v| v.trim_start_matches('-').to_owned()),
            );
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ImagePath {
        p.parse().unwrap()
    }

    #[test]
    fn names_prefixes_and_templates() {
        assert_eq!(
            dropin_names("axoha-boot-check.service"),
            [
                "axoha-boot-check.service",
                "axoha-.service",
                "axoha-boot-.service"
            ]
        );
        assert_eq!(
            dropin_names("getty@tty1.service"),
            ["getty@tty1.service", "getty@.service"]
        );
        assert_eq!(dropin_names("keepalived.service"), ["keepalived.service"]);
    }

    #[test]
    fn what_applies_to_a_unit() {
        let u = "axoha-firstboot.service";
        for p in [
            "/etc/systemd/system/axoha-firstboot.service",
            "/usr/local/lib/systemd/system/axoha-firstboot.service",
            "/etc/systemd/system.control/axoha-firstboot.service.d/x.conf",
            "/etc/systemd/system/axoha-.service.d/zz.conf",
            "/lib/systemd/system/axoha-.service.d/zz.conf",
            "/etc/systemd/system/service.d/zz.conf",
            "/etc/systemd/system/axoha-firstboot.service.wants/evil.service",
            "/etc/systemd/system/multi-user.target.wants/axoha-firstboot.service",
            "/etc/systemd/system.attached/axoha-firstboot.service.d/x.conf",
        ] {
            assert!(applies(&path(p), u).is_some(), "{p}");
        }
        for p in [
            "/etc/systemd/system/axoha-first-.service.d/zz.conf",
            "/etc/systemd/system/axoha.service.d/zz.conf",
            "/etc/systemd/system/socket.d/zz.conf",
            "/etc/systemd/system/site.service",
            "/etc/systemd/system/service.d",
            "/etc/systemd/system/multi-user.target.wants/site.service",
            "/etc/systemd/system/multi-user.target.d/axoha-firstboot.service",
            "/etc/systemd/user/axoha-firstboot.service",
        ] {
            assert_eq!(applies(&path(p), u), None, "{p}");
        }
    }

    #[test]
    fn environment_files_as_systemd_reads_them() {
        let unit = "[Service]\nEnvironmentFile=-/etc/default/keepalived\n\
                    EnvironmentFile=/etc/a /etc/b\nExecStart=/x\n";
        assert_eq!(
            environment_files(unit),
            ["/etc/default/keepalived", "/etc/a", "/etc/b"]
        );
        assert!(environment_files("EnvironmentFile=/etc/a\nEnvironmentFile=\n").is_empty());
    }

    /// The rule above against systemd's own: every probe drop-in `systemd-analyze verify`
    /// reads for a unit is one `applies` names, and no other. The probes sit in a scratch
    /// tree whose unit directories are passed as `SYSTEMD_UNIT_PATH` (systemd's order).
    #[test]
    fn systemd_reads_exactly_the_drop_ins_applies_names() {
        let units = [
            "axoha-boot-check.service",
            "keepalived.service",
            "systemd-networkd.service",
            "sshd.service",
        ];
        let names = [
            "axoha-boot-check.service.d",
            "axoha-.service.d",
            "axoha-boot-.service.d",
            "axoha-boot-check-.service.d",
            "axoha-boo-.service.d",
            "service.d",
            "socket.d",
            "keepalived.service.d",
            "keepalived-.service.d",
            "systemd-.service.d",
            "systemd-networkd.service.d",
            "sshd.service.d",
            "ssh.service.d",
            "other.service.d",
        ];
        let dirs = [
            "/etc/systemd/system.control",
            "/etc/systemd/system",
            "/usr/local/lib/systemd/system",
            "/usr/lib/systemd/system",
        ];
        let root = tempfile::tempdir().unwrap();
        let mut probes = Vec::new();
        for (d, dir) in dirs.iter().enumerate() {
            for (n, name) in names.iter().enumerate() {
                let key = format!("AxohaProbe{d}x{n}");
                let host = root.path().join(&dir[1..]).join(name);
                std::fs::create_dir_all(&host).unwrap();
                // Distinct file names: a drop-in of one name overrides the same name below it.
                let file = format!("probe-{d}-{n}.conf");
                std::fs::write(host.join(&file), format!("[Service]\n{key}=1\n")).unwrap();
                probes.push((key, path(&format!("{dir}/{name}/{file}"))));
            }
        }
        let search: Vec<String> = dirs
            .iter()
            .map(|d| root.path().join(&d[1..]).display().to_string())
            .collect();
        let lib = root.path().join("usr/lib/systemd/system");
        for unit in units {
            std::fs::write(
                lib.join(unit),
                "[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n",
            )
            .unwrap();
            let out = std::process::Command::new("systemd-analyze")
                .args(["verify", "--man=no", unit])
                .env("SYSTEMD_UNIT_PATH", search.join(":"))
                .env("SYSTEMD_LOG_LEVEL", "warning")
                .output()
                .expect("systemd-analyze (systemd) is needed for this test");
            let said = String::from_utf8_lossy(&out.stderr);
            let mut read_any = false;
            for (key, probe) in &probes {
                let read = said.contains(&format!("Unknown key '{key}'"))
                    || said.contains(&format!("Unknown key name '{key}'"));
                read_any |= read;
                assert_eq!(
                    read,
                    applies(probe, unit).is_some(),
                    "{unit}: systemd {} {}",
                    if read { "reads" } else { "ignores" },
                    probe.as_str()
                );
            }
            assert!(read_any, "{unit}: systemd read no probe at all:\n{said}");
        }
    }

    /// The search path in `UNIT_DIRS` is systemd's own (this host's systemd).
    #[test]
    fn unit_dirs_are_systemds() {
        let out = std::process::Command::new("systemd-analyze")
            .arg("unit-paths")
            .env_remove("SYSTEMD_UNIT_PATH")
            .output()
            .expect("systemd-analyze (systemd) is needed for this test");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let p: ImagePath = line.parse().unwrap();
            assert!(
                UNIT_DIRS.contains(&p.as_str()),
                "{line} is not in UNIT_DIRS"
            );
        }
    }
}
