//! `[[users]]` of the appliance definition: login accounts that authenticate with SSH keys
//! only. No password is ever baked into a shared image (shadow field `*`: no password login,
//! but not "locked", which sshd would refuse too).
//!
//! Accounts are written into the tree's passwd/group/shadow/gshadow directly, with the next
//! free UID from 1000 and the shadow "last change" day taken from SOURCE_DATE_EPOCH, so a
//! rebuild gives the same bytes (`useradd --root` stamps today's date).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name; `root` only adds keys to root's account.
    pub name: String,
    /// OpenSSH public keys, one per entry (`authorized_keys` lines).
    pub ssh_keys: Vec<String>,
    /// Member of the distribution's administrators group (`sudo` / `wheel`).
    #[serde(default)]
    pub sudo: bool,
}

const KEY_TYPES: [&str; 8] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

impl User {
    /// Checks name and keys; errors name the user and the offending value.
    pub fn check(&self) -> Result<()> {
        let n = &self.name;
        let mut chars = n.chars();
        let ok = n.len() <= 32
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !ok {
            bail!("users: name {n:?}: 1-32 of a-z, 0-9, _ and -, starting with a letter or _");
        }
        if self.ssh_keys.is_empty() {
            bail!("users: {n}: ssh_keys is empty (accounts log in with SSH keys only)");
        }
        for key in &self.ssh_keys {
            check_key(key).with_context(|| format!("users: {n}: ssh_keys entry {key:?}"))?;
        }
        Ok(())
    }
}

/// One `authorized_keys` line without options: `TYPE BASE64 [COMMENT]`, nothing that could
/// start a second line or smuggle in options such as `command=`.
fn check_key(key: &str) -> Result<()> {
    if key.chars().any(|c| c.is_control()) {
        bail!("contains a control character (a key is one line)");
    }
    let mut fields = key.split_whitespace();
    let kind = fields.next().unwrap_or("");
    if !KEY_TYPES.contains(&kind) {
        bail!(
            "starts with {kind:?}, not a public key type ({})",
            KEY_TYPES.join(", ")
        );
    }
    let body = fields.next().unwrap_or("");
    let b64 = body.len() >= 16
        && body.len().is_multiple_of(4)
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !b64 {
        bail!("its second field is not the base64 key data");
    }
    Ok(())
}

/// The administrators group of the tree's distribution, when it has one.
fn admin_group(group: &str) -> Option<&'static str> {
    ["wheel", "sudo"]
        .into_iter()
        .find(|g| group.lines().any(|l| l.starts_with(&format!("{g}:"))))
}

/// Next free id >= 1000 in a colon file (passwd or group), and above every id in `taken`.
fn next_id(files: &[&str], taken: &[u32]) -> u32 {
    let mut id = 1000;
    let used = |id: u32| {
        taken.contains(&id)
            || files.iter().any(|f| {
                f.lines()
                    .any(|l| l.split(':').nth(2).and_then(|x| x.parse().ok()) == Some(id))
            })
    };
    while used(id) {
        id += 1;
    }
    id
}

/// The edited account files, pure: (passwd, group, shadow, gshadow, [(name, uid, home)]).
#[derive(Debug)]
pub struct Accounts {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
    pub homes: Vec<(String, u32, String)>,
}

