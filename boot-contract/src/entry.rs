//! The systemd-boot entry of a slot (Boot Loader Specification, type 1), in its one format:
//!
//! ```text
//! title axoha NAME VERSION (slot b)
//! linux /axoha/b/vmlinuz
//! initrd /axoha/b/initrd.img
//! options usrhash=HASH root=PARTUUID=STATE rw DEFINITION NODE
//! ```
//!
//! File names carry the generation and systemd-boot's boot counter: the image's entry is
//! `axoha-1.conf`, an update's `axoha-G+TRIES.conf` (`+LEFT-DONE` once counted). Without a
//! `default` in loader.conf systemd-boot boots the newest entry by version order of the
//! names (252 sorts ascending and takes the last, later versions take the first; both put
//! entries without tries left out of the way). Not `axoha.conf`: in that order `axoha-2` is
//! OLDER than `axoha.conf` (a `-` where the other has `.` makes a version older).
//!
//! `options` are made by [`options`] and edited by one rule, [`add_args`]: arguments are
//! appended (the kernel and systemd take the last value; `console=` and other repeatable
//! arguments add up), an argument already there verbatim is not added twice.

use crate::cmdline::{key_str, split_str};
use crate::layout::Slot;
use crate::owner::{owner, Owner};

/// The entries' directory on the ESP.
pub const DIR: &str = "loader/entries";
/// The image's own entry, generation 1 (the PXE installer adds the node's arguments to it).
pub const IMAGE_ENTRY: &str = "loader/entries/axoha-1.conf";
/// Its file name.
pub const IMAGE_ENTRY_FILE: &str = "axoha-1.conf";

/// Boot counting state from the `+LEFT[-DONE]` part of a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Tries {
    pub left: u32,
    pub done: u32,
}

/// `axoha-G.conf` (blessed or never counted) or `axoha-G+TRIES.conf`.
pub fn file_name(generation: u64, tries: Option<u32>) -> String {
    match tries {
        None => format!("axoha-{generation}.conf"),
        Some(t) => format!("axoha-{generation}+{t}.conf"),
    }
}

/// Generation and tries of an entry file name: `axoha-1.conf` (or an older image's
/// `axoha.conf`) is generation 1, `axoha-G.conf`, `axoha-G+L.conf`, `axoha-G+L-D.conf`
/// generation G. Other names: `None`.
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
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(left) || !digits(done) {
                return None;
            }
            Some(Tries {
                left: left.parse().ok()?,
                done: done.parse().ok()?,
            })
        }
    };
    Some((generation, tries))
}

/// A title is one line of text: a line break would add a line (another `options`) to the
/// entry.
pub fn check_title(title: &str) -> Result<(), String> {
    if title.chars().any(char::is_control) {
        return Err(format!(
            "entry title {title:?}: one line, without control characters"
        ));
    }
    Ok(())
}

/// The text of a slot's entry (the title checked by [`check_title`]).
pub fn render(title: &str, slot: Slot, options: &str) -> String {
    format!(
        "title {title} (slot {slot})\nlinux /{kernel}\ninitrd /{initrd}\noptions {options}\n",
        kernel = slot.kernel(),
        initrd = slot.initrd(),
    )
}

/// The text of a signed slot's entry: the same title and `options`, but `efi` names the
/// slot's UKI (`Slot::uki`), whose signed `.cmdline` holds these same options. Under Secure
/// Boot systemd-stub ignores the entry's `options` (the signed ones boot; what is added at the
/// menu or on the ESP never arrives); without it they replace the `.cmdline`, identical
/// words. They stay in the entry so that every reader of entries (the updater's `node_args`,
/// `state_partuuid`) reads a signed slot's like any other.
pub fn render_uki(title: &str, slot: Slot, options: &str) -> String {
    format!(
        "title {title} (slot {slot})\nefi /{uki}\noptions {options}\n",
        uki = slot.uki(),
    )
}

/// True for an entry that boots a UKI (`efi`) rather than a kernel and initrd (`linux`).
pub fn is_uki(text: &str) -> bool {
    field(text, "efi").is_some()
}

/// The value of one `KEY value` line of an entry (the first; `None` if there is none).
pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        (key == name).then(|| value.trim())
    })
}

/// The entry's `options`, empty if it has none.
pub fn options_of(text: &str) -> &str {
    field(text, "options").unwrap_or("")
}

/// A slot's `options`: the verity-checked /usr by its root hash, the state partition as `/`
/// (read-write from the start: it holds /etc and /var), the definition's arguments, then the
/// node's own.
pub fn options(usrhash: &str, state_partuuid: &str, definition: &str, node: &[&str]) -> String {
    let mut out = format!("usrhash={usrhash} root=PARTUUID={state_partuuid} rw");
    for a in split_str(definition)
        .into_iter()
        .chain(node.iter().copied())
    {
        out.push(' ');
        out.push_str(a);
    }
    out
}

