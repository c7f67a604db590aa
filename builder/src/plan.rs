//! Stage 1, plan: every input resolved, checked and hashed before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use axoha_disk::hash::{sha256_bytes, sha256_file};
use axoha_disk::tool::{self, command, run};

use crate::arch::Arch;
use crate::definition::{Definition, KeySource, PackageSource, Url};
use crate::fetch;
use crate::own_files::{FIRSTBOOT_BIN, METRICS_BIN, UPDATE_BIN};
use crate::profile::Profile;
use crate::progress::Progress;

/// One input file with its hash.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    pub path: PathBuf,
    pub sha256: String,
}

impl Input {
    pub fn hash(path: &Path) -> Result<Input> {
        Ok(Input {
            path: path.to_owned(),
            sha256: sha256_file(path)?,
        })
    }
}

/// The AxoRouter package as resolved: its identity and whether it is our test stand-in.
#[derive(Debug, Clone, Serialize)]
pub struct Axorouter {
    /// The package file (local, or downloaded from `url`); `None` when it comes from
    /// `repository`.
    pub file: Option<Input>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    pub name: String,
    pub version: String,
    pub standin: bool,
}

/// `[axorouter] repository`: the package is installed by name from there.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    pub source: crate::definition::Repository,
    pub key: KeySource,
    /// A local key file by its contents (an URL key counts by itself).
    pub key_sha256: Option<String>,
}

/// What the caller asked for, after the definition and the command line are merged.
pub struct Request {
    pub definition: Definition,
    /// The package file, local or downloaded (see `fetch`).
    pub axorouter: Option<PathBuf>,
    /// Where it was downloaded from, for the manifest.
    pub axorouter_url: Option<Url>,
    pub firstboot_bin: PathBuf,
    pub update_bin: PathBuf,
    pub metrics_bin: PathBuf,
    pub demo: bool,
    pub epoch: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub definition: Definition,
    pub definition_sha256: String,
    pub profile: Profile,
    pub release: String,
    pub arch: Arch,
    pub mirror: String,
    pub packages: Vec<String>,
    pub axorouter: Axorouter,
    pub firstboot: Input,
    /// axoha-update, baked to /usr/bin and into the initrd.
    pub update: Input,
    /// axoha-metrics, baked to /usr/bin (not into the initrd).
    pub metrics: Input,
    pub source_date_epoch: i64,
    /// `<name>[-demo]-<profile>`: the artifacts' base name.
    pub artifact_name: String,
    /// Identifies the cached rootfs: everything that determines it, nothing else.
    pub rootfs_key: String,
    /// Identifies the whole build: the rootfs key plus our own files.
    pub build_key: String,
    pub tools: BTreeMap<String, String>,
    /// `[secure_boot]`'s certificate and key, checked to be a pair; `None`: unsigned.
    pub signer: Option<crate::secure_boot::Signer>,
}

/// Tools each profile's build calls.
pub fn required_tools(profile: Profile) -> Vec<&'static str> {
    let mut t = vec![
        "tar",
        "zstd",
        "mkfs.ext4",
        "debugfs",
        "mkfs.vfat",
        "mcopy",
        "sfdisk",
        "qemu-img",
        "systemctl",
        "chroot",
        "cp",
        "mksquashfs",
        "unsquashfs",
        "veritysetup",
    ];
    match profile {
        Profile::Debian12 => t.extend(["mmdebstrap", "dpkg-deb"]),
        Profile::Almalinux10 => t.extend([
            "dnf",
            "rpm",
            "checkmodule",
            "semodule_package",
            "semodule",
            "setfiles",
        ]),
    }
    t
}

pub fn plan(req: Request) -> Result<Plan> {
    let def = &req.definition;
    let profile = def.profile;
    if def.axorouter.repository.is_some() && req.axorouter.is_none() {
        return plan_with(req, None);
    }
    let Some(package) = req.axorouter.clone() else {
        bail!(
            "no AxoRouter package: AxoRouter is not public; download the {} package for {} from \
             your AxoConsole and pass --axorouter PATH (or set [axorouter] package in axoha.toml)",
            profile.package_extension(),
            profile.name()
        );
    };
    if package.extension().and_then(|e| e.to_str()) != Some(profile.package_extension()) {
        bail!(
            "--axorouter {}: the {} profile needs a .{} package",
            package.display(),
            profile.name(),
            profile.package_extension()
        );
    }
    if !package.is_file() {
        bail!("--axorouter {}: no such file", package.display());
    }
    let axorouter = identify(&package, profile)?;
    if axorouter.standin && !req.demo {
        bail!(
            "{} is the axoha test stand-in for AxoRouter, not the product: pass --demo to build a \
             demo image (its name and manifest say so)",
            package.display()
        );
    }
    if !axorouter.standin && req.demo {
        bail!(
            "--demo is only for the stand-in AxoRouter package; {} is a real one",
            package.display()
        );
    }
    plan_with(req, Some(axorouter))
}

