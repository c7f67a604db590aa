//! systemd-boot entries on the ESP (`loader/entries/axoha*.conf`) as the updater reads and
//! writes them; their names, text and options are the boot contract's
//! (`axoha_boot_contract::entry`).

use anyhow::{Context, Result};
use axoha_boot_contract::entry as contract;
pub use axoha_boot_contract::entry::{parse_name, Tries};

use crate::cmdline::Cmdline;
use crate::slot::Slot;
use crate::usrhash::UsrHash;

/// One of our entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub generation: u64,
    /// `None`: blessed (or never counted).
    pub tries: Option<Tries>,
    pub title: Option<String>,
    pub usrhash: Option<UsrHash>,
    /// Its `options` line, as written.
    pub options: String,
    /// It boots a signed UKI (`efi`), not a kernel and initrd: a Secure Boot node.
    pub uki: bool,
}

/// An entry from its file name and text; `None` for files that are not ours.
pub fn parse(file: &str, text: &str) -> Option<Entry> {
    let (generation, tries) = parse_name(file)?;
    let options = contract::options_of(text).to_owned();
    Some(Entry {
        file: file.to_owned(),
        generation,
        tries,
        title: contract::field(text, "title").map(str::to_owned),
        usrhash: Cmdline::parse(&options).usrhash().ok(),
        options,
        uki: contract::is_uki(text),
    })
}

/// The generation of a new entry: one more than the highest there is.
pub fn next_generation(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.generation).max().unwrap_or(1) + 1
}

/// `axoha-G+TRIES.conf`.
pub fn file_name(generation: u64, tries: u32) -> String {
    contract::file_name(generation, Some(tries))
}

/// What a new entry boots and its title.
pub struct Titled<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub slot: Slot,
    pub usrhash: UsrHash,
}

/// The text of a new entry. Its options come from the running slot's ENTRY, never from
/// `/proc/cmdline`: what was typed at the boot menu for one boot (`systemd.unit=`,
/// `axoha.initrd_deadline=0`, ...) must not become permanent. Carried: the state partition
/// (`root=PARTUUID=`) and the node's own arguments (its `axoha.*` metadata and the extra
/// arguments it was installed with); the running image's definition `kernel_cmdline` is
/// replaced by the new image's. `uki`: the entry boots the slot's signed UKI (`efi`), with the
/// same options (ignored under Secure Boot, identical words without it).
pub fn render(
    t: &Titled,
    running: &Entry,
    old_definition: &str,
    new_definition: &str,
    uki: bool,
) -> Result<String> {
    let state = contract::state_partuuid(&running.options).with_context(|| {
        format!(
            "the running entry {} has no root=PARTUUID= in its options",
            running.file
        )
    })?;
    let node = contract::node_args(&running.options, old_definition);
    let options = contract::options(&t.usrhash.to_string(), state, new_definition, &node);
    let title = format!("axoha {} {}", t.name, t.version);
    contract::check_title(&title).map_err(anyhow::Error::msg)?;
    Ok(if uki {
        contract::render_uki(&title, t.slot, &options)
    } else {
        contract::render(&title, t.slot, &options)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_entry() {
        let hash = UsrHash::parse(&"cd".repeat(32)).unwrap();
        let running = parse(
            "axoha-1.conf",
            &format!(
                "title axoha edge 1.0 (slot a)\nlinux /axoha/a/vmlinuz\ninitrd /axoha/a/initrd.img\n\
                 options usrhash={} root=PARTUUID=x rw console=tty0 console=ttyS0 quiet axoha.role=backup net.ifnames=0\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let t = Titled {
            name: "edge",
            version: "2.0",
            slot: Slot::B,
            usrhash: hash,
        };
        // The old definition's console=tty0 console=ttyS0 go, the new one's come; the node's
        // own quiet, axoha.role and net.ifnames stay.
        let text = render(
            &t,
            &running,
            "console=tty0 console=ttyS0",
            "console=ttyS0,115200",
            false,
        )
        .unwrap();
        assert_eq!(
            text,
            format!("title axoha edge 2.0 (slot b)\nlinux /axoha/b/vmlinuz\ninitrd /axoha/b/initrd.img\noptions usrhash={hash} root=PARTUUID=x rw console=ttyS0,115200 quiet axoha.role=backup net.ifnames=0\n")
        );
        // Without a baked definition, everything is carried.
        assert!(!running.uki);
        let signed = parse(
            "axoha-1.conf",
            &format!(
                "title t\nefi /axoha/a/linux.efi\noptions usrhash={} root=PARTUUID=x rw\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        assert!(signed.uki, "an efi entry is a signed node's");
        let same = render(&t, &running, "", "", false).unwrap();
        assert!(
            same.contains("rw console=tty0 console=ttyS0 quiet axoha.role=backup"),
            "{same}"
        );
        let e = parse("axoha-2+3.conf", &text).unwrap();
        assert_eq!(e.usrhash, Some(hash));
        assert_eq!(e.title.as_deref(), Some("axoha edge 2.0 (slot b)"));
        assert_eq!(next_generation(&[e]), 3);
    }

    #[test]
    fn nothing_of_a_boot_menu_or_of_a_hand_edit_is_carried() {
        let hash = UsrHash::parse(&"cd".repeat(32)).unwrap();
        let running = parse(
            "axoha-2.conf",
            &format!(
                "options usrhash={} root=PARTUUID=x rw axoha.role=primary systemd.unit=rescue.target axoha.initrd_deadline=0 init=/bin/sh usrhash=00 net.ifnames=0\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let t = Titled {
            name: "edge",
            version: "3",
            slot: Slot::A,
            usrhash: hash,
        };
        let text = render(&t, &running, "", "console=ttyS0", false).unwrap();
        assert!(text.ends_with(&format!(
            "options usrhash={hash} root=PARTUUID=x rw console=ttyS0 axoha.role=primary net.ifnames=0\n"
        )), "{text}");
        let no_root = parse("axoha-2.conf", "options usrhash=ab rw\n").unwrap();
        assert!(render(&t, &no_root, "", "", false).is_err());
        let signed = render(&t, &running, "", "console=ttyS0", true).unwrap();
        assert!(
            signed.contains("efi /axoha/a/linux.efi\noptions usrhash="),
            "{signed}"
        );
    }
}
