//! The installer's parameters, from the kernel command line (and, with
//! `axoha.install_node_file`, from a per-node file fetched over TFTP). Pure.

use anyhow::{bail, Context, Result};
use axoha_boot_contract::cmdline::{key_str, split_str};
use axoha_boot_contract::owner::{self, owner, Owner, Place};

/// Everything the installer was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// `axoha.install_url`: `tftp://[HOST]/path` or `http://HOST[:PORT]/path`.
    pub url: Option<String>,
    /// `axoha.install_sha256`: the expected sha256 of the compressed image (64 hex digits).
    pub sha256: Option<String>,
    /// `axoha.install_disk`: the whole disk to overwrite.
    pub disk: Option<String>,
    /// `axoha.install_node_file`: fetch the node's arguments from the TFTP server;
    /// `1` means the default directory `nodes`, anything else is the directory.
    pub node_file: Option<String>,
    /// Arguments persisted into the installed system's loader entry: the node's `axoha.*`
    /// metadata and every `axoha.install_karg=ARG` as `ARG` (never one the image, the
    /// metadata, the installer or one boot owns: the boot contract's `owner::check`).
    pub persist: Vec<String>,
    /// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (pxelinux IPAPPEND 2, our iPXE entries): the NIC that
    /// booted, so a machine with several NICs asks DHCP on the right one.
    pub bootif: Option<String>,
}

impl Params {
    /// Parses a command line. A node argument given twice with two values is refused: the
    /// node's metadata comes from one validated description, and which of two values it
    /// meant cannot be guessed (the kernel's "last one wins" would let a hand-added argument
    /// override what was validated).
    pub fn parse(cmdline: &str) -> Result<Params> {
        let mut p = Params::default();
        p.merge(cmdline)?;
        Ok(p)
    }

    /// Adds the arguments of `cmdline` (a node file is merged with /proc/cmdline; the
    /// installer's own `axoha.install_*` parameters of the node file win).
    pub fn merge(&mut self, cmdline: &str) -> Result<()> {
        for arg in split_str(cmdline) {
            if let Some(v) = arg.strip_prefix("BOOTIF=") {
                let mac = v.strip_prefix("01-").unwrap_or(v).replace('-', ":");
                self.bootif = Some(mac.to_ascii_lowercase());
                continue;
            }
            // The key as the kernel (and first boot) reads it, quotes and all.
            if !key_str(arg).starts_with("axoha.") {
                continue;
            }
            let Some(rest) = arg.strip_prefix("axoha.").filter(|_| !arg.contains('"')) else {
                bail!("{arg:?}: axoha.* arguments are written without quotes");
            };
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            match key {
                "install_url" => self.url = Some(value.to_owned()),
                "install_sha256" => {
                    let v = value.to_ascii_lowercase();
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bail!("axoha.install_sha256={value:?} is not 64 hex digits");
                    }
                    self.sha256 = Some(v);
                }
                "install_disk" => {
                    if !value.starts_with("/dev/") {
                        bail!("axoha.install_disk={value:?}: expected a /dev/ path");
                    }
                    self.disk = Some(value.to_owned());
                }
                "install_node_file" => self.node_file = Some(value.to_owned()),
                "install_karg" => {
                    owner::check(Place::NodeExtra, value)
                        .map_err(anyhow::Error::msg)
                        .context("axoha.install_karg")?;
                    self.push_persist(value)?;
                }
                k if k.starts_with("install_") => bail!("unknown installer argument axoha.{k}"),
                _ => {
                    if owner(arg) != Owner::Node || !arg.contains('=') {
                        bail!(
                            "{arg:?}: not node metadata (axoha.KEY=VALUE): axoha.factory_reset \
                             is for one boot, never persisted; a deadline is persisted as \
                             axoha.install_karg=axoha.initrd_deadline=SECONDS"
                        );
                    }
                    self.push_persist(arg)?;
                }
            }
        }
        Ok(())
    }

    /// Adds an argument for the installed system once; the same key with another value is
    /// refused for node metadata (see `parse`); other arguments may repeat (`console=`).
    fn push_persist(&mut self, arg: &str) -> Result<()> {
        if self.persist.iter().any(|a| a == arg) {
            return Ok(());
        }
        if owner(arg) == Owner::Node {
            if let Some(other) = self.persist.iter().find(|a| key_str(a) == key_str(arg)) {
                bail!(
                    "{} is given twice, as {other:?} and {arg:?}: a node's metadata has one \
                     value (fix the PXE entry or the node file)",
                    key_str(arg)
                );
            }
        }
        self.persist.push(arg.to_owned());
        Ok(())
    }

    /// The node file's TFTP path for this MAC: `DIR/01-aa-bb-cc-dd-ee-ff.cmdline`
    /// (pxelinux's naming: ARP hardware type 1, then the MAC with dashes).
    pub fn node_file_path(&self, mac: &str) -> Option<String> {
        let dir = match self.node_file.as_deref()? {
            "" | "0" => return None,
            "1" => "nodes",
            d => d.trim_matches('/'),
        };
        Some(format!(
            "{dir}/01-{}.cmdline",
            mac.to_ascii_lowercase().replace(':', "-")
        ))
    }

    pub fn require(&self) -> Result<(&str, &str)> {
        let url = self
            .url
            .as_deref()
            .context("no axoha.install_url on the command line (or in the node file)")?;
        let disk = self
            .disk
            .as_deref()
            .context("no axoha.install_disk on the command line (or in the node file)")?;
        Ok((url, disk))
    }
}

