//! The running boot's kernel command line: `usrhash=`, `root=PARTUUID=` and the
//! factory-reset request (split by the boot contract's kernel rules). A new entry's
//! arguments come from the running entry, never from here (`entries::render`).

use anyhow::{bail, Context, Result};
use axoha_boot_contract::cmdline::{key, last_value, split};
use axoha_boot_contract::owner::FACTORY_RESET;

use crate::usrhash::{PartUuid, UsrHash};

/// The kernel argument that asks for a factory reset (typed at the boot menu).
pub const FACTORY_RESET_ARG: &str = FACTORY_RESET;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmdline {
    text: String,
}

impl Cmdline {
    pub fn parse(text: &str) -> Cmdline {
        Cmdline {
            text: text.to_owned(),
        }
    }

    /// The last value of `name` (the kernel and systemd take the last one).
    fn value(&self, name: &str) -> Option<&str> {
        last_value(self.text.as_bytes(), name.as_bytes())
            .map(|v| std::str::from_utf8(v).expect("a value of a str ends at an ASCII byte"))
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
        split(self.text.as_bytes())
            .into_iter()
            .any(|a| key(a) == FACTORY_RESET_ARG.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_running_boot() {
        let hash = "ab".repeat(32);
        let c = Cmdline::parse(&format!(
            "BOOT_IMAGE=/x initrd=\\axoha\\a\\initrd.img usrhash={hash} root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef rw console=ttyS0 axoha.role=primary x=\"a b\" axoha.factory_reset\n"
        ));
        assert_eq!(c.usrhash().unwrap().to_string(), hash);
        assert_eq!(
            c.root_partuuid().unwrap().to_string(),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert!(c.factory_reset());
        assert!(!Cmdline::parse("axoha.factory_reset_x").factory_reset());
        assert!(Cmdline::parse("usrhash=AB").usrhash().is_err());
        assert!(Cmdline::parse("root=/dev/sda6").root_partuuid().is_err());
    }
}