pub fn accounts(
    users: &[User],
    passwd: &str,
    group: &str,
    shadow: &str,
    gshadow: &str,
    epoch: i64,
) -> Result<Accounts> {
    let mut a = Accounts {
        passwd: passwd.to_owned(),
        group: group.to_owned(),
        shadow: shadow.to_owned(),
        gshadow: gshadow.to_owned(),
        homes: Vec::new(),
    };
    let admin = admin_group(group);
    let mut assigned = Vec::new();
    for u in users {
        let existing = a
            .passwd
            .lines()
            .find(|l| l.split(':').next() == Some(u.name.as_str()))
            .map(str::to_owned);
        let (uid, home) = match existing {
            Some(line) if u.name == "root" => {
                let f: Vec<&str> = line.split(':').collect();
                (0, f.get(5).unwrap_or(&"/root").to_string())
            }
            Some(_) => bail!(
                "users: {}: the distribution already has this account; choose another name",
                u.name
            ),
            None if u.name == "root" => bail!("users: root: the tree has no root account"),
            None => {
                let id = next_id(&[&a.passwd, &a.group], &assigned);
                assigned.push(id);
                let home = format!("/home/{}", u.name);
                let shell = "/bin/bash";
                let day = epoch.div_euclid(86_400);
                push_line(
                    &mut a.passwd,
                    &format!("{}:x:{id}:{id}::{home}:{shell}", u.name),
                );
                push_line(&mut a.group, &format!("{}:x:{id}:", u.name));
                push_line(&mut a.shadow, &format!("{}:*:{day}:0:99999:7:::", u.name));
                push_line(&mut a.gshadow, &format!("{}:!::", u.name));
                (id, home)
            }
        };
        if u.sudo && u.name != "root" {
            let Some(g) = admin else {
                bail!(
                    "users: {}: sudo = true, but the image has neither a wheel nor a sudo group",
                    u.name
                );
            };
            a.group = add_member(&a.group, g, &u.name);
            a.gshadow = add_member(&a.gshadow, g, &u.name);
        }
        a.homes.push((u.name.clone(), uid, home));
    }
    Ok(a)
}

/// `/etc/sudoers.d/axoha-users`: one NOPASSWD rule per administrator.
pub fn sudoers(admins: &[&str]) -> String {
    let mut text = String::from(
        "# Written by axoha-image from [[users]] (sudo = true): SSH-key-only accounts have no\n\
         # password, so sudo must not ask for one.\n",
    );
    for name in admins {
        text.push_str(&format!("{name} ALL=(ALL:ALL) NOPASSWD: ALL\n"));
    }
    text
}

fn push_line(file: &mut String, line: &str) {
    if !file.is_empty() && !file.ends_with('\n') {
        file.push('\n');
    }
    file.push_str(line);
    file.push('\n');
}

