//! `[[users]]` of the appliance definition: login accounts that authenticate with SSH keys
//! only. No password is ever baked into a shared image (shadow field `*`: no password login,
//! but not "locked", which sshd would refuse too).
//!
//! Accounts are written into the tree's passwd/group/shadow/gshadow directly, with the next
//! free UID from 1000 and the shadow "last change" day taken from SOURCE_DATE_EPOCH, so a
//! rebuild gives the same bytes (`useradd --root` stamps today's date).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::tree::Tree;

/// The sudoers file for `sudo = true` users.
pub const SUDOERS: &str = "/etc/sudoers.d/axoha-users";

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

/// Accounts and groups of the distributions and of the appliance's services: a login of that
/// name would take over a system identity (file ownership, group membership such as `adm`'s
/// logs or `sudo`'s rights), so it is refused even before the tree's own files are read.
const SYSTEM_NAMES: [&str; 40] = [
    "adm",
    "audio",
    "backup",
    "bin",
    "cdrom",
    "chrony",
    "daemon",
    "dialout",
    "dip",
    "disk",
    "floppy",
    "ftp",
    "games",
    "gnats",
    "input",
    "irc",
    "keepalived",
    "kmem",
    "list",
    "lp",
    "mail",
    "man",
    "messagebus",
    "news",
    "nobody",
    "nogroup",
    "operator",
    "polkitd",
    "proxy",
    "shadow",
    "sshd",
    "staff",
    "sudo",
    "sync",
    "sys",
    "tty",
    "users",
    "uucp",
    "wheel",
    "www-data",
];

/// Name prefixes of system accounts made on demand (systemd's, the appliance's own).
const SYSTEM_PREFIXES: [&str; 4] = ["systemd-", "axoha", "axorouter", "_"];

/// `[[users]]`: every account checked as the definition is read, no name twice.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(try_from = "Vec<User>", into = "Vec<User>")]
pub struct Users(Vec<User>);

impl std::ops::Deref for Users {
    type Target = [User];

    fn deref(&self) -> &[User] {
        &self.0
    }
}

impl TryFrom<Vec<User>> for Users {
    type Error = String;

    fn try_from(users: Vec<User>) -> Result<Users, String> {
        for (i, u) in users.iter().enumerate() {
            u.check().map_err(|e| format!("{e:#}"))?;
            if users[..i].iter().any(|o| o.name == u.name) {
                return Err(format!("users: {} is defined twice", u.name));
            }
        }
        Ok(Users(users))
    }
}

impl From<Users> for Vec<User> {
    fn from(users: Users) -> Vec<User> {
        users.0
    }
}

/// RSA keys shorter than this are refused (OpenSSH's own floor is 1024; NIST's is 2048).
const RSA_MIN_BITS: usize = 2048;

impl User {
    /// Checks name and keys; errors name the user and the offending value.
    fn check(&self) -> Result<()> {
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
        if SYSTEM_NAMES.contains(&n.as_str()) || SYSTEM_PREFIXES.iter().any(|p| n.starts_with(p)) {
            bail!("users: name {n:?} is a system account or group name; choose another");
        }
        if self.ssh_keys.is_empty() {
            bail!("users: {n}: ssh_keys is empty (accounts log in with SSH keys only)");
        }
        for key in &self.ssh_keys {
            check_key(key).with_context(|| format!("users: {n}: ssh_keys entry {key:?}"))?;
        }
        Ok(())
    }

    /// The home directory the account gets (root keeps its own).
    pub fn home(&self) -> String {
        if self.name == "root" {
            "/root".into()
        } else {
            format!("/home/{}", self.name)
        }
    }
}

