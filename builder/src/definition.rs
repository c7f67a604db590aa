//! The appliance definition, `axoha.toml`: serde types that mirror the file.
//!
//! Parsing is strict (`deny_unknown_fields`: the error names the key and line), and every
//! value that reaches a command line or a file in the image is checked here, before any work.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use axoha_boot_contract::owner::{self, Place};
use axoha_boot_contract::{budget, layout};
use axoha_firstboot::metadata::{AxohaKeys, Key, RawMetadata, Resolved, Source};

use crate::arch::Arch;
use crate::extra_file::{self, ExtraFile};
use crate::profile::{NetworkBackend, Profile};
use crate::selinux_mode::SelinuxMode;

pub const DEFAULT_DEFINITION: &str = include_str!("../axoha.default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    /// The appliance's own version (e.g. "2026.11.1"): shown in update bundles, boot entries
    /// and `axoha-update status`, and ordered (an older bundle is refused on a node:
    /// docs/update-versions.md); empty = the builder's version and the build key.
    #[serde(default)]
    pub version: String,
    pub profile: Profile,
    #[serde(default)]
    pub release: String,
    /// The CPU level of the distribution tree (almalinux-10: `x86_64` is x86-64-v3).
    #[serde(default)]
    pub arch: Arch,
    #[serde(default)]
    pub mirror: String,
    /// Signing key of the mirror's packages: an URL or a local file; empty = the profile's.
    #[serde(default)]
    pub gpg_key: String,
    #[serde(default)]
    pub extra_packages: Vec<String>,
    /// The network daemon: `networkd` or `networkmanager` (debian-12 may run either, its
    /// default networkd; almalinux-10 has NetworkManager only). Unset: the profile's.
    #[serde(default)]
    pub network: Option<NetworkBackend>,
    /// SELinux: `permissive` or `enforcing`. Unset: the profile's (almalinux-10 enforcing,
    /// debian-12 none).
    #[serde(default)]
    pub selinux: Option<SelinuxMode>,
    pub disk_size: String,
    /// Size of each /usr slot (A and B): the squashfs of /usr must fit it, now and after
    /// every update.
    #[serde(default = "default_usr_slot_size")]
    pub usr_slot_size: String,
    /// zstd level of the /usr squashfs, 1-22: the build's largest step (bench/build).
    #[serde(default = "default_usr_compression_level")]
    pub usr_compression_level: u8,
    #[serde(default)]
    pub kernel_cmdline: String,
    #[serde(default)]
    pub axorouter: AxorouterSource,
    #[serde(default)]
    pub cluster: toml::Table,
    #[serde(default)]
    pub files: Vec<ExtraFile>,
    #[serde(default)]
    pub users: Vec<crate::users::User>,
    #[serde(default)]
    pub update: UpdateSection,
    /// `[secure_boot]`: sign systemd-boot and the slots' UKIs (docs/secure-boot.md).
    #[serde(default)]
    pub secure_boot: crate::secure_boot::SecureBootSection,
}

/// `[update]`: the key update bundles are signed with.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// minisign public key, its one-line base64 form (`RW...`), baked to
    /// /usr/lib/axoha/update.pub; empty: the image accepts no bundle.
    #[serde(default)]
    pub public_key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AxorouterSource {
    /// A local path or an http(s) URL.
    #[serde(default)]
    pub package: String,
    /// Expected sha256 of the package (required to reuse a download offline).
    #[serde(default)]
    pub sha256: String,
    /// A package repository with the `axorouter` package instead of a package file:
    /// almalinux-10 a dnf baseurl, debian-12 `URL SUITE COMPONENT`.
    #[serde(default)]
    pub repository: String,
    /// The key that repository is signed with (URL or local file; debian-12: a local file).
    #[serde(default)]
    pub repository_key: String,
}

