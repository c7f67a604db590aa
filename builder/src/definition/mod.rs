//! The appliance definition, `axoha.toml`: serde types that mirror the file.
//!
//! Parsing is strict (`deny_unknown_fields`: the error names the key and line), and every
//! value that reaches a command line or a file in the image is parsed here into its type
//! (`size`, `url`, `cmdline`, `names`, `cluster`), so a wrong value is refused with its line
//! before any work, and nothing downstream parses it again. `Definition::check` holds what
//! one value cannot know alone: the rules between fields and the profile.

mod cluster;
mod cmdline;
mod names;
mod size;
mod text;
mod url;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use axoha_boot_contract::{budget, layout};
use axoha_update::version::Version;

use crate::arch::Arch;
use crate::extra_file::{self, ExtraFile};
use crate::profile::{NetworkBackend, Profile};
use crate::selinux_mode::SelinuxMode;

pub use cluster::ClusterDefaults;
pub use cmdline::KernelCmdline;
pub use names::{ApplianceName, CompressionLevel, PackageName, Release, Sha256, UpdateKey};
pub use size::{DiskSize, SlotSize};
pub use url::{KeySource, PackageSource, Repository, Url};

use text::unset_if_empty;

pub const DEFAULT_DEFINITION: &str = include_str!("../../axoha.default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: ApplianceName,
    /// The appliance's own version (e.g. "2026.11.1"): shown in update bundles, boot entries
    /// and `axoha-update status`, and ordered (an older bundle is refused on a node:
    /// docs/update-versions.md); unset = the builder's version and the build key.
    #[serde(default, with = "unset_if_empty")]
    pub version: Option<Version>,
    pub profile: Profile,
    /// Unset: the profile's.
    #[serde(default, with = "unset_if_empty")]
    pub release: Option<Release>,
    /// The CPU level of the distribution tree (almalinux-10: `x86_64` is x86-64-v3).
    #[serde(default)]
    pub arch: Arch,
    /// Unset: the profile's.
    #[serde(default, with = "unset_if_empty")]
    pub mirror: Option<Url>,
    /// Signing key of the mirror's packages: an URL or a local file; unset = the profile's.
    #[serde(default, with = "unset_if_empty")]
    pub gpg_key: Option<KeySource>,
    #[serde(default)]
    pub extra_packages: Vec<PackageName>,
    /// The network daemon: `networkd` or `networkmanager` (debian-12 may run either, its
    /// default networkd; almalinux-10 has NetworkManager only). Unset: the profile's.
    #[serde(default)]
    pub network: Option<NetworkBackend>,
    /// SELinux: `permissive` or `enforcing`. Unset: the profile's (almalinux-10 enforcing,
    /// debian-12 none).
    #[serde(default)]
    pub selinux: Option<SelinuxMode>,
    pub disk_size: DiskSize,
    /// Size of each /usr slot (A and B).
    #[serde(default = "default_usr_slot_size")]
    pub usr_slot_size: SlotSize,
    /// zstd level of the /usr squashfs, 1-22: the build's largest stage (bench/build).
    #[serde(default)]
    pub usr_compression_level: CompressionLevel,
    #[serde(default)]
    pub kernel_cmdline: KernelCmdline,
    #[serde(default)]
    pub axorouter: AxorouterSource,
    #[serde(default)]
    pub cluster: ClusterDefaults,
    #[serde(default)]
    pub files: Vec<ExtraFile>,
    #[serde(default)]
    pub users: crate::users::Users,
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
    /// Unset: the image accepts no bundle.
    #[serde(default, with = "unset_if_empty")]
    pub public_key: Option<UpdateKey>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AxorouterSource {
    /// A local path or an http(s) URL.
    #[serde(default, with = "unset_if_empty")]
    pub package: Option<PackageSource>,
    /// Expected sha256 of the package (required to reuse a download offline).
    #[serde(default, with = "unset_if_empty")]
    pub sha256: Option<Sha256>,
    /// A package repository with the `axorouter` package instead of a package file:
    /// almalinux-10 a dnf baseurl, debian-12 `URL SUITE COMPONENT`.
    #[serde(default, with = "unset_if_empty")]
    pub repository: Option<Repository>,
    /// The key that repository is signed with (URL or local file; debian-12: a local file).
    #[serde(default, with = "unset_if_empty")]
    pub repository_key: Option<KeySource>,
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
        let mut words: Vec<&str> = self.kernel_cmdline.words().collect();
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

    /// The rules between values (each value was checked by its type when it was read): run
    /// again when the command line changes the profile or the mirror.
    pub fn check(&self) -> Result<()> {
        self.secure_boot.check()?;
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
        if let (Profile::Debian12, Some(KeySource::Url(url))) = (self.profile, &self.gpg_key) {
            bail!(
                "gpg_key = \"{url}\": the debian-12 profile takes a local keyring file, not an URL"
            );
        }
        let state = layout::state_bytes(self.disk_size.bytes(), self.usr_slot_size.bytes());
        if state.is_none_or(|s| s < MIN_STATE) {
            bail!(
                "disk_size = \"{}\": with usr_slot_size = \"{}\" (two slots), a {} MiB ESP and two \
                 {} MiB verity partitions, the state partition (/, /etc, /var) would have less \
                 than {} MiB; raise disk_size",
                self.disk_size,
                self.usr_slot_size,
                layout::ESP_SIZE >> 20,
                layout::VERITY_SIZE >> 20,
                MIN_STATE >> 20
            );
        }
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
        let homes: Vec<String> = self.users.iter().map(|u| u.home()).collect();
        extra_file::check_all(&self.files, &homes)?;
        Ok(())
    }

    fn check_axorouter_repository(&self) -> Result<()> {
        let a = &self.axorouter;
        let Some(repository) = &a.repository else {
            if let Some(key) = &a.repository_key {
                bail!("[axorouter] repository_key = \"{key}\" is set without a repository");
            }
            return Ok(());
        };
        if a.package.is_some() {
            bail!("[axorouter]: set package or repository, not both");
        }
        let shape_ok = match self.profile {
            Profile::Almalinux10 => repository.apt.is_none(),
            Profile::Debian12 => repository.apt.is_some(),
        };
        if !shape_ok {
            bail!(
                "[axorouter] repository = \"{repository}\": {} expects {}",
                self.profile.name(),
                match self.profile {
                    Profile::Almalinux10 => "a dnf baseurl (http://, https:// or file:/)",
                    Profile::Debian12 => "\"URL SUITE COMPONENT\"",
                }
            );
        }
        match (&a.repository_key, self.profile) {
            (None, _) => bail!(
                "[axorouter] repository = \"{repository}\" without repository_key: the \
                 repository's signing key (URL or file) is required: packages are never \
                 installed unchecked"
            ),
            (Some(KeySource::Url(url)), Profile::Debian12) => bail!(
                "[axorouter] repository_key = \"{url}\": the debian-12 profile takes a local \
                 key file, not an URL"
            ),
            (Some(_), _) => Ok(()),
        }
    }

    /// The baked `/usr/lib/axoha/cluster.toml`. SSH is let in on the VIP interface exactly
    /// when the image has login users, unless `[cluster.firewall] ssh` says otherwise.
    pub fn cluster_toml(&self) -> String {
        let mut cluster = self.cluster.table().clone();
        let firewall = cluster
            .entry("firewall")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // Anything but a table was refused by ClusterDefaults.
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
}

/// The least state partition a definition may leave: /etc, /var, logs and update downloads.
pub const MIN_STATE: u64 = 512 << 20;

fn default_usr_slot_size() -> SlotSize {
    "1G".parse().expect("a size in the slot range")
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
        assert_eq!(alma.boot_cmdline(), alma.kernel_cmdline.to_string().trim());
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
            ("name = \"axoha\"", "name = \"Axo Ha\"", "\"Axo Ha\": use 1-64"),
            (
                "version = \"\"",
                "version = \"1 2\"",
                "version \"1 2\" is not 1-64 of letters",
            ),
            (
                "version = \"\"",
                "version = \"1/../2\"",
                "version \"1/../2\" is not",
            ),
            ("release = \"\"", "release = \"12 x\"", "\"12 x\": letters"),
            ("disk_size = \"4G\"", "disk_size = \"3T\"", "\"3T\": unit must be G or M"),
            ("disk_size = \"4G\"", "disk_size = \"4 G\"", "\"4 G\": unit must be"),
            ("disk_size = \"4G\"", "disk_size = \"0G\"", "\"0G\": between 1G and 64G"),
            ("disk_size = \"4G\"", "disk_size = \"G\"", "\"G\": expected a whole"),
            ("disk_size = \"4G\"", "disk_size = 4", "expected a string"),
            (
                "disk_size = \"4G\"",
                "disk_size = \"2G\"",
                "disk_size = \"2G\": with usr_slot_size = \"1G\"",
            ),
            (
                "disk_size = \"4G\"",
                "disk_size = \"17592186048512M\"",
                "\"17592186048512M\": more bytes than a 64-bit size holds",
            ),
            (
                "disk_size = \"4G\"",
                "disk_size = \"17179869188G\"",
                "\"17179869188G\": more bytes than a 64-bit size holds",
            ),
            (
                "disk_size = \"4G\"",
                "disk_size = \"99999999999999999999G\"",
                "\"99999999999999999999G\": more than a 64-bit size holds",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"17592186045440M\"",
                "\"17592186045440M\": more bytes than a 64-bit size holds",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"17179869185G\"",
                "\"17179869185G\": more bytes",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"100M\"",
                "\"100M\": between 256M and 16G",
            ),
            (
                "usr_slot_size = \"1G\"",
                "usr_slot_size = \"1G\\t\"",
                "\"1G\\t\": unit must be",
            ),
            (
                "usr_compression_level = 6",
                "usr_compression_level = 0",
                "0: zstd levels are 1 to 22",
            ),
            (
                "usr_compression_level = 6",
                "usr_compression_level = 23",
                "23: zstd levels are 1 to 22",
            ),
            (
                "usr_compression_level = 6",
                "usr_compression_level = 256",
                "usr_compression_level = 256",
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
            (
                "mirror = \"\"",
                "mirror = \"ftp://x\"",
                "\"ftp://x\": expected an http://, https:// or file:/ URL",
            ),
            ("mirror = \"\"", "mirror = \"https://\"", "names no host or path"),
            (
                "mirror = \"\"",
                "mirror = \"https://m.example/a b\"",
                "\"https://m.example/a b\": an URL has no whitespace",
            ),
            (
                "mirror = \"\"",
                "mirror = \"https://m.example/\\u0000\"",
                "\"https://m.example/\\0\": an URL has no whitespace or control characters",
            ),
            (
                "package = \"\"",
                "package = \"ftp://console.example/axorouter.rpm\"",
                "give a local package file or an http(s) URL",
            ),
            (
                "package = \"\"",
                "package = \"https://console.example/dl/\"",
                "does not end in a package file name",
            ),
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
            (
                "gpg_key = \"\"",
                "gpg_key = \"a b\"",
                "\"a b\": a key's URL or file has no whitespace",
            ),
            (
                "repository = \"\"",
                "repository = \"https://pkg.example/el10\\n\"",
                "one line",
            ),
            ("arch = \"x86_64\"", "arch = \"x86_64_v3\"", "x86_64_v2"),
            (
                "# [[files]]",
                "[[files]]\npath = \"/usr/libexec/keepalived/axoha-vrrp-notify\"\ncontents = \"\"\n#",
                "belongs to the appliance",
            ),
            (
                "sha256 = \"\"",
                "sha256 = \"abc\"",
                "\"abc\": expected 64 hexadecimal digits",
            ),
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
            // A one-line value: its key and value as written, in the message or in TOML's
            // quote of the line (`[cluster]`'s are first boot's checks: they name both).
            if let Some((key, value)) = to.split_once(" = ").filter(|_| !to.contains('\n')) {
                assert!(err.contains(key) && err.contains(value), "{to}: {err}");
            }
        }
        // Rules between a value and the profile, named the same way.
        let debian =
            DEFAULT_DEFINITION.replace("profile = \"almalinux-10\"", "profile = \"debian-12\"");
        for (from, to, expect) in [
            (
                "gpg_key = \"\"",
                "gpg_key = \"https://k.example/key\"",
                "gpg_key = \"https://k.example/key\": the debian-12 profile takes a local keyring",
            ),
            (
                "repository = \"\"\nrepository_key = \"\"",
                "repository = \"https://pkg.example/debian stable main\"\n\
                 repository_key = \"https://pkg.example/key\"",
                "repository_key = \"https://pkg.example/key\": the debian-12 profile takes a \
                 local key file",
            ),
            (
                "repository = \"\"\nrepository_key = \"\"",
                "repository = \"https://pkg.example/debian\"\nrepository_key = \"k\"",
                "repository = \"https://pkg.example/debian\": debian-12 expects \"URL SUITE",
            ),
        ] {
            let text = debian.replace(from, to);
            assert_ne!(text, debian, "{from}");
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
            (
                format!("name = \"ops\"\nssh_keys = [{KEY:?}]\n[[users]]\nname = \"ops\"\nssh_keys = [{KEY:?}]"),
                "users: ops is defined twice",
            ),
        ] {
            let text = format!("{DEFAULT_DEFINITION}[[users]]\n{user}\n");
            let err = format!("{:#}", Definition::parse(&text, "x.toml").unwrap_err());
            assert!(err.contains(want), "{user}: {err}");
        }
    }
}