/// The rest of the plan, with the AxoRouter package identified (`None`: from the repository;
/// it is checked once installed, see `check_installed_axorouter`).
fn plan_with(req: Request, identified: Option<Axorouter>) -> Result<Plan> {
    let def = req.definition;
    let profile = def.profile;
    tool::require(&required_tools(profile))?;
    for (path, installed, flag) in [
        (&req.firstboot_bin, FIRSTBOOT_BIN, "--firstboot-bin"),
        (&req.update_bin, UPDATE_BIN, "--update-bin"),
        (&req.metrics_bin, METRICS_BIN, "--metrics-bin"),
    ] {
        if !path.is_file() {
            let name = binary_name(installed);
            bail!(
                "{name} binary not found at {} (build it with `cargo build --release -p {name}`, \
                 or pass {flag})",
                path.display()
            );
        }
    }
    let axorouter = match identified {
        Some(mut a) => {
            a.url = req.axorouter_url.clone();
            a
        }
        None => {
            let (Some(source), Some(key)) =
                (&def.axorouter.repository, &def.axorouter.repository_key)
            else {
                bail!("no AxoRouter package and no [axorouter] repository with its key");
            };
            let key_sha256 = key
                .file()
                .map(|f| {
                    sha256_file(f)
                        .with_context(|| format!("[axorouter] repository_key = \"{key}\""))
                })
                .transpose()?;
            Axorouter {
                file: None,
                repository: Some(Repository {
                    source: source.clone(),
                    key: key.clone(),
                    key_sha256,
                }),
                url: None,
                name: "axorouter".into(),
                version: "(from the repository)".into(),
                // The operator's word until the package is installed and checked.
                standin: req.demo,
            }
        }
    };
    let release = def
        .release
        .as_ref()
        .map_or(profile.default_release(), |r| r.as_str())
        .to_owned();
    let arch = def.arch;
    let mirror = def
        .mirror
        .as_ref()
        .map_or(profile.default_mirror(), Url::as_str)
        .to_owned();
    let mut packages: Vec<String> = profile.packages().iter().map(|s| s.to_string()).collect();
    packages.extend(
        profile
            .network_packages(def.network())
            .iter()
            .map(|s| s.to_string()),
    );
    if def.selinux().is_some() {
        packages.extend(profile.selinux_packages().iter().map(|s| s.to_string()));
    }
    packages.extend(def.extra_packages.iter().map(|p| p.as_str().to_owned()));
    packages.sort();
    packages.dedup();

    // A local key file counts by its contents; an URL by itself (it is fetched at build time).
    let gpg_key = def.gpg_key.as_ref().map(KeySource::to_string);
    let gpg_key_sha256 = def
        .gpg_key
        .as_ref()
        .and_then(KeySource::file)
        .map(|f| sha256_file(f).with_context(|| format!("gpg_key = \"{}\"", f.display())))
        .transpose()?;
    let mut tools = BTreeMap::new();
    for (t, arg) in [
        ("mmdebstrap", "--version"),
        ("dnf", "--version"),
        ("mkfs.ext4", "-V"),
        ("mkfs.vfat", "--help"),
        ("mcopy", "--version"),
        ("sfdisk", "--version"),
        ("qemu-img", "--version"),
        ("mksquashfs", "-version"),
        ("veritysetup", "--version"),
    ] {
        tools.insert(t.to_owned(), tool::version(t, arg));
    }
    let definition_sha256 = sha256_bytes(serde_json::to_string(&def)?.as_bytes());
    let rootfs_key = RootfsInputs {
        format: 2,
        profile: profile.name(),
        release: &release,
        arch: arch.name(),
        mirror: &mirror,
        packages: &packages,
        gpg_key: gpg_key.as_deref().unwrap_or(""),
        gpg_key_sha256: gpg_key_sha256.as_deref(),
        axorouter: axorouter.file.as_ref().map(|f| f.sha256.as_str()),
        axorouter_repository: axorouter.repository.as_ref(),
        bootstrap_tool: tools
            .get(if profile == Profile::Debian12 {
                "mmdebstrap"
            } else {
                "dnf"
            })
            .map(String::as_str),
        source_date_epoch: req.epoch,
    }
    .key()?;
    let firstboot = Input::hash(&req.firstboot_bin)?;
    let update = Input::hash(&req.update_bin)?;
    let metrics = Input::hash(&req.metrics_bin)?;
    let signer = crate::secure_boot::Signer::load(&def.secure_boot)?;
    // The certificate's bytes, not only its path: another key set is another disk.
    // And the enrolment files: another key set on the ESP is another disk.
    let signed_for = signer
        .as_ref()
        .map_or("unsigned".to_owned(), |s| match &s.enrolment {
            Some(e) => format!("{} {} {}", s.certificate_sha256, e.mode.name(), e.sha256),
            None => s.certificate_sha256.clone(),
        });
    let build_key = sha256_bytes(
        format!(
            "{rootfs_key}\n{definition_sha256}\n{}\n{}\n{}\n{}\n{}\n{signed_for}",
            firstboot.sha256,
            update.sha256,
            metrics.sha256,
            own_files_hash(),
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    let artifact_name = if axorouter.standin {
        format!("{}-demo-{}", def.name, profile.name())
    } else {
        format!("{}-{}", def.name, profile.name())
    };
    Ok(Plan {
        definition: def,
        definition_sha256,
        profile,
        release,
        arch,
        mirror,
        packages,
        axorouter,
        firstboot,
        update,
        metrics,
        source_date_epoch: req.epoch,
        artifact_name,
        rootfs_key,
        build_key,
        tools,
        signer,
    })
}

/// Everything that determines the distribution tree, and nothing else: its hash names the
/// cached rootfs (`stages/rootfs.rs`).
#[derive(Serialize)]
struct RootfsInputs<'a> {
    /// 2: the cache is the tree itself, AxoRouter installed by apt with the distribution.
    format: u32,
    profile: &'a str,
    release: &'a str,
    /// x86_64 and x86_64_v2 are different trees of different packages.
    arch: &'a str,
    mirror: &'a str,
    packages: &'a [String],
    gpg_key: &'a str,
    gpg_key_sha256: Option<&'a str>,
    axorouter: Option<&'a str>,
    axorouter_repository: Option<&'a Repository>,
    bootstrap_tool: Option<&'a str>,
    source_date_epoch: i64,
}

impl RootfsInputs<'_> {
    fn key(&self) -> Result<String> {
        Ok(sha256_bytes(
            serde_json::to_string(self)
                .context("serializing the rootfs inputs")?
                .as_bytes(),
        ))
    }
}