impl Definition {
    /// The image's network daemon: the definition's `network`, else the profile's default.
    pub fn network(&self) -> NetworkBackend {
        self.network.unwrap_or(self.profile.default_network())
    }

    /// Whether and how the image runs SELinux: the definition's `selinux`, else the
    /// profile's default.
    pub fn selinux(&self) -> Option<SelinuxMode> {
        self.selinux.or(self.profile.default_selinux())
    }

    /// The image's part of every entry's kernel command line: `kernel_cmdline`, then the
    /// arguments that turn SELinux on where the image runs it (owned by the image: the
    /// definition's own line may not carry them). The ESP's entry and update bundles carry
    /// this line.
    pub fn boot_cmdline(&self) -> String {
        let mut words: Vec<&str> = self.kernel_cmdline.split_ascii_whitespace().collect();
        if self.selinux().is_some() {
            words.extend(self.profile.selinux_kernel_args());
        }
        words.join(" ")
    }

    /// Parses and checks a definition; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Definition> {
        let def: Definition = toml::from_str(text)
            .with_context(|| format!("{origin}: invalid appliance definition"))?;
        def.check()
            .with_context(|| format!("{origin}: invalid appliance definition"))?;
        Ok(def)
    }

    pub fn load(path: Option<&std::path::Path>) -> Result<Definition> {
        match path {
            None => Definition::parse(DEFAULT_DEFINITION, "built-in default definition"),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading definition {}", p.display()))?;
                let text = axoha_firstboot::metadata::parse::without_bom(text);
                Definition::parse(&text, &p.display().to_string())
            }
        }
    }

    pub fn check(&self) -> Result<()> {
        self.secure_boot.check()?;
        let key = &self.update.public_key;
        if !key.is_empty() {
            if key.contains(char::is_whitespace) {
                bail!(
                    "[update] public_key = {key:?}: the one-line base64 key (RW...), nothing else"
                );
            }
            axoha_update::signature::parse_public_key(key)
                .with_context(|| format!("[update] public_key = {key:?}"))?;
        }
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("name = {:?}: use 1-64 of a-z, 0-9 and -", self.name);
        }
        // The updater's own rule (and order: docs/update-versions.md).
        if !self.version.is_empty() && axoha_update::version::Version::parse(&self.version).is_err()
        {
            bail!(
                "version = {:?}: up to 64 of letters, digits and . _ + ~ -",
                self.version
            );
        }
        if !self.release.is_empty()
            && !self
                .release
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            bail!(
                "release = {:?}: letters, digits and dots only",
                self.release
            );
        }
        self.arch.check(self.profile)?;
        if let Some(network) = self.network {
            let can = self.profile.network_backends();
            if !can.contains(&network) {
                bail!(
                    "network = {:?}: the {} profile runs {}",
                    network.name(),
                    self.profile.name(),
                    can.iter()
                        .map(|b| b.name())
                        .collect::<Vec<_>>()
                        .join(" or ")
                );
            }
        }
        let scheme_ok = ["http://", "https://", "file:/"]
            .iter()
            .any(|p| self.mirror.starts_with(p));
        let clean = !self
            .mirror
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
        if !(self.mirror.is_empty() || (scheme_ok && clean)) {
            bail!(
                "mirror = {:?}: expected an http://, https:// or file:/ URL",
                self.mirror
            );
        }
        if self
            .gpg_key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            bail!(
                "gpg_key = {:?}: no whitespace or control characters",
                self.gpg_key
            );
        }
        for p in &self.extra_packages {
            let ok = !p.is_empty()
                && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b));
            if !ok {
                bail!("extra_packages: {p:?} is not a package name");
            }
        }
        if !(1..=22).contains(&self.usr_compression_level) {
            bail!(
                "usr_compression_level = {}: zstd levels are 1 to 22",
                self.usr_compression_level
            );
        }
        let disk = parse_size(&self.disk_size).context("disk_size")?;
        let slot = parse_slot_size(&self.usr_slot_size).context("usr_slot_size")?;
        match layout::state_bytes(disk, slot) {
            Some(state) if state >= MIN_STATE => {}
            _ => bail!(
                "disk_size = {:?}: with usr_slot_size = {:?} (two slots), a {} MiB ESP and two \
                 {} MiB verity partitions, the state partition (/, /etc, /var) would have less \
                 than {} MiB; raise disk_size",
                self.disk_size,
                self.usr_slot_size,
                layout::ESP_SIZE >> 20,
                layout::VERITY_SIZE >> 20,
                MIN_STATE >> 20
            ),
        }
        owner::check_line(Place::Definition, &self.kernel_cmdline).map_err(anyhow::Error::msg)?;
        let line = self.boot_cmdline();
        if line.len() > budget::DEFINITION_MAX {
            bail!(
                "kernel_cmdline: {} bytes with the image's own arguments ({line:?}), at most {} \
                 (the kernel's command line is {} bytes on x86, and each node's axoha.* \
                 arguments need the rest)",
                line.len(),
                budget::DEFINITION_MAX,
                budget::MAX
            );
        }
        self.check_axorouter_repository()?;
        if !self.axorouter.sha256.is_empty() {
            crate::fetch::check_sha256(&self.axorouter.sha256).context("[axorouter] sha256")?;
        }
        self.check_cluster()?;
        for (i, u) in self.users.iter().enumerate() {
            u.check()?;
            if self.users[..i].iter().any(|o| o.name == u.name) {
                bail!("users: {} is defined twice", u.name);
            }
        }
        let homes: Vec<String> = self.users.iter().map(|u| u.home()).collect();
        extra_file::check_all(&self.files, &homes)?;
        Ok(())
    }

    fn check_axorouter_repository(&self) -> Result<()> {
        let a = &self.axorouter;
        if a.repository.is_empty() {
            if !a.repository_key.is_empty() {
                bail!("[axorouter] repository_key is set without a repository");
            }
            return Ok(());
        }
        if !a.package.is_empty() {
            bail!("[axorouter]: set package or repository, not both");
        }
        if a.repository.chars().any(|c| c.is_control()) {
            bail!("[axorouter] repository = {:?}: one line", a.repository);
        }
        let fields: Vec<&str> = a.repository.split_whitespace().collect();
        let url_ok = |u: &str| {
            ["http://", "https://", "file:/"]
                .iter()
                .any(|p| u.starts_with(p))
        };
        let shape_ok = match self.profile {
            Profile::Almalinux10 => fields.len() == 1 && url_ok(fields[0]),
            Profile::Debian12 => fields.len() == 3 && url_ok(fields[0]),
        };
        if !shape_ok {
            bail!(
                "[axorouter] repository = {:?}: {} expects {}",
                a.repository,
                self.profile.name(),
                match self.profile {
                    Profile::Almalinux10 => "a dnf baseurl (http://, https:// or file:/)",
                    Profile::Debian12 => "\"URL SUITE COMPONENT\"",
                }
            );
        }
        if a.repository_key.is_empty() || a.repository_key.chars().any(char::is_whitespace) {
            bail!(
                "[axorouter] repository_key = {:?}: the repository's signing key (URL or file) \
                 is required: packages are never installed unchecked",
                a.repository_key
            );
        }
        Ok(())
    }

    /// The `[cluster]` table uses the cluster.toml keys of axoha-firstboot, typed the same way.
    fn check_cluster(&self) -> Result<()> {
        let keys: AxohaKeys = self.cluster.clone().try_into().context("[cluster]")?;
        let layer = RawMetadata {
            source: Source::BakedClusterToml,
            values: keys.into_values().context("[cluster]")?,
        };
        for key in layer.values.keys() {
            if !Source::BakedClusterToml.may_set(*key) {
                bail!("[cluster] {key}: secrets are never baked into a shared image");
            }
        }
        let resolved = Resolved::merge([layer]);
        axoha_firstboot::config::check_values(&resolved)
            .map_err(|p| anyhow::anyhow!("[cluster] {p}"))?;
        if resolved.get(Key::Role).is_some() || resolved.get(Key::HaIp).is_some() {
            bail!("[cluster]: role and ha_ip are per node (kernel command line or seed), not image-wide");
        }
        Ok(())
    }

    /// The baked `/usr/lib/axoha/cluster.toml`. SSH is let in on the VIP interface exactly
    /// when the image has login users, unless `[cluster.firewall] ssh` says otherwise.
    pub fn cluster_toml(&self) -> String {
        let mut cluster = self.cluster.clone();
        let firewall = cluster
            .entry("firewall")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // Anything but a table was refused by check_cluster.
        if let Some(firewall) = firewall.as_table_mut() {
            firewall
                .entry("ssh")
                .or_insert(toml::Value::Boolean(!self.users.is_empty()));
        }
        format!(
            "# Cluster defaults baked into this image by axoha-image (definition [cluster]).\n\
             # Override in /etc/axoha/cluster.toml; per-node values come from metadata.\n{}",
            toml::to_string(&cluster).expect("a TOML table serializes")
        )
    }

    pub fn disk_bytes(&self) -> u64 {
        parse_size(&self.disk_size).expect("checked")
    }

    pub fn usr_slot_bytes(&self) -> u64 {
        parse_slot_size(&self.usr_slot_size).expect("checked")
    }
}

