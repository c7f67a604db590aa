//! `kernel_cmdline`: the definition's part of every boot entry's kernel command line.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;

use axoha_boot_contract::owner::{self, Place};

use super::text::serde_by_str;

/// Arguments the definition may set: one line, no quotes or control characters, and none
/// the boot contract keeps for the image, the slots or one boot (`owner::check`). How long
/// it may be depends on what the image adds (SELinux), so the definition checks that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline(String);

impl KernelCmdline {
    /// The arguments, as the kernel splits them (no quotes: whitespace is the separator).
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.0.split_ascii_whitespace()
    }
}

impl FromStr for KernelCmdline {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<KernelCmdline> {
        owner::check_line(Place::Definition, s).map_err(anyhow::Error::msg)?;
        Ok(KernelCmdline(s.to_owned()))
    }
}

impl fmt::Display for KernelCmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_by_str!(KernelCmdline);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_one_line_of_the_definitions_own_arguments() {
        let line: KernelCmdline = " console=tty0  console=ttyS0,115200 ".parse().unwrap();
        assert_eq!(
            line.words().collect::<Vec<_>>(),
            ["console=tty0", "console=ttyS0,115200"]
        );
        for (bad, why) in [
            ("console=tty0\nquiet", "one line"),
            ("console=tty0\u{0}", "control characters"),
            ("x=\"a b\"", "no quotes"),
            ("usrhash=00", "selects or mounts the system"),
            ("systemd.unit=rescue.target", "for one boot"),
        ] {
            let err = format!("{:#}", bad.parse::<KernelCmdline>().unwrap_err());
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
