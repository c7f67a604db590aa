//! systemd-boot entries on the ESP (`loader/entries/axoha*.conf`): their generation and
//! boot counter from the file name, the `usrhash=` they boot, and the text of a new one.

use crate::cmdline::Cmdline;
use crate::slot::Slot;
use crate::usrhash::UsrHash;

/// Boot counting state from the `+LEFT[-DONE]` part of a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tries {
    pub left: u32,
    pub done: u32,
}

/// One of our entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub generation: u64,
    /// `None`: blessed (or never counted).
    pub tries: Option<Tries>,
    pub title: Option<String>,
    pub usrhash: Option<UsrHash>,
}

/// Generation and tries of an entry file name: the image's `axoha-1.conf` (or an older
/// image's `axoha.conf`) is generation 1, `axoha-G.conf`, `axoha-G+L.conf`, `axoha-G+L-D.conf` generation G. Other names: `None`.
pub fn parse_name(file: &str) -> Option<(u64, Option<Tries>)> {
    let stem = file.strip_suffix(".conf")?;
    let (id, counter) = match stem.split_once('+') {
        Some((id, counter)) => (id, Some(counter)),
        None => (stem, None),
    };
    let generation = if id == "axoha" {
        1
    } else {
        let g = id.strip_prefix("axoha-")?;
        if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        g.parse().ok()?
    };
    let tries = match counter {
        None => None,
        Some(c) => {
            let (left, done) = c.split_once('-').unwrap_or((c, "0"));
            Some(Tries {
                left: left.parse().ok()?,
                done: done.parse().ok()?,
            })
        }
    };
    Some((generation, tries))
}

/// An entry from its file name and text; `None` for files that are not ours.
pub fn parse(file: &str, text: &str) -> Option<Entry> {
    let (generation, tries) = parse_name(file)?;
    let mut title = None;
    let mut usrhash = None;
    for line in text.lines() {
        let line = line.trim();
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match key {
            "title" => title = Some(value.trim().to_owned()),
            "options" => usrhash = Cmdline::parse(value).usrhash().ok(),
            _ => {}
        }
    }
    Some(Entry {
        file: file.to_owned(),
        generation,
        tries,
        title,
        usrhash,
    })
}

/// The generation of a new entry: one more than the highest there is.
pub fn next_generation(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.generation).max().unwrap_or(1) + 1
}

/// `axoha-G+TRIES.conf`.
pub fn file_name(generation: u64, tries: u32) -> String {
    format!("axoha-{generation}+{tries}.conf")
}

/// What a new entry boots and its title.
pub struct Titled<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub slot: Slot,
    pub usrhash: UsrHash,
}

/// The text of a new entry: `usrhash=`, then the running boot's arguments with the running
/// image's definition `kernel_cmdline` replaced by the new image's (the node's own arguments,
/// `root=PARTUUID=`, `rw`, its `axoha.*` keys, stay; a console the new definition changed
/// follows the new definition).
pub fn render(t: &Titled, cmdline: &Cmdline, old_definition: &str, new_definition: &str) -> String {
    let mut from_old: Vec<&str> = old_definition.split_whitespace().collect();
    let mut options = format!("usrhash={}", t.usrhash);
    let mut push = |arg: &str| {
        options.push(' ');
        options.push_str(arg);
    };
    let mut node_own = Vec::new();
    for arg in cmdline.carried() {
        // Each argument the old definition put there is dropped once.
        match from_old.iter().position(|o| *o == arg) {
            Some(i) => {
                from_old.remove(i);
            }
            None => node_own.push(arg),
        }
    }
    // `root=` and `rw` first, as the image's own entry has them.
    let (boot, rest): (Vec<&str>, Vec<&str>) = node_own
        .into_iter()
        .partition(|a| a.starts_with("root=") || *a == "rw");
    boot.iter().for_each(|a| push(a));
    new_definition.split_whitespace().for_each(&mut push);
    rest.iter().for_each(|a| push(a));
    format!(
        "title axoha {name} {version} (slot {slot})\n\
         linux /{dir}/{slot}/vmlinuz\n\
         initrd /{dir}/{slot}/initrd.img\n\
         options {options}\n",
        name = t.name,
        version = t.version,
        slot = t.slot,
        dir = crate::paths::ESP_SLOTS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("axoha.conf"), Some((1, None)));
        assert_eq!(parse_name("axoha-1.conf"), Some((1, None)));
        assert_eq!(
            parse_name("axoha-2+3.conf"),
            Some((2, Some(Tries { left: 3, done: 0 })))
        );
        assert_eq!(
            parse_name("axoha-12+0-3.conf"),
            Some((12, Some(Tries { left: 0, done: 3 })))
        );
        assert_eq!(parse_name("axoha-7.conf"), Some((7, None)));
        assert_eq!(parse_name("other.conf"), None);
        assert_eq!(parse_name("axoha-x.conf"), None);
        assert_eq!(parse_name("axoha-2+3.conf.tmp"), None);
    }

    #[test]
    fn a_new_entry() {
        let hash = UsrHash::parse(&"cd".repeat(32)).unwrap();
        let c = Cmdline::parse(&format!(
            "BOOT_IMAGE=x usrhash={} root=PARTUUID=x rw console=tty0 console=ttyS0 quiet axoha.role=backup net.ifnames=0",
            "ab".repeat(32)
        ));
        let t = Titled {
            name: "edge",
            version: "2.0",
            slot: Slot::B,
            usrhash: hash,
        };
        // The old definition's console=tty0 console=ttyS0 go, the new one's come; the node's
        // own quiet, axoha.role and net.ifnames stay.
        let text = render(&t, &c, "console=tty0 console=ttyS0", "console=ttyS0,115200");
        assert_eq!(
            text,
            format!("title axoha edge 2.0 (slot b)\nlinux /axoha/b/vmlinuz\ninitrd /axoha/b/initrd.img\noptions usrhash={hash} root=PARTUUID=x rw console=ttyS0,115200 quiet axoha.role=backup net.ifnames=0\n")
        );
        // Without a baked definition, everything is carried.
        let same = render(&t, &c, "", "");
        assert!(
            same.contains("rw console=tty0 console=ttyS0 quiet axoha.role=backup"),
            "{same}"
        );
        let e = parse("axoha-2+3.conf", &text).unwrap();
        assert_eq!(e.usrhash, Some(hash));
        assert_eq!(next_generation(&[e]), 3);
    }
}