/// The least state partition a definition may leave: /etc, /var, logs and update downloads.
pub const MIN_STATE: u64 = 512 << 20;

fn default_usr_slot_size() -> String {
    "1G".into()
}

/// Measured on the debian-12 /usr (620 MiB, 2 cores; issue 15): level 6 takes 4 s for 164 MiB,
/// mksquashfs's own default 15 takes 42 s for 152 MiB.
fn default_usr_compression_level() -> u8 {
    6
}

/// `usr_slot_size`: 256M to 16G.
pub fn parse_slot_size(s: &str) -> Result<u64> {
    let bytes = parse_unit(s)?;
    if !(256 << 20..=16 << 30).contains(&bytes) {
        bail!("{s:?}: between 256M and 16G");
    }
    Ok(bytes)
}

fn parse_unit(s: &str) -> Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?}: expected e.g. 3G or 2048M"))?;
    let unit: u64 = match unit {
        "G" | "GiB" => 1 << 30,
        "M" | "MiB" => 1 << 20,
        _ => bail!("{s:?}: unit must be G or M"),
    };
    // Checked: `n << 20` drops high bits, so 17592186048512M would wrap to 4 GiB.
    n.checked_mul(unit)
        .with_context(|| format!("{s:?}: more bytes than a 64-bit size holds"))
}

