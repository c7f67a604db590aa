//! The running boot's kernel command line: `usrhash=`, `root=PARTUUID=`, the factory-reset
//! request, and the arguments a new boot entry carries over.

use anyhow::{bail, Context, Result};

use crate::usrhash::{PartUuid, UsrHash};

/// The kernel argument that asks for a factory reset (typed at the boot menu).
/// `axoha.factory_reset`: one of the boot arguments first boot passes over (not metadata).
pub const FACTORY_RESET_ARG: &str = axoha_firstboot::metadata::BOOT_CONTROL_ARGS[1];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmdline {
    args: Vec<String>,
}

/// The key of an argument (`key=value` or a bare `key`).
fn key(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

impl Cmdline {
    /// Splits like the kernel: on whitespace, except inside double quotes (kept verbatim).
    pub fn parse(text: &str) -> Cmdline {
        let mut args = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in text.chars() {
            if c == '"' {
                quoted = !quoted;
            }
            if c.is_whitespace() && !quoted {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            args.push(current);
        }
        Cmdline { args }
    }

    fn value(&self, name: &str) -> Option<&str> {
        // The last one wins, as for the kernel and systemd.
        self.args
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
    }

    /// `usrhash=` of the running boot.
    pub fn usrhash(&self) -> Result<UsrHash> {
        let value = self.value("usrhash").context(
            "the kernel command line has no usrhash= (not an axoha image with a verity /usr?)",
        )?;
        UsrHash::parse(value).context("kernel command line usrhash=")
    }

    /// The state partition's PARTUUID from `root=PARTUUID=`.
    pub fn root_partuuid(&self) -> Result<PartUuid> {
        let root = self
            .value("root")
            .context("the kernel command line has no root=")?;
        let Some(uuid) = root.strip_prefix("PARTUUID=") else {
            bail!("kernel command line root={root:?} is not root=PARTUUID=...");
        };
        PartUuid::parse(uuid).context("kernel command line root=PARTUUID=")
    }

    /// Whether a factory reset was asked for at the boot menu.
    pub fn factory_reset(&self) -> bool {
        self.args.iter().any(|a| key(a) == FACTORY_RESET_ARG)
    }

    /// The arguments a new entry carries: all but `usrhash=`, `BOOT_IMAGE=`, `initrd=` (the
    /// entry sets its own) and the one-time factory-reset request.
    pub fn carried(&self) -> Vec<&str> {
        self.args
            .iter()
            .map(String::as_str)
            .filter(|a| {
                !matches!(
                    key(a),
                    "usrhash" | "BOOT_IMAGE" | "initrd" | FACTORY_RESET_ARG
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_all_but_what_the_entry_sets() {
        let hash = "ab".repeat(32);
        let c = Cmdline::parse(&format!(
            "BOOT_IMAGE=/x initrd=\\axoha\\a\\initrd.img usrhash={hash} root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef rw console=ttyS0 axoha.role=primary x=\"a b\" axoha.factory_reset\n"
        ));
        assert_eq!(c.usrhash().unwrap().to_string(), hash);
        assert_eq!(
            c.carried(),
            [
                "root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef",
                "rw",
                "console=ttyS0",
                "axoha.role=primary",
                "x=\"a b\""
            ]
        );
        assert!(c.factory_reset());
        assert!(Cmdline::parse("usrhash=AB").usrhash().is_err());
        assert!(Cmdline::parse("root=/dev/sda6").root_partuuid().is_err());
    }
}