/// The image's own options, without a node's: slot A's entry as built and the `.cmdline` of
/// a signed slot's UKI (the builder's, and what the updater requires of a bundle's UKI: under
/// Secure Boot nothing else reaches the kernel).
pub fn image_options(usrhash: &str, state_partuuid: &str, definition: &str) -> String {
    options(usrhash, state_partuuid, definition, &[])
}

/// The entry with `args` appended to its `options` (the one editing rule; an argument that
/// is there already, verbatim, is not added again).
pub fn add_args(text: &str, args: &[String]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("options") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                let mut words: Vec<&str> = split_str(rest);
                for a in args {
                    if !words.contains(&a.as_str()) {
                        words.push(a);
                    }
                }
                out.push_str("options ");
                out.push_str(&words.join(" "));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The node's own arguments in a slot's `options`: its `axoha.*` metadata and the extra
/// arguments it was installed with, without those of the definition that made the entry
/// (each dropped once) and without anything the image owns (the security module's arguments
/// included), a boot-control or a one-boot
/// argument (which an entry written by us never has, but a hand-edited one may).
pub fn node_args<'a>(options: &'a str, definition: &str) -> Vec<&'a str> {
    let mut from_definition = split_str(definition);
    let mut own = Vec::new();
    for arg in split_str(options) {
        match owner(arg) {
            Owner::Node | Owner::Free => {}
            // The security module's arguments come with the image that made the entry (an
            // update brings its own, from its bundle), never from the node.
            Owner::Image | Owner::Lsm | Owner::Installer | Owner::BootControl | Owner::OneBoot => {
                continue
            }
        }
        match from_definition.iter().position(|d| *d == arg) {
            Some(i) => {
                from_definition.remove(i);
            }
            None => own.push(arg),
        }
    }
    own
}

/// The state partition's PARTUUID in `options` (`root=PARTUUID=`; the last `root=` wins).
pub fn state_partuuid(options: &str) -> Option<&str> {
    split_str(options)
        .into_iter()
        .rev()
        .find(|a| key_str(a) == "root")?
        .strip_prefix("root=PARTUUID=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name(1, None), IMAGE_ENTRY_FILE);
        assert_eq!(IMAGE_ENTRY, format!("{DIR}/{IMAGE_ENTRY_FILE}"));
        assert_eq!(file_name(2, Some(3)), "axoha-2+3.conf");
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
        for other in [
            "other.conf",
            "axoha-x.conf",
            "axoha-2+3.conf.tmp",
            "axoha-2+.conf",
            "axoha-2+-1.conf",
            "axoha-2+1-.conf",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn text_and_options() {
        let opts = options(
            "ab",
            "cd",
            "console=tty0  console=ttyS0",
            &["axoha.role=primary"],
        );
        assert_eq!(
            opts,
            "usrhash=ab root=PARTUUID=cd rw console=tty0 console=ttyS0 axoha.role=primary"
        );
        let text = render("axoha edge 2.0", Slot::B, &opts);
        assert_eq!(
            text,
            format!("title axoha edge 2.0 (slot b)\nlinux /axoha/b/vmlinuz\ninitrd /axoha/b/initrd.img\noptions {opts}\n")
        );
        assert_eq!(options_of(&text), opts);
        assert_eq!(field(&text, "title"), Some("axoha edge 2.0 (slot b)"));
        assert_eq!(state_partuuid(&opts), Some("cd"));
        let added = add_args(&text, &["net.ifnames=0".into(), "console=tty0".into()]);
        assert_eq!(
            options_of(&added),
            format!("{opts} net.ifnames=0"),
            "appended once, what is there stays"
        );
        assert_eq!(added.lines().count(), 4);
        assert!(!is_uki(&text));
        let signed = render_uki("axoha edge 2.0", Slot::B, &opts);
        assert_eq!(
            signed,
            format!("title axoha edge 2.0 (slot b)\nefi /axoha/b/linux.efi\noptions {opts}\n")
        );
        assert!(is_uki(&signed));
        assert_eq!(options_of(&signed), opts);
        assert!(check_title("axoha edge 2.0").is_ok());
        assert!(check_title("axoha edge\noptions init=/bin/sh").is_err());
    }

    #[test]
    fn the_node_args_of_an_entry() {
        let opts = "usrhash=ab root=PARTUUID=cd rw console=tty0 console=ttyS0 quiet axoha.role=backup net.ifnames=0 systemd.unit=rescue.target axoha.factory_reset axoha.initrd_deadline=0 axoha.initrd_deadline=600";
        assert_eq!(
            node_args(opts, "console=tty0 console=ttyS0"),
            [
                "quiet",
                "axoha.role=backup",
                "net.ifnames=0",
                "axoha.initrd_deadline=600"
            ]
        );
        assert_eq!(
            node_args(opts, ""),
            [
                "console=tty0",
                "console=ttyS0",
                "quiet",
                "axoha.role=backup",
                "net.ifnames=0",
                "axoha.initrd_deadline=600"
            ]
        );
    }
}