pub fn parse_size(s: &str) -> Result<u64> {
    let bytes = parse_unit(s)?;
    if !(1 << 30..=64 << 30).contains(&bytes) {
        bail!("{s:?}: between 1G and 64G");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses() {
        let d = Definition::load(None).unwrap();
        assert_eq!(d.profile, Profile::Almalinux10);
        assert!(d.cluster_toml().contains("advert_int = 0.2"));
        assert!(d
            .cluster_toml()
            .contains("[firewall]\nports = [\"4317/tcp\"]\nssh = false\n"));
    }

    #[test]
    fn ssh_is_let_in_where_there_are_users_unless_said_otherwise() {
        let with_user = DEFAULT_DEFINITION.to_owned()
            + "[[users]]\nname = \"ops\"\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOi+u9yuQm5KwVQmUnsbG6+0sL3LdsQFUtKNlzy6kVCR ops\"]\n";
        let d = Definition::parse(&with_user, "x.toml").unwrap();
        assert!(
            d.cluster_toml().contains("ssh = true"),
            "{}",
            d.cluster_toml()
        );
        let said = with_user.replace(
            "ports = [\"4317/tcp\"]\n",
            "ports = [\"4317/tcp\"]\nssh = false\n",
        );
        let d = Definition::parse(&said, "x.toml").unwrap();
        assert!(
            d.cluster_toml().contains("ssh = false"),
            "{}",
            d.cluster_toml()
        );
        let bad = DEFAULT_DEFINITION.replace("ports = [\"4317/tcp\"]", "ports = [\"4317\"]");
        let err = format!("{:#}", Definition::parse(&bad, "x.toml").unwrap_err());
        assert!(err.contains("firewall.ports"), "{err}");
    }

    #[test]
    fn the_axorouter_package_comes_from_one_place() {
        let text = DEFAULT_DEFINITION
            .replace("package = \"\"\n", "package = \"a.rpm\"\n")
            .replace(
                "repository = \"\"\nrepository_key = \"\"",
                "repository = \"https://pkg.example/el10\"\nrepository_key = \"k\"",
            );
        let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let text =
            DEFAULT_DEFINITION.replace("disk_size = \"4G\"", "disk_size = \"4G\"\ndisksize = 1");
        let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
        assert!(err.contains("disksize") && err.contains("line"), "{err}");
    }

    #[test]
    fn only_almalinux_has_an_x86_64_v2_tree() {
        let v2 = DEFAULT_DEFINITION.replace("arch = \"x86_64\"", "arch = \"x86_64_v2\"");
        assert_eq!(
            Definition::parse(&v2, "x.toml").unwrap().arch,
            crate::arch::Arch::X86_64V2
        );
        let debian = v2.replace("profile = \"almalinux-10\"", "profile = \"debian-12\"");
        let err = format!("{:#}", Definition::parse(&debian, "x.toml").unwrap_err());
        assert!(err.contains("only almalinux-10"), "{err}");
    }

    #[test]
    fn debian_runs_either_network_daemon_almalinux_networkmanager_only() {
        let alma = Definition::parse(DEFAULT_DEFINITION, "x.toml").unwrap();
        assert_eq!(alma.network(), NetworkBackend::NetworkManager);
        let debian =
            DEFAULT_DEFINITION.replace("profile = \"almalinux-10\"", "profile = \"debian-12\"");
        let d = Definition::parse(&debian, "x.toml").unwrap();
        assert_eq!(d.network(), NetworkBackend::Networkd);
        let nm = debian.replace(
            "# network = \"networkmanager\"",
            "network = \"networkmanager\"",
        );
        let d = Definition::parse(&nm, "x.toml").unwrap();
        assert_eq!(d.network(), NetworkBackend::NetworkManager);
        let networkd =
            DEFAULT_DEFINITION.replace("# network = \"networkmanager\"", "network = \"networkd\"");
        let err = format!("{:#}", Definition::parse(&networkd, "x.toml").unwrap_err());
        assert!(
            err.contains("network = \"networkd\": the almalinux-10 profile runs networkmanager"),
            "{err}"
        );
        let unknown = debian.replace("# network = \"networkmanager\"", "network = \"ifupdown\"");
        let err = format!("{:#}", Definition::parse(&unknown, "x.toml").unwrap_err());
        assert!(err.contains("ifupdown"), "{err}");
    }

    #[test]
    fn selinux_is_the_profiles_unless_set_and_its_arguments_are_the_images() {
        let alma = Definition::parse(DEFAULT_DEFINITION, "x.toml").unwrap();
        assert_eq!(alma.selinux(), Some(SelinuxMode::Enforcing));
        // RHEL's kernel starts SELinux by itself: nothing added.
        assert_eq!(alma.boot_cmdline(), alma.kernel_cmdline.trim());
        let debian =
            DEFAULT_DEFINITION.replace("profile = \"almalinux-10\"", "profile = \"debian-12\"");
        let d = Definition::parse(&debian, "x.toml").unwrap();
        assert_eq!(d.selinux(), None);
        assert!(
            !d.boot_cmdline().contains("selinux"),
            "{}",
            d.boot_cmdline()
        );
        let on = debian.replace("# selinux = \"permissive\"", "selinux = \"permissive\"");
        let d = Definition::parse(&on, "x.toml").unwrap();
        assert_eq!(d.selinux(), Some(SelinuxMode::Permissive));
        assert!(
            d.boot_cmdline().ends_with(" security=selinux selinux=1"),
            "{}",
            d.boot_cmdline()
        );
        let unknown = debian.replace("# selinux = \"permissive\"", "selinux = \"on\"");
        let err = format!("{:#}", Definition::parse(&unknown, "x.toml").unwrap_err());
        assert!(err.contains("selinux") && err.contains("on"), "{err}");
        // The definition's own line may not choose the security module.
        let text = on.replace("kernel_cmdline = \"", "kernel_cmdline = \"selinux=0 ");
        assert_ne!(text, on);
        let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
        assert!(
            err.contains("\"selinux=0\"") && err.contains("`selinux` key"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for (from, to, expect) in [
            ("name = \"axoha\"", "name = \"Axo Ha\"", "name"),
            ("name = \"axoha\"", "name = \"axoha\"\nversion = \"1 2\"", "version"),
            ("name = \"axoha\"", "name = \"axoha\"\nversion = \"1/../2\"", "version"),
            ("disk_size = \"4G\"", "disk_size = \"3T\"", "disk_size"),
            ("disk_size = \"4G\"", "disk_size = \"2G\"", "disk_size"),
            (
                "disk_size = \"4G\"",
                "disk_size = \"17592186048512M\"",
                "disk_size: \"17592186048512M\": more bytes",
            ),
            (
                "disk_size = \"4G\"",
                "disk_size = \"17179869188G\"",
                "disk_size: \"17179869188G\": more bytes",
            ),
            (
                "disk_size = \"4G\"",
                "disk_size = \"99999999999999999999G\"",
                "disk_size",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"17592186045440M\"",
                "usr_slot_size: \"17592186045440M\": more bytes",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"17179869185G\"",
                "usr_slot_size",
            ),
            ("usr_slot_size = \"1G\"", "usr_slot_size = \"100M\"", "usr_slot_size"),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"1G\"\nusr_compression_level = 0",
                "usr_compression_level",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"1G\"\nusr_compression_level = 23",
                "usr_compression_level",
            ),
            (
                "[cluster]\nvrrp_version = 3",
                "[update]\npublic_key = \"RWnotakey\"\n[cluster]\nvrrp_version = 3",
                "public_key",
            ),
            (
                "extra_packages = []",
                "extra_packages = [\"--allow-unauthenticated\"]",
                "extra_packages",
            ),
            ("mirror = \"\"", "mirror = \"ftp://x\"", "mirror"),
            ("advert_int = 0.2", "advert_int = \"0.2\\n}\"", "advert_int"),
            (
                "vrrp_version = 3",
                "vrrp_version = 3\nauth_pass = \"x\"",
                "auth_pass",
            ),
            (
                "vrrp_version = 3",
                "vrrp_version = 3\nrole = \"primary\"",
                "per node",
            ),
            (
                "kernel_cmdline = \"console",
                "kernel_cmdline = \"axoha.role=primary console",
                "validated description",
            ),
            (
                "kernel_cmdline = \"console",
                "kernel_cmdline = \"usrhash=00 console",
                "selects or mounts the system",
            ),
            (
                "kernel_cmdline = \"console",
                "kernel_cmdline = \"root=/dev/sda1 console",
                "selects or mounts the system",
            ),
            (
                "kernel_cmdline = \"console",
                "kernel_cmdline = \"systemd.unit=rescue.target console",
                "for one boot",
            ),
            (
                "repository = \"\"",
                "repository = \"https://pkg.example/el10\"",
                "repository_key",
            ),
            (
                "repository = \"\"\nrepository_key = \"\"",
                "repository = \"https://pkg.example stable main\"\nrepository_key = \"k\"",
                "dnf baseurl",
            ),
            ("gpg_key = \"\"", "gpg_key = \"a b\"", "gpg_key"),
            ("arch = \"x86_64\"", "arch = \"x86_64_v3\"", "x86_64_v2"),
            (
                "# [[files]]",
                "[[files]]\npath = \"/usr/libexec/keepalived/axoha-vrrp-notify\"\ncontents = \"\"\n#",
                "belongs to the appliance",
            ),
            ("sha256 = \"\"", "sha256 = \"abc\"", "sha256"),
            (
                "# [[users]]",
                "[[users]]\nname = \"ops\"\nssh_keys = []\n# ",
                "ssh_keys is empty",
            ),
        ] {
            let text = DEFAULT_DEFINITION.replace(from, to);
            assert_ne!(text, DEFAULT_DEFINITION, "{from}");
            let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
            assert!(err.contains(expect), "{to}: {err}");
        }
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOi+u9yuQm5KwVQmUnsbG6+0sL3LdsQFUtKNlzy6kVCR ops";

    fn files(entries: &[(&str, &str)]) -> String {
        let mut text = DEFAULT_DEFINITION.to_owned();
        for (path, mode) in entries {
            text.push_str(&format!(
                "[[files]]\npath = {path:?}\ncontents = \"x\"\nmode = {mode:?}\n"
            ));
        }
        text
    }

    /// Each refused `[[files]]` set: the error names the field and the value. Parsing is the
    /// first thing a build does, so nothing has been written when it fails.
    #[test]
    fn files_cannot_undo_the_appliance() {
        for (entries, want) in [
            (
                vec![("/etc/passwd", "0644")],
                "\"/etc/passwd\" belongs to the appliance",
            ),
            (vec![("/etc//shadow", "0600")], "\"/etc/shadow\" belongs"),
            (
                vec![("/etc/./hostname", "0644")],
                "\"/etc/hostname\" belongs",
            ),
            (
                vec![("/bin/axoha-firstboot", "0755")],
                "\"/usr/bin/axoha-firstboot\" belongs",
            ),
            (
                vec![("/lib/systemd/system/keepalived.service.d/x.conf", "0644")],
                "keepalived.service",
            ),
            (vec![("/etc/ssh/ssh_host_ed25519_key", "0600")], "host keys"),
            (
                vec![("/etc/firewalld/zones/axoha-ha.xml", "0644")],
                "firewalld",
            ),
            (
                vec![("/etc/chrony/sources.d/axoha.sources", "0644")],
                "first boot writes it",
            ),
            (vec![("/etc/resolv.conf", "0644")], "first boot writes it"),
            // Every file first boot writes is claimed, the network daemons' included.
            (
                vec![("/etc/systemd/network/50-axoha-ha.network", "0644")],
                "first boot writes it",
            ),
            (
                vec![(
                    "/etc/NetworkManager/system-connections/axoha-vip.nmconnection",
                    "0600",
                )],
                "first boot writes it",
            ),
            (
                vec![("/etc/sysctl.d/90-axoha-vip.conf", "0644")],
                "first boot writes it",
            ),
            (vec![("/etc/machine-id", "0444")], "identity"),
            (
                vec![("/usr/lib/axoha/cluster.toml", "0644")],
                "cluster defaults",
            ),
            (vec![("/etc/axoha/cluster.toml", "0644")], "[cluster]"),
            (
                vec![("/etc/keepalived/keepalived.conf", "0640")],
                "keepalived.conf",
            ),
            (
                vec![("/etc/systemd/system-preset/00-off.preset", "0644")],
                "presets",
            ),
            (
                vec![("/etc/../etc/motd", "0644")],
                "\"/etc/../etc/motd\": \"..\" is refused",
            ),
            (vec![("etc/motd", "0644")], "\"etc/motd\" is not absolute"),
            (vec![("/etc/motd/", "0644")], "names a directory"),
            (
                vec![("/etc/motd", "0644"), ("/etc//motd", "0600")],
                "\"/etc/motd\" is given twice",
            ),
            (
                vec![("/usr/lib/x", "0644"), ("/lib/x", "0644")],
                "\"/usr/lib/x\" is given twice",
            ),
            (
                vec![("/etc/a", "0644"), ("/etc/a/b", "0644")],
                "inside \"/etc/a\"",
            ),
            (vec![("/usr/local/bin/t", "4755")], "mode \"4755\""),
            (vec![("/usr/local/bin/t", "0x1")], "mode \"0x1\""),
            (
                vec![("/usr/local/bin/t", "0777")],
                "mode \"0777\": world-writable",
            ),
            // Issue 21: what systemd applies to the appliance's units, by its own rules.
            (
                vec![("/etc/systemd/system/axoha-.service.d/zz.conf", "0644")],
                "\"/etc/systemd/system/axoha-.service.d/zz.conf\" belongs to the appliance: a \
                 drop-in of axoha-firstboot.service (axoha-.service.d/ applies to it)",
            ),
            (
                vec![("/etc/systemd/system/service.d/zz.conf", "0644")],
                "(service.d/ applies to it)",
            ),
            (
                vec![("/etc/default/keepalived", "0644")],
                "an EnvironmentFile= of keepalived.service (Debian)",
            ),
            (
                vec![("/etc/sysconfig/keepalived", "0644")],
                "an EnvironmentFile= of keepalived.service (RHEL)",
            ),
            (
                vec![(
                    "/etc/systemd/system.control/axorouter.service.d/x.conf",
                    "0644",
                )],
                "a drop-in of axorouter.service",
            ),
        ] {
            let err = format!(
                "{:#}",
                Definition::parse(&files(&entries), "x.toml").unwrap_err()
            );
            assert!(err.contains(want), "{entries:?}: {err}");
        }
        let ok = Definition::parse(
            &files(&[
                ("/etc/motd", "0644"),
                ("/etc/ssh/sshd_config.d/site.conf", "0600"),
            ]),
            "x.toml",
        )
        .unwrap();
        assert_eq!(ok.files[1].mode.bits(), 0o600);
    }

    #[test]
    fn authorized_keys_of_defined_users_are_theirs() {
        let text = files(&[("/home/ops/.ssh/authorized_keys", "0600")])
            + &format!("[[users]]\nname = \"ops\"\nssh_keys = [{KEY:?}]\n");
        let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
        assert!(err.contains("\"/home/ops/.ssh/authorized_keys\""), "{err}");
    }

    #[test]
    fn users_are_refused_by_name_and_value() {
        for (user, want) in [
            (
                format!("name = \"sudo\"\nssh_keys = [{KEY:?}]"),
                "users: name \"sudo\"",
            ),
            (
                format!("name = \"keepalived\"\nssh_keys = [{KEY:?}]"),
                "users: name \"keepalived\"",
            ),
            (
                "name = \"ops\"\nssh_keys = [\"ssh-dss AAAAB3NzaC1kc3MAAACBANMJ\"]".to_owned(),
                "users: ops: ssh_keys entry \"ssh-dss",
            ),
            (
                format!(
                    "name = \"ops\"\nssh_keys = [{:?}]",
                    KEY.replacen("ssh-ed25519", "ssh-rsa", 1)
                ),
                "matches its type",
            ),
        ] {
            let text = format!("{DEFAULT_DEFINITION}[[users]]\n{user}\n");
            let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
            assert!(err.contains(want), "{user}: {err}");
        }
    }
}