/// The hash of the files this crate bakes into every image (units, presets).
fn own_files_hash() -> String {
    let mut all = String::new();
    for (path, contents, mode) in crate::own_files::OWN_FILES {
        all.push_str(&format!("{path}\0{mode:o}\0{contents}\0"));
    }
    sha256_bytes(all.as_bytes())
}

/// Reads the package's name, version and description; the stand-in says so in its description.
fn identify(path: &Path, profile: Profile) -> Result<Axorouter> {
    let fields = match profile {
        Profile::Debian12 => {
            let out = run(command("dpkg-deb").arg("-f").arg(path).args([
                "Package",
                "Version",
                "Description",
            ]))
            .with_context(|| format!("reading {}", path.display()))?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Profile::Almalinux10 => {
            let out = run(command("rpm")
                .args(["-qp", "--nosignature", "--nodigest", "--qf", "Package: %{NAME}\nVersion: %{VERSION}-%{RELEASE}\nDescription: %{SUMMARY} %{DESCRIPTION}\n"])
                .arg(path))
            .with_context(|| format!("reading {}", path.display()))?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let name = field("Package");
    if name != "axorouter" {
        bail!("{}: package {name:?} is not axorouter", path.display());
    }
    Ok(Axorouter {
        file: Some(Input::hash(path)?),
        repository: None,
        url: None,
        version: field("Version"),
        standin: fields.to_lowercase().contains("stand-in"),
        name,
    })
}

/// SOURCE_DATE_EPOCH, or the start of today (UTC): builds on the same day with the same
/// inputs are identical and share the rootfs cache.
pub fn source_date_epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            Ok(now - now % 86_400)
        }
    }
}

