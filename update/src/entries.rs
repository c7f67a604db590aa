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

/// Generation and tries of an entry file name: `axoha.conf` is generation 1,
/// `axoha-G.conf`, `axoha-G+L.conf`, `axoha-G+L-D.conf` generation G. Other names: `None`.
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

/// The text of a new entry booting `slot` with `usrhash`, carrying the running boot's
/// arguments (`root=PARTUUID=`, `rw`, the definition's and the node's own).
pub fn render(
    name: &str,
    version: &str,
    slot: Slot,
    usrhash: UsrHash,
    cmdline: &Cmdline,
) -> String {
    let mut options = format!("usrhash={usrhash}");
    for arg in cmdline.carried() {
        options.push(' ');
        options.push_str(arg);
    }
    format!(
        "title axoha {name} {version} (slot {slot})\n\
         linux /{dir}/{slot}/vmlinuz\n\
         initrd /{dir}/{slot}/initrd.img\n\
         options {options}\n",
        dir = crate::paths::ESP_SLOTS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("axoha.conf"), Some((1, None)));
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
            "BOOT_IMAGE=x usrhash={} root=PARTUUID=x rw axoha.role=backup",
            "ab".repeat(32)
        ));
        let text = render("edge", "2.0", Slot::B, hash, &c);
        assert_eq!(
            text,
            format!("title axoha edge 2.0 (slot b)\nlinux /axoha/b/vmlinuz\ninitrd /axoha/b/initrd.img\noptions usrhash={hash} root=PARTUUID=x rw axoha.role=backup\n")
        );
        let e = parse("axoha-2+3.conf", &text).unwrap();
        assert_eq!(e.usrhash, Some(hash));
        assert_eq!(next_generation(&[e]), 3);
    }
}
