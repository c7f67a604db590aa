//! A local AlmaLinux-shaped package repository for the almalinux-10 rootfs tests (the real
//! mirror is not reachable from our machines): small noarch rpms built here with rpmbuild,
//! signed with a throw-away GPG key by rpmsign, indexed by createrepo_c, laid out as a mirror
//! (`ROOT/RELEASE/{BaseOS,AppStream}/x86_64/os/`) with the key at
//! `ROOT/RPM-GPG-KEY-AlmaLinux-10`, where axoha-image looks for it by default.
//!
//! The packages carry the profile's package names so that `dnf --installroot` resolves the
//! same request it makes against the real mirror; each holds one marker file,
//! `/usr/share/axoha-test-repo/NAME`. They are test data, not the distribution.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::demo::{sh, EPOCH};
use crate::signing::{gpg, signing_key, stop_agent, SIGNER};

pub const KEY_NAME: &str = "RPM-GPG-KEY-AlmaLinux-10";

/// One package of the test repository.
pub struct Package {
    pub name: &'static str,
    /// `BaseOS` or `AppStream`.
    pub repo: &'static str,
    pub requires: Vec<String>,
    pub provides: Vec<String>,
    /// Left unsigned: dnf must refuse it.
    pub unsigned: bool,
    /// Files besides the marker.
    pub files: Vec<PackageFile>,
    /// A `%posttrans` scriptlet in rpm's embedded Lua: it runs in the tree, which has no shell.
    pub posttrans_lua: Option<String>,
}

/// A file of a test package: its path in the tree, where its bytes come from, its mode.
pub struct PackageFile {
    pub path: String,
    pub source: FileSource,
    pub mode: u32,
}

pub enum FileSource {
    Text(String),
    /// A file of the test machine, copied (e.g. a static busybox to run in the tree).
    Copy(PathBuf),
}

impl Package {
    pub fn new(name: &'static str, repo: &'static str) -> Package {
        Package {
            name,
            repo,
            requires: Vec::new(),
            provides: Vec::new(),
            unsigned: false,
            files: Vec::new(),
            posttrans_lua: None,
        }
    }
}

/// Builds, signs and indexes `packages` into a mirror at `root` for `release`.
pub fn build(root: &Path, release: &str, packages: &[Package], gnupg: &Path) {
    let top = root.with_extension("rpmbuild");
    let _ = std::fs::remove_dir_all(&top);
    for pkg in packages {
        let spec = top.join(format!("{}.spec", pkg.name));
        std::fs::create_dir_all(&top).unwrap();
        let sources = file_sources(&top, pkg);
        std::fs::write(&spec, spec_text(pkg, &sources)).unwrap();
        sh(Command::new("rpmbuild")
            .args(["-bb", "--quiet"])
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args([
                "--define",
                "_build_id_links none",
                "--define",
                "use_source_date_epoch_as_buildtime 1",
                "--define",
                "_buildhost axoha",
                // Test packages carry a static busybox: no stripping, no complaint about a
                // binary in a noarch package.
                "--define",
                "__os_install_post %{nil}",
                "--define",
                "_binaries_in_noarch_packages_terminate_build 0",
            ])
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg(&spec));
        let rpm = top
            .join("RPMS/noarch")
            .join(format!("{}-1.0-1.noarch.rpm", pkg.name));
        assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
        if !pkg.unsigned {
            sign(&rpm, gnupg);
        }
        let dest = root.join(release).join(pkg.repo).join("x86_64/os/Packages");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::rename(&rpm, dest.join(rpm.file_name().unwrap())).unwrap();
    }
    for repo in ["BaseOS", "AppStream"] {
        let dir = root.join(release).join(repo).join("x86_64/os");
        std::fs::create_dir_all(&dir).unwrap();
        sh(Command::new("createrepo_c").arg("--quiet").arg(&dir));
    }
    let key = sh(gpg(gnupg).args(["--armor", "--export", SIGNER]));
    std::fs::write(root.join(KEY_NAME), key.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&top);
    stop_agent(gnupg);
}

/// A one-package repository at `root` holding a signed copy of `rpm` (signed with a key of
/// its own, made in `root`), indexed by createrepo_c; returns the path of its public key.
pub fn single(root: &Path, rpm: &Path) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    let gnupg = signing_key(root);
    let copy = root.join(rpm.file_name().unwrap());
    std::fs::copy(rpm, &copy).unwrap();
    sign(&copy, &gnupg);
    sh(Command::new("createrepo_c").arg("--quiet").arg(root));
    let key = root.join("RPM-GPG-KEY-repository");
    let exported = sh(gpg(&gnupg).args(["--armor", "--export", SIGNER]));
    std::fs::write(&key, exported.stdout).unwrap();
    stop_agent(&gnupg);
    key
}

/// Signs `rpm` in place with the key in `gnupg` (rpmsign calls gpg; Debian's rpm defaults to
/// a gpg2 binary that Debian does not have).
fn sign(rpm: &Path, gnupg: &Path) {
    sh(Command::new("rpmsign")
        .arg("--addsign")
        .arg("--define")
        .arg(format!("_gpg_name {SIGNER}"))
        .arg("--define")
        .arg(format!("_gpg_path {}", gnupg.display()))
        .args(["--define", "__gpg /usr/bin/gpg"])
        .arg(rpm));
}

/// Where each of the package's files is read from at build time: text files are written
/// into `top` first.
fn file_sources(top: &Path, pkg: &Package) -> Vec<PathBuf> {
    pkg.files
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.source {
            FileSource::Copy(path) => path.clone(),
            FileSource::Text(text) => {
                let path = top.join(format!("{}-file-{i}", pkg.name));
                std::fs::write(&path, text).unwrap();
                path
            }
        })
        .collect()
}

fn spec_text(pkg: &Package, sources: &[PathBuf]) -> String {
    let mut deps = String::new();
    for r in &pkg.requires {
        deps.push_str(&format!("Requires: {r}\n"));
    }
    for p in &pkg.provides {
        deps.push_str(&format!("Provides: {p}\n"));
    }
    let mut install = String::new();
    let mut files = String::new();
    for (f, source) in pkg.files.iter().zip(sources) {
        install.push_str(&format!(
            "install -D -m {:o} {} %{{buildroot}}{}\n",
            f.mode,
            source.display(),
            f.path
        ));
        files.push_str(&format!("{}\n", f.path));
    }
    let posttrans = pkg
        .posttrans_lua
        .as_ref()
        .map(|lua| format!("\n%posttrans -p <lua>\n{lua}\n"))
        .unwrap_or_default();
    format!(
        "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: axoha test repository package {name}\n\
         License: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n{deps}\n\
         %description\nTest data for axoha's almalinux-10 rootfs test, not the distribution's {name}.\n\n\
         %install\nmkdir -p %{{buildroot}}/usr/share/axoha-test-repo\n\
         echo {name} > %{{buildroot}}/usr/share/axoha-test-repo/{name}\n{install}\n\
         %files\n/usr/share/axoha-test-repo/{name}\n{files}{posttrans}",
        name = pkg.name
    )
}

/// The run-time requirements of an rpm (`rpm -qpR`), without rpmlib's own features.
pub fn requirements(rpm: &Path) -> Vec<String> {
    let out = sh(Command::new("rpm").args(["-qpR", "--nosignature"]).arg(rpm));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("rpmlib(") && !l.starts_with('/'))
        .map(str::to_owned)
        .collect()
}