/// Adds `user` to the member list (last field) of `group` in a group or gshadow file.
fn add_member(file: &str, group: &str, user: &str) -> String {
    let mut out = String::new();
    for line in file.lines() {
        if line.starts_with(&format!("{group}:")) {
            let (head, members) = line.rsplit_once(':').unwrap_or((line, ""));
            let mut list: Vec<&str> = members.split(',').filter(|m| !m.is_empty()).collect();
            if !list.contains(&user) {
                list.push(user);
            }
            out.push_str(&format!("{head}:{}\n", list.join(",")));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Writes the accounts and each user's `~/.ssh/authorized_keys` into the tree, with the
/// layer's writer (it never writes through the cache's hard links).
pub fn apply(tree: &Path, users: &[User], epoch: i64) -> Result<()> {
    use crate::stages::layer::write;
    if users.is_empty() {
        return Ok(());
    }
    let read = |rel: &str| {
        std::fs::read_to_string(tree.join(rel)).with_context(|| format!("reading /{rel}"))
    };
    let a = accounts(
        users,
        &read("etc/passwd")?,
        &read("etc/group")?,
        &read("etc/shadow")?,
        &read("etc/gshadow").unwrap_or_default(),
        epoch,
    )?;
    for (rel, text) in [
        ("etc/passwd", &a.passwd),
        ("etc/group", &a.group),
        ("etc/shadow", &a.shadow),
        ("etc/gshadow", &a.gshadow),
    ] {
        // Same mode and owner as the distribution's file (Debian's shadow is root:shadow 0640).
        let p = tree.join(rel);
        let (mode, uid, gid) = match std::fs::metadata(&p) {
            Ok(md) => (md.permissions().mode() & 0o7777, md.uid(), md.gid()),
            Err(_) => (0o600, 0, 0),
        };
        write(tree, rel, text.as_bytes(), mode)?;
        std::os::unix::fs::chown(&p, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", p.display()))?;
    }
    // Key-only accounts have no password to give sudo, so administrators get NOPASSWD.
    let admins: Vec<&str> = users
        .iter()
        .filter(|u| u.sudo && u.name != "root")
        .map(|u| u.name.as_str())
        .collect();
    if !admins.is_empty() {
        write(
            tree,
            "etc/sudoers.d/axoha-users",
            sudoers(&admins).as_bytes(),
            0o440,
        )?;
    }
    for (u, (name, uid, home)) in users.iter().zip(&a.homes) {
        let rel_home = home.trim_start_matches('/');
        let keys = u.ssh_keys.join("\n") + "\n";
        write(
            tree,
            &format!("{rel_home}/.ssh/authorized_keys"),
            keys.as_bytes(),
            0o600,
        )?;
        for (rel, mode) in [
            (format!("{rel_home}/.ssh/authorized_keys"), 0o600),
            (format!("{rel_home}/.ssh"), 0o700),
            (rel_home.to_owned(), 0o700),
        ] {
            let p = tree.join(&rel);
            std::os::unix::fs::chown(&p, Some(*uid), Some(*uid))
                .with_context(|| format!("chown {name} {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVjZXhhbXBsZWtleWRhdGFmb3J0ZXN0c29ubHk= ops@example";

    fn user(name: &str, sudo: bool) -> User {
        User {
            name: name.into(),
            ssh_keys: vec![KEY.into()],
            sudo,
        }
    }

    #[test]
    fn accounts_get_fixed_ids_no_password_and_the_admin_group() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\nold:x:1000:1000::/home/old:/bin/sh\n";
        let group = "root:x:0:\nsudo:x:27:\nold:x:1000:\n";
        let a = accounts(
            &[user("ops", true), user("audit", false)],
            passwd,
            group,
            "root:*:19000:0:99999:7:::\n",
            "sudo:*::\n",
            1_700_000_000,
        )
        .unwrap();
        assert!(a.passwd.contains("ops:x:1001:1001::/home/ops:/bin/bash\n"));
        assert!(a.passwd.contains("audit:x:1002:1002::"));
        assert!(
            a.shadow.contains("ops:*:19675:0:99999:7:::\n"),
            "{}",
            a.shadow
        );
        assert!(a.group.contains("sudo:x:27:ops\n"), "{}", a.group);
        assert!(a.gshadow.contains("sudo:*::ops\n"), "{}", a.gshadow);
        assert!(!a.group.contains("sudo:x:27:ops,audit"));
    }

    #[test]
    fn root_gets_keys_only_and_clashes_are_refused() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n";
        let a = accounts(&[user("root", true)], passwd, "root:x:0:\n", "", "", 0).unwrap();
        assert_eq!(a.passwd, passwd);
        assert_eq!(a.homes, vec![("root".into(), 0, "/root".into())]);
        let err = accounts(
            &[user("sshd", false)],
            "sshd:x:105:65534::/run/sshd:/bin/false\n",
            "",
            "",
            "",
            0,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("sshd"));
        let err = accounts(&[user("ops", true)], "", "root:x:0:\n", "", "", 0).unwrap_err();
        assert!(format!("{err:#}").contains("neither a wheel nor a sudo group"));
    }

    #[test]
    fn names_and_keys_are_checked() {
        assert!(user("ops", false).check().is_ok());
        for bad in ["", "Ops", "1ops", "o ps", "ops\nroot", &"a".repeat(33)] {
            let err = user(bad, false).check().unwrap_err();
            assert!(format!("{err:#}").contains("users: name"), "{bad}");
        }
        for (key, why) in [
            (
                "command=\"sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
                "not a public key type",
            ),
            ("ssh-ed25519 AAAA\nssh-rsa AAAA", "control character"),
            ("ssh-ed25519 not-base64!", "base64"),
            ("ssh-ed25519", "base64"),
        ] {
            let u = User {
                name: "ops".into(),
                ssh_keys: vec![key.into()],
                sudo: false,
            };
            let err = format!("{:#}", u.check().unwrap_err());
            assert!(
                err.contains(why) && err.contains("users: ops"),
                "{key}: {err}"
            );
        }
        let none = User {
            name: "ops".into(),
            ssh_keys: vec![],
            sudo: false,
        };
        assert!(format!("{:#}", none.check().unwrap_err()).contains("ssh_keys is empty"));
    }
}
