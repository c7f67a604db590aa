//! The kernel command line (`/proc/cmdline`): `axoha.<key>=<value>` arguments.
//!
//! Splitting follows the kernel's rules (`lib/cmdline.c`): arguments are separated by
//! whitespace, and double quotes group a value that contains spaces. As in the kernel, the last
//! occurrence of a repeated key wins (a boot loader appends, so the appended value is the newer
//! one). Any other `axoha.` key is an error: a typo must not fall back to a default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{Key, MetadataProvider, Source};

pub struct Cmdline {
    path: PathBuf,
    /// A missing file is an empty command line only under `--root` (a test root has no /proc).
    missing_ok: bool,
}

impl Cmdline {
    pub fn new(path: PathBuf, missing_ok: bool) -> Self {
        Cmdline { path, missing_ok }
    }
}

impl MetadataProvider for Cmdline {
    fn source(&self) -> Source {
        Source::Cmdline
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.missing_ok => {
                return Ok(BTreeMap::new())
            }
            other => other.with_context(|| format!("reading {}", self.path.display()))?,
        };
        parse(&text)
    }
}

/// Splits a command line into arguments, honouring double quotes like the kernel does.
pub fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut started = false;
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                started = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    let mut values = BTreeMap::new();
    for arg in split_args(text) {
        let Some(rest) = arg.strip_prefix("axoha.") else {
            continue;
        };
        let Some((name, value)) = rest.split_once('=') else {
            bail!("kernel command line: axoha.{rest} has no value (expected axoha.{rest}=VALUE)");
        };
        let key = Key::from_name(name).filter(|k| k.allowed_on_cmdline());
        let Some(key) = key else {
            bail!(
                "kernel command line: unknown key axoha.{name} (known: {})",
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
    fn splits_like_the_kernel() {
        assert_eq!(
            split_args("BOOT_IMAGE=/vmlinuz  root=UUID=x \"quiet a\" axoha.hostname=\"r1\"\n"),
            [
                "BOOT_IMAGE=/vmlinuz",
                "root=UUID=x",
                "quiet a",
                "axoha.hostname=r1"
            ]
        );
    }

    #[test]
    fn reads_axoha_keys_and_ignores_others() {
        let v =
            parse("ro quiet axoha.role=primary axoha.vrid=7 axoha.vrid=8 console=ttyS0").unwrap();
        assert_eq!(v[&Key::Role], "primary");
        assert_eq!(v[&Key::Vrid], "8", "last occurrence wins, as in the kernel");
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn refuses_unknown_keys_and_missing_values() {
        assert!(parse("axoha.vird=7")
            .unwrap_err()
            .to_string()
            .contains("axoha.vird"));
        assert!(parse("axoha.role")
            .unwrap_err()
            .to_string()
            .contains("axoha.role"));
        assert!(parse("axoha.health.command=/bin/true").is_err());
        let err = parse("axoha.firewall.ports=22/tcp")
            .unwrap_err()
            .to_string();
        let known = err.split("(known:").nth(1).unwrap();
        assert!(
            !known.contains("health.") && !known.contains("firewall."),
            "{err}"
        );
        assert!(known.contains("axoha.gateway"), "{err}");
    }
}