/// What the command line sets over the definition (no clap types here: `main.rs` fills it).
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub profile: Option<Profile>,
    pub mirror: Option<Url>,
    pub axorouter: Option<PackageSource>,
    pub axorouter_sha256: Option<crate::definition::Sha256>,
    pub demo: bool,
    /// Where a downloaded AxoRouter package is kept.
    pub cache: PathBuf,
    pub firstboot_bin: Option<PathBuf>,
    pub update_bin: Option<PathBuf>,
    pub metrics_bin: Option<PathBuf>,
}

/// The name of one of our binaries: its file name in the image, which is also its package's.
fn binary_name(installed: &'static str) -> &'static str {
    installed.rsplit('/').next().unwrap_or(installed)
}

/// Our binary installed at `installed`: the one given, else the one next to this program.
fn sibling(given: &Option<PathBuf>, installed: &'static str) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => next_to_this_program(binary_name(installed)),
    }
}

/// The workspace binary `name` next to this program (where `cargo build` puts every binary
/// of the workspace): the image's binaries and the PXE installer.
pub fn next_to_this_program(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("this program's path")?
        .parent()
        .with_context(|| format!("locating {name}"))?
        .join(name))
}

/// The definition with the command line applied, planned: the definition loaded and checked
/// again with the overrides, the binaries found (next to this program unless given), the
/// AxoRouter package fetched or checked, then every input resolved and hashed.
pub fn load(args: &Overrides, progress: &mut Progress) -> Result<Plan> {
    let mut definition = Definition::load(args.config.as_deref())?;
    if let Some(p) = args.profile {
        definition.profile = p;
    }
    if let Some(m) = &args.mirror {
        definition.mirror = Some(m.clone());
    }
    definition
        .check()
        .context("after applying the command line")?;
    let firstboot_bin = sibling(&args.firstboot_bin, FIRSTBOOT_BIN)?;
    let update_bin = sibling(&args.update_bin, UPDATE_BIN)?;
    let metrics_bin = sibling(&args.metrics_bin, METRICS_BIN)?;
    progress.stage("plan");
    let source = args
        .axorouter
        .as_ref()
        .or(definition.axorouter.package.as_ref());
    let sha256 = args
        .axorouter_sha256
        .as_ref()
        .or(definition.axorouter.sha256.as_ref());
    let (axorouter, axorouter_url) = match source {
        Some(PackageSource::Download(url)) => {
            progress.note(&format!("downloading {url}"));
            (
                Some(fetch::fetch(url, sha256, &args.cache)?),
                Some(url.clone()),
            )
        }
        Some(PackageSource::File(path)) => {
            if let Some(want) = sha256 {
                fetch::check_file(path, want)?;
            }
            (Some(path.clone()), None)
        }
        None => (None, None),
    };
    let plan = plan(Request {
        definition,
        axorouter,
        axorouter_url,
        firstboot_bin,
        update_bin,
        metrics_bin,
        demo: args.demo,
        epoch: source_date_epoch()?,
    })?;
    progress.note(&format!(
        "{} ({}), AxoRouter {} {}{}",
        plan.artifact_name,
        plan.release,
        plan.axorouter.name,
        plan.axorouter.version,
        if plan.axorouter.standin {
            " [DEMO stand-in]"
        } else {
            ""
        }
    ));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_key_covers_the_cpu_level() {
        let packages = vec!["kernel".to_owned()];
        let inputs = |arch: Arch| RootfsInputs {
            format: 2,
            profile: "almalinux-10",
            release: "10",
            arch: arch.name(),
            mirror: "https://mirror.example/almalinux",
            packages: &packages,
            gpg_key: "",
            gpg_key_sha256: None,
            axorouter: Some("00"),
            axorouter_repository: None,
            bootstrap_tool: Some("4.14.0"),
            source_date_epoch: 1,
        };
        let v3 = inputs(Arch::X86_64).key().unwrap();
        assert_eq!(v3, inputs(Arch::X86_64).key().unwrap());
        assert_ne!(v3, inputs(Arch::X86_64V2).key().unwrap());
    }
}