/// A parsed fetch location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    /// `host` is `None` for `tftp:///path`: the DHCP next-server is used.
    Tftp { host: Option<String>, path: String },
    Http {
        host: String,
        port: u16,
        path: String,
    },
}

impl Url {
    pub fn parse(url: &str) -> Result<Url> {
        if let Some(rest) = url.strip_prefix("tftp://") {
            let (host, path) = rest.split_once('/').context("tftp URL without a path")?;
            let host = (!host.is_empty()).then(|| host.to_owned());
            return Ok(Url::Tftp {
                host,
                path: path.to_owned(),
            });
        }
        if let Some(rest) = url.strip_prefix("http://") {
            let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().with_context(|| format!("port in {url:?}"))?),
                None => (hostport, 80),
            };
            if host.is_empty() {
                bail!("{url:?}: an http URL needs a host");
            }
            return Ok(Url::Http {
                host: host.to_owned(),
                port,
                path: format!("/{path}"),
            });
        }
        bail!("{url:?}: only tftp:// and http:// URLs are supported (https needs TLS: use HTTP on a trusted network with axoha.install_sha256)")
    }

    /// The file name at the end of the path, for messages.
    pub fn file_name(&self) -> &str {
        let path = match self {
            Url::Tftp { path, .. } | Url::Http { path, .. } => path,
        };
        path.rsplit('/').next().unwrap_or(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_install_and_node_arguments() {
        let p = Params::parse(
            "BOOT_IMAGE=x console=ttyS0 axoha.install_url=tftp:///disk.raw.zst \
             axoha.install_sha256=AB01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01 \
             axoha.install_disk=/dev/vda axoha.role=primary axoha.peers=192.0.2.11 \
             axoha.install_karg=net.ifnames=0",
        )
        .unwrap();
        assert_eq!(p.url.as_deref(), Some("tftp:///disk.raw.zst"));
        assert_eq!(p.sha256.as_deref().unwrap().len(), 64);
        assert!(p.sha256.as_deref().unwrap().starts_with("ab01"));
        assert_eq!(p.disk.as_deref(), Some("/dev/vda"));
        assert!(p.bootif.is_none());
        let b = Params::parse("BOOTIF=01-52-54-00-0A-00-0A").unwrap();
        assert_eq!(b.bootif.as_deref(), Some("52:54:00:0a:00:0a"));
        assert_eq!(
            p.persist,
            [
                "axoha.role=primary",
                "axoha.peers=192.0.2.11",
                "net.ifnames=0"
            ]
        );
    }

    #[test]
    fn node_file_overrides_and_names_by_mac() {
        let mut p = Params::parse("axoha.install_node_file=1 axoha.role=secondary").unwrap();
        assert_eq!(
            p.node_file_path("52:54:00:0A:00:0a").unwrap(),
            "nodes/01-52-54-00-0a-00-0a.cmdline"
        );
        // The same metadata twice is one; two values of it are refused, whichever comes
        // first (the kernel's last-one-wins would let an added argument override it).
        p.merge("axoha.role=secondary axoha.install_disk=/dev/sda")
            .unwrap();
        assert_eq!(p.persist, ["axoha.role=secondary"]);
        assert_eq!(p.disk.as_deref(), Some("/dev/sda"));
        let err = p.merge("axoha.role=primary").unwrap_err().to_string();
        assert!(err.contains("axoha.role") && err.contains("twice"), "{err}");
        assert!(Params::parse("axoha.install_node_file=0")
            .unwrap()
            .node_file_path("52:54:00:0a:00:0a")
            .is_none());
    }

    #[test]
    fn refuses_bad_values() {
        for owned in [
            "axoha.install_karg=axoha.role=secondary",
            "axoha.install_karg=usrhash=00",
            "axoha.install_karg=root=/dev/sda1",
            "axoha.install_karg=rw",
            "axoha.install_karg=init=/bin/sh",
            "axoha.install_karg=systemd.unit=rescue.target",
            "axoha.install_karg=axoha.factory_reset",
            "axoha.factory_reset",
            "axoha.initrd_deadline=0",
            "axoha.install_karg=axoha.initrd_deadline=0",
            "axoha.role",
            "\"axoha.role=primary x\"",
        ] {
            assert!(Params::parse(owned).is_err(), "{owned}");
        }
        assert!(Params::parse("axoha.install_sha256=xyz").is_err());
        assert!(Params::parse("axoha.install_disk=vda").is_err());
        assert!(Params::parse("axoha.install_typo=1").is_err());
        assert!(Params::parse("").unwrap().require().is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("tftp:///pxe/disk.raw.zst").unwrap(),
            Url::Tftp {
                host: None,
                path: "pxe/disk.raw.zst".into()
            }
        );
        assert_eq!(
            Url::parse("tftp://192.0.2.2/disk.raw.zst").unwrap(),
            Url::Tftp {
                host: Some("192.0.2.2".into()),
                path: "disk.raw.zst".into()
            }
        );
        let u = Url::parse("http://192.0.2.5:8080/axoha/disk.raw.zst").unwrap();
        assert_eq!(
            u,
            Url::Http {
                host: "192.0.2.5".into(),
                port: 8080,
                path: "/axoha/disk.raw.zst".into()
            }
        );
        assert_eq!(u.file_name(), "disk.raw.zst");
        assert!(Url::parse("https://example.org/x").is_err());
        assert!(Url::parse("http:///x").is_err());
    }
}
