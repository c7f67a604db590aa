//! The kernel command line (`/proc/cmdline`): `axoha.<key>=<value>` arguments.
//!
//! Splitting follows the kernel's rules (`lib/cmdline.c`): arguments are separated by
//! whitespace, and double quotes group a value that contains spaces. As in the kernel, the last
//! occurrence of a repeated key wins (a boot loader appends, so the appended value is the newer
//! one). Any other `axoha.` key is an error: a typo must not fall back to a default.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use axoha_boot_contract::cmdline::{param, split};

use super::{Key, MetadataProvider, Source};
use crate::log::quote;
use axoha_root::{Location, CMDLINE_MAX};

pub struct Cmdline {
    location: Location,
    /// A missing file is an empty command line only under `--root` (a test root has no /proc).
    missing_ok: bool,
    /// `Cmdline`, or `NodeFile`: the ESP's node file has the command line's syntax and rules.
    source: Source,
}

impl Cmdline {
    pub fn new(location: Location, missing_ok: bool) -> Self {
        Cmdline {
            location,
            missing_ok,
            source: Source::Cmdline,
        }
    }

    /// The ESP's node file (`efi/axoha/node.conf` under the root): optional.
    pub fn node_file(location: Location) -> Self {
        Cmdline {
            location,
            missing_ok: true,
            source: Source::NodeFile,
        }
    }
}

impl MetadataProvider for Cmdline {
    fn source(&self) -> Source {
        self.source
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let shown = self.location.shown();
        match self
            .location
            .read(CMDLINE_MAX)
            .with_context(|| format!("{} {}", self.source, shown.display()))?
        {
            Some(bytes) if self.source == Source::NodeFile => {
                parse(&bytes).with_context(|| format!("{}", self.source))
            }
            Some(bytes) => parse(&bytes),
            None if self.missing_ok => Ok(BTreeMap::new()),
            None => bail!("reading {}: no such file", shown.display()),
        }
    }
}

/// `axoha.*` arguments that are not node metadata: they steer the boot itself and belong to
/// other parts of the appliance (the initrd's deadline unit, `axoha-update prepare-root`), so
/// first boot passes over them, with or without a value. The boot contract's list.
pub use axoha_boot_contract::owner::BOOT_CONTROL as BOOT_CONTROL_ARGS;

/// The `axoha.*` arguments; every other argument is ignored whatever its bytes.
pub fn parse(bytes: &[u8]) -> Result<BTreeMap<Key, String>> {
    let mut values = BTreeMap::new();
    for arg in split(bytes) {
        let (name, value) = param(arg);
        if BOOT_CONTROL_ARGS.iter().any(|c| c.as_bytes() == name) {
            continue;
        }
        let Some(name) = name.strip_prefix(b"axoha.") else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            std::str::from_utf8(name),
            std::str::from_utf8(value.unwrap_or_default()),
        ) else {
            bail!(
                "kernel command line: argument {} is not UTF-8 text",
                quote(&String::from_utf8_lossy(arg))
            );
        };
        if !arg.contains(&b'=') {
            bail!(
                "kernel command line: {} has no value (expected axoha.KEY=VALUE)",
                quote(&format!("axoha.{name}"))
            );
        }
        let key = Key::from_name(name).filter(|k| k.allowed_on_cmdline());
        let Some(key) = key else {
            bail!(
                "kernel command line: unknown key {} (known: {})",
                quote(&format!("axoha.{name}")),
                Key::ALL
                    .iter()
                    .filter(|k| k.allowed_on_cmdline())
                    .map(|k| format!("axoha.{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        values.insert(key, value.to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_the_kernel_reads_them() {
        let v = parse(b"BOOT_IMAGE=/vmlinuz  root=UUID=x \"quiet a\" axoha.hostname=\"r1\" \"axoha.vrid=9\"\n")
            .unwrap();
        assert_eq!(v[&Key::Hostname], "r1");
        assert_eq!(v[&Key::Vrid], "9");
    }

    #[test]
    fn reads_axoha_keys_and_ignores_others() {
        let v =
            parse(b"ro quiet axoha.role=primary axoha.vrid=7 axoha.vrid=8 console=ttyS0").unwrap();
        assert_eq!(v[&Key::Role], "primary");
        assert_eq!(v[&Key::Vrid], "8", "last occurrence wins, as in the kernel");
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn passes_over_the_boot_control_arguments() {
        let v = parse(b"axoha.initrd_deadline=120 axoha.factory_reset axoha.boot_deadline=0 axoha.role=primary").unwrap();
        assert_eq!(v.len(), 1);
        assert!(parse(b"axoha.initrd_deadlines=1").is_err());
    }

    #[test]
    fn refuses_unknown_keys_and_missing_values() {
        assert!(parse(b"axoha.vird=7")
            .unwrap_err()
            .to_string()
            .contains("axoha.vird"));
        assert!(parse(b"axoha.role")
            .unwrap_err()
            .to_string()
            .contains("axoha.role"));
        assert!(parse(b"axoha.health.command=/bin/true").is_err());
        let err = parse(b"axoha.firewall.ports=22/tcp")
            .unwrap_err()
            .to_string();
        let known = err.split("(known:").nth(1).unwrap();
        assert!(
            !known.contains("health.") && !known.contains("firewall."),
            "{err}"
        );
        assert!(known.contains("axoha.gateway"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_utf8_matter_only_in_our_arguments() {
        let v = parse(b"quiet splash=\xff\xfe axoha.vrid=7 x\x80=\xc3").unwrap();
        assert_eq!(v[&Key::Vrid], "7");
        let err = parse(b"axoha.hostname=r\xff").unwrap_err().to_string();
        assert!(
            err.contains("axoha.hostname") && err.contains("not UTF-8"),
            "{err}"
        );
    }
}