/// One `authorized_keys` line without options: `TYPE BASE64 [COMMENT]`, decoded, the key
/// blob's algorithm the one the line names, nothing that could start a second line or smuggle
/// in options such as `command=`, no deprecated DSA or short RSA key.
fn check_key(key: &str) -> Result<()> {
    if key.chars().any(|c| c.is_control()) {
        bail!("contains a control character (a key is one line)");
    }
    let parsed = ssh_key::PublicKey::from_openssh(key).map_err(|e| {
        anyhow::anyhow!(
            "is not an OpenSSH public key \"TYPE BASE64 [COMMENT]\" whose data matches its type ({e})"
        )
    })?;
    // OpenSSH reads everything after the key data as the comment: a second key pasted into
    // the same string would be taken silently and never work.
    if let Some(word) = parsed
        .comment()
        .split_whitespace()
        .find(|w| looks_like_key(w))
    {
        bail!(
            "holds a second key ({:?} after the first key's data): give each key as its own \
             ssh_keys entry",
            word.chars().take(24).collect::<String>()
        );
    }
    match parsed.key_data() {
        ssh_key::public::KeyData::Dsa(_) => {
            bail!("ssh-dss (DSA) keys are deprecated and disabled in OpenSSH; use ssh-ed25519")
        }
        ssh_key::public::KeyData::Rsa(rsa) => {
            let bits = rsa.n.as_positive_bytes().map_or(0, |b| b.len() * 8);
            if bits < RSA_MIN_BITS {
                bail!("an RSA key of {bits} bits; at least {RSA_MIN_BITS} are needed");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether a word of a key's comment is a key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`,
/// `sk-...`) or key data (base64 that starts `AAAA`, as every key blob's length prefix does).
fn looks_like_key(word: &str) -> bool {
    let algorithm = matches!(
        ssh_key::Algorithm::new(word),
        Ok(a) if !matches!(a, ssh_key::Algorithm::Other(_))
    );
    let blob = word.len() >= 32
        && word.starts_with("AAAA")
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    algorithm
        || ["ssh-", "ecdsa-sha2-", "sk-"]
            .iter()
            .any(|p| word.starts_with(p))
        || blob
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
                "users: name {:?}: the image already has this account; choose another name",
                u.name
            ),
            None if u.name != "root" && has_entry(&a.group, &u.name) => bail!(
                "users: name {:?}: the image already has a group of this name (its members would \
                 share the account's files); choose another name",
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

/// True when a colon file (passwd, group) has an entry `name`.
fn has_entry(file: &str, name: &str) -> bool {
    file.lines().any(|l| l.split(':').next() == Some(name))
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

/// Writes the accounts and each user's `~/.ssh/authorized_keys` into the tree (which
/// never writes through the cache's hard links, nor outside the tree).
pub fn apply(tree: &Tree, users: &[User], epoch: i64) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let a = accounts(
        users,
        &tree.read_to_string("etc/passwd")?,
        &tree.read_to_string("etc/group")?,
        &tree.read_to_string("etc/shadow")?,
        &tree.read_to_string("etc/gshadow").unwrap_or_default(),
        epoch,
    )?;
    for (rel, text) in [
        ("etc/passwd", &a.passwd),
        ("etc/group", &a.group),
        ("etc/shadow", &a.shadow),
        ("etc/gshadow", &a.gshadow),
    ] {
        // Same mode and owner as the distribution's file (Debian's shadow is root:shadow 0640).
        let (mode, uid, gid) = match tree.meta(rel)? {
            Some(m) => (m.mode, m.uid, m.gid),
            None => (0o600, 0, 0),
        };
        tree.write(rel, text.as_bytes(), mode)?;
        tree.set_owner_mode(rel, uid, gid, mode)?;
    }
    // Key-only accounts have no password to give sudo, so administrators get NOPASSWD.
    let admins: Vec<&str> = users
        .iter()
        .filter(|u| u.sudo && u.name != "root")
        .map(|u| u.name.as_str())
        .collect();
    if !admins.is_empty() {
        tree.write(SUDOERS, sudoers(&admins).as_bytes(), 0o440)?;
    }
    for (u, (_, uid, home)) in users.iter().zip(&a.homes) {
        let rel_home = home.trim_start_matches('/');
        let keys: String = u.ssh_keys.iter().map(|k| format!("{k}\n")).collect();
        let authorized = format!("{rel_home}/.ssh/authorized_keys");
        tree.write(&authorized, keys.as_bytes(), 0o600)?;
        for (rel, mode) in [
            (authorized, 0o600),
            (format!("{rel_home}/.ssh"), 0o700),
            (rel_home.to_owned(), 0o700),
        ] {
            tree.set_owner_mode(&rel, *uid, *uid, mode)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOi+u9yuQm5KwVQmUnsbG6+0sL3LdsQFUtKNlzy6kVCR ops@example";

    // Made with ssh-keygen for these tests (public halves only).
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD08FadRBOqNqsqYQyV/N1IXBpomB328pEuyJ4SW7Hrz5Xkm5ZKzLEasjSK1wWHEuWFTXyOqYlwtq9cIBuDnPgQ= ops@example";
    const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDIj/JoNcemKb6amNOqtzGC8zT3PEyjyt3vkJ+twpfqq/rVrdd8qKSybNMYxJzN8eszreaA88kIFjvAX6W0C+jPz6ijTY+j6z9E2bOX8iw40MeDvkN5eLEr803ULb8GbEhTAp0bKOp8SUb0cEKZQYivu9mPlCXISZzpVSq1NprJJ+o8NnO5+kPLBDtuLC40bN5FRHCxJffRWHrmoqR1IqAwECWn2gestl/47/ZnTGSDhBjB3jY8YAlVvMXqL0WbQjBiWslxq+qQ6WNb+uiT6viJZbj+nTGRzXH8K8flPe0+97636NQI2UALKy7V4i/UoCDdUQYMcmyaCaz9Nd1XuA6p ops";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC3xsGR6ppMdj04t44tkYTckVrv9maWNMXkavjqKO8wKK/WouIrVGaVVKQxbLzlRiidmLJdB1IvZXLLLv5To8d0bnNtl+bhYhMXl0xFl6htLHK5dyn2WfnO4yEKiYBttRVaIYFmOddAvtIRUbQnRZYFPOJp8xAve5NaeLEgKHriow== small";
    const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBANMJcDxSBTBOh5rt+WIngMD+Ul+tgB5dvFiYbL96LUhU+XEnoUVT/QZXZIi6ETJjBAQqeSulhOSqtEKfP5fJayHbr0S4TW9vb38mS7e/jdQWbxhOjIE4nytvSb7QjynJhxhlhbWV8CQvjhzg35ZKOT4fyBTYpzCYfxA6G3Vk1ntfAAAAFQCkdR0RLsPvIuwAnKTwLSXcPl8MmwAAAIEArLqYIoDpaYjx0sGDZSKkkFUfkBf3nwHyMXxYQAGmWCvKC63cKKbVGPDpTFHKm70IS5n61NsHnbztooMpVuE1+o+5I47MmB02VZ4IRQE2uHfRxCqsqNJj1JbZeQhl4xiQxqLaXoBTnmHbgYNM3r4vpWObgRzIC2np8DqTxfMQGz0AAACARNeKNSnG5PHjUH+TbstuSXUOlmxZbFNbHGlKgrrL3E+PnYhOMvsDzuWwEuw7aN0b40mVlWXA0qeAbxCiYSW1gx7Umbyf8Yuc16g7b7HhpdGWdTFBjynTO92VXdA1a4tWMMDwpF1vYKZWGlLy7tgYO7QhmGJNeu0srANQDk5htFE= old";

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
        // A group of the image (not a system name we know of) is not taken over either.
        let err = accounts(
            &[user("netdev", false)],
            "root:x:0:0:root:/root:/bin/bash\n",
            "root:x:0:\nnetdev:x:108:\n",
            "",
            "",
            0,
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("\"netdev\"") && err.contains("group"), "{err}");
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
        for system in [
            "sudo",
            "adm",
            "keepalived",
            "wheel",
            "sshd",
            "systemd-network",
            "_apt",
        ] {
            let err = format!("{:#}", user(system, false).check().unwrap_err());
            assert!(
                err.contains(&format!("users: name {system:?}")) && err.contains("system"),
                "{err}"
            );
        }
        for (key, why) in [
            (
                "command=\"sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
                "not an OpenSSH public key",
            ),
            ("ssh-ed25519 AAAA\nssh-rsa AAAA", "control character"),
            ("ssh-ed25519 not-base64!", "not an OpenSSH public key"),
            ("ssh-ed25519", "not an OpenSSH public key"),
            // The blob says ssh-ed25519; the line says ssh-rsa.
            (
                &KEY.replacen("ssh-ed25519", "ssh-rsa", 1),
                "matches its type",
            ),
            (
                &KEY.replacen("ssh-ed25519", "ecdsa-sha2-nistp256", 1),
                "matches its type",
            ),
            // Valid base64 with a truncated blob.
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVj",
                "not an OpenSSH public key",
            ),
            (DSA, "ssh-dss"),
            (RSA_1024, "1024 bits"),
            (&format!("{KEY} {ECDSA}"), "holds a second key"),
            (&format!("{KEY}  {KEY}"), "holds a second key"),
            (
                &format!("{} {}", KEY, KEY.split_whitespace().nth(1).unwrap()),
                "holds a second key",
            ),
        ] {
            let u = User {
                name: "ops".into(),
                ssh_keys: vec![key.into()],
                sudo: false,
            };
            let err = format!("{:#}", u.check().unwrap_err());
            assert!(
                err.contains(why) && err.contains("users: ops") && err.contains("ssh_keys"),
                "{key}: {err}"
            );
        }
        for good in [KEY, ECDSA, RSA_2048] {
            let u = User {
                name: "ops".into(),
                ssh_keys: vec![good.into()],
                sudo: false,
            };
            u.check().unwrap();
        }
        let none = User {
            name: "ops".into(),
            ssh_keys: vec![],
            sudo: false,
        };
        assert!(format!("{:#}", none.check().unwrap_err()).contains("ssh_keys is empty"));
    }
}
