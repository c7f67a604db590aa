//! The almalinux-10 rootfs: `dnf --installroot` from the mirror's BaseOS and AppStream
//! repositories, GPG-checked, into a tree that is then labelled and becomes the cache entry.
//!
//! Nothing of the build host's dnf or rpm configuration takes part: dnf reads only the
//! `dnf.conf` and repository file written here (`--config`, `reposdir`), and rpm's macros
//! come from a private `$HOME/.rpmmacros` that puts the database where AlmaLinux 10 keeps it.
//! (Debian's rpm would otherwise use `~/.rpmdb`, outside the tree.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_disk::tool::command;

use crate::definition::KeySource;
use crate::installed::RPMDB;
use crate::plan::Plan;
use crate::stages::api_filesystems;

/// The two repositories of an AlmaLinux release on a mirror (`MIRROR/RELEASE/NAME/ARCH/os/`).
const REPOS: [(&str, &str); 2] = [("axoha-baseos", "BaseOS"), ("axoha-appstream", "AppStream")];

/// What dnf leaves in the tree that differs from run to run and no appliance needs: its
/// caches, logs and transaction history.
const LEFTOVERS: [&str; 7] = [
    "var/cache/dnf",
    "var/lib/dnf",
    "var/log/dnf.log",
    "var/log/dnf.librepo.log",
    "var/log/dnf.rpm.log",
    "var/log/hawkey.log",
    "var/cache/ldconfig/aux-cache",
];

/// The signing key dnf checks every repository package against: the definition's `gpg_key`
/// (an URL, or a local path), else the key the mirror publishes for the release.
pub fn gpg_key_url(plan: &Plan) -> Result<String> {
    let Some(key) = &plan.definition.gpg_key else {
        let major = plan.release.split('.').next().unwrap_or(&plan.release);
        return Ok(format!(
            "{}/RPM-GPG-KEY-AlmaLinux-{major}",
            plan.mirror.trim_end_matches('/')
        ));
    };
    key_url(key).context("gpg_key")
}

/// A key as dnf's `gpgkey=` takes it: URLs as they are, local files as file:// URLs.
fn key_url(key: &KeySource) -> Result<String> {
    match key {
        KeySource::Url(url) => Ok(url.to_string()),
        KeySource::File(file) => {
            let path = std::fs::canonicalize(file).with_context(|| format!("\"{key}\""))?;
            Ok(format!("file://{}", path.display()))
        }
    }
}

/// The repository id of `[axorouter] repository`, when the package comes from one.
const AXOROUTER_REPO: &str = "axoha-axorouter";

fn repo_url(plan: &Plan, dir: &str) -> String {
    format!(
        "{}/{}/{dir}/{}/os/",
        plan.mirror.trim_end_matches('/'),
        plan.release,
        plan.arch.name()
    )
}

/// The `dnf.conf` and repository file; `gpgcheck` on for repository packages. The AxoRouter
/// package is a local file the operator downloaded: its sha256 is in the manifest instead.
fn write_config(plan: &Plan, work: &Path) -> Result<(PathBuf, PathBuf)> {
    let key = gpg_key_url(plan)?;
    let conf = work.join("dnf.conf");
    std::fs::write(
        &conf,
        "[main]\ngpgcheck=1\nlocalpkg_gpgcheck=0\ninstall_weak_deps=0\n\
         tsflags=nodocs\nskip_if_unavailable=0\nbest=1\nkeepcache=0\nretries=3\n",
    )?;
    let reposdir = work.join("repos");
    std::fs::create_dir_all(&reposdir)?;
    let mut repos = String::new();
    for (id, dir) in REPOS {
        repos.push_str(&format!(
            "[{id}]\nname=AlmaLinux {} {dir} (axoha build)\nbaseurl={}\ngpgcheck=1\ngpgkey={key}\nenabled=1\n\n",
            plan.release,
            repo_url(plan, dir)
        ));
    }
    if let Some(r) = &plan.axorouter.repository {
        repos.push_str(&format!(
            "[{AXOROUTER_REPO}]\nname=AxoRouter (axoha build)\nbaseurl={}\ngpgcheck=1\ngpgkey={}\nenabled=1\n",
            r.source,
            key_url(&r.key).context("[axorouter] repository_key")?
        ));
    }
    std::fs::write(reposdir.join("axoha.repo"), repos)?;
    let home = work.join("home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join(".rpmmacros"),
        format!("%_dbpath {RPMDB}\n%_db_backend sqlite\n"),
    )?;
    Ok((conf, reposdir))
}

fn dnf(work: &Path, conf: &Path, reposdir: &Path, plan: &Plan) -> std::process::Command {
    let release = &plan.release;
    let mut cmd = command("dnf");
    cmd.env("HOME", work.join("home"))
        .env("LC_ALL", "C.UTF-8")
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--setopt=reposdir={}", reposdir.display()))
        .arg(format!("--releasever={release}"))
        .args(["-y", "--disablerepo=*"]);
    if let Some(arch) = plan.arch.dnf_forcearch() {
        cmd.arg(format!("--forcearch={arch}"));
    }
    for (id, _) in REPOS {
        cmd.arg(format!("--enablerepo={id}"));
    }
    if plan.axorouter.repository.is_some() {
        cmd.arg(format!("--enablerepo={AXOROUTER_REPO}"));
    }
    cmd
}

/// What this stage is measured against (bench/build, issue 15): plain `dnf --installroot` of
/// the same repositories, key and distribution packages (and the AxoRouter package file) into
/// `out`, with none of our configuration.
pub fn floor_command(plan: &Plan, out: &str) -> Result<Vec<String>> {
    let key = gpg_key_url(plan)?;
    let mut argv: Vec<String> = vec![
        "dnf".into(),
        "-y".into(),
        format!("--installroot={out}"),
        format!("--releasever={}", plan.release),
        "--disablerepo=*".into(),
        "--setopt=reposdir=/nonexistent".into(),
    ];
    if let Some(arch) = plan.arch.dnf_forcearch() {
        argv.push(format!("--forcearch={arch}"));
    }
    for (id, dir) in REPOS {
        argv.push(format!("--repofrompath={id},{}", repo_url(plan, dir)));
        argv.push(format!("--enablerepo={id}"));
        argv.push(format!("--setopt={id}.gpgcheck=1"));
        argv.push(format!("--setopt={id}.gpgkey={key}"));
    }
    argv.push("install".into());
    argv.extend(plan.packages.iter().cloned());
    if let Some(f) = &plan.axorouter.file {
        argv.push(f.path.display().to_string());
    }
    Ok(argv)
}

/// Builds the tree in a private work directory next to `out` and moves it to `out`; the work
/// directory is removed whatever happens.
pub fn bootstrap(plan: &Plan, out: &Path) -> Result<()> {
    let mut work = out.as_os_str().to_owned();
    work.push(".dnf-work");
    let work = PathBuf::from(work);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = bootstrap_in(plan, &work, out);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn bootstrap_in(plan: &Plan, work: &Path, out: &Path) -> Result<()> {
    let (conf, reposdir) = write_config(plan, work)?;

    if let Some(arch) = plan.arch.dnf_forcearch() {
        check_dnf_knows(arch)?;
    }
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    let mut install = dnf(work, &conf, &reposdir, plan);
    install
        .arg(format!("--installroot={}", tree.display()))
        .args(["--nodocs", "--setopt=install_weak_deps=False", "install"])
        .args(&plan.packages);
    match &plan.axorouter.file {
        Some(f) => install.arg(&f.path),
        None => install.arg("axorouter"),
    };
    // Scriptlets (the kernel's runs dracut) need /proc, /sys and /dev in the tree.
    api_filesystems::bind_into(&mut install, &tree)?;
    let output = install.output().context("running dnf")?;
    if !output.status.success() {
        // Which failure: the repository metadata alone (same installroot, so the same cache)
        // names an unreachable mirror as such, instead of burying it in the transaction's
        // output. Only after a failure: a build that works runs dnf once (issue 15).
        let probe = dnf(work, &conf, &reposdir, plan)
            .arg(format!("--installroot={}", tree.display()))
            .arg("makecache")
            .output()
            .context("running dnf")?;
        if !probe.status.success() {
            bail!(
                "{}",
                unreachable_mirror(
                    &plan.mirror,
                    &plan.release,
                    &repo_url(plan, "BaseOS"),
                    &last_line(&probe.stderr)
                )
            );
        }
        bail!(
            "dnf --installroot from {} failed (a package missing from the mirror, or not signed \
             by {}?):\n{}",
            plan.mirror,
            gpg_key_url(plan)?,
            tail(&output.stderr, &output.stdout)
        );
    }

    for rel in LEFTOVERS {
        let p = tree.join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p)?;
        }
    }
    drop_rpmdb_side_files(&tree)?;
    kernel_to_boot(&tree)?;
    // Labels now, while the tree is the distribution's alone: the image layer then only
    // labels the files it adds (see axoha_selinux::label_tree).
    if tree.join("etc/selinux/targeted").is_dir() {
        axoha_selinux::label_tree(&tree, "targeted")?;
    }
    std::fs::rename(&tree, out).with_context(|| format!("moving the tree to {}", out.display()))
}

/// Where AlmaLinux keeps a minor release once the next one is out: same layout,
/// `VAULT/10.N/BaseOS/x86_64/os/`.
pub const VAULT: &str = "https://vault.almalinux.org";

/// The key AlmaLinux 10 is signed with, on its main mirror (the same for every minor).
const MAIN_MIRROR_KEY: &str = "https://repo.almalinux.org/almalinux/RPM-GPG-KEY-AlmaLinux-10";

/// The error for repository metadata that could not be fetched. A pinned minor release
/// (`release = "10.N"`) is served by the mirrors only until the next minor comes out, then by
/// the vault alone: that is the likely cause when the mirror itself is fine, so it is named.
fn unreachable_mirror(mirror: &str, release: &str, baseos_url: &str, dnf_said: &str) -> String {
    let mut message = format!(
        "AlmaLinux mirror {mirror} is unreachable or not an AlmaLinux {release} mirror \
         ({baseos_url}: {dnf_said}): pass --mirror URL with a reachable mirror (axoha never \
         switches profile silently)"
    );
    if is_pinned_minor(release) && !mirror.starts_with(VAULT) {
        message.push_str(&format!(
            ". AlmaLinux {release} is a pinned minor release: once the next minor is out, the \
             mirrors drop it and only the vault keeps it: --mirror {VAULT} (with gpg_key = \
             \"{MAIN_MIRROR_KEY}\"), or release = \"10\" for the current minor"
        ));
    }
    message
}

/// `10.0`, `10.1`, ...: a minor release, not the major's rolling `10`.
fn is_pinned_minor(release: &str) -> bool {
    match release.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// dnf refuses a `--forcearch` it does not know. Debian's dnf 4.14 (with rpm 4.18 and libsolv
/// 0.7.23) has no `x86_64_v2`: AlmaLinux patches dnf, rpm and libsolv for it. Said up front,
/// so the failure is not mistaken for an unreachable mirror.
fn check_dnf_knows(arch: &str) -> Result<()> {
    let out = command("dnf")
        .arg(format!("--forcearch={arch}"))
        .arg("--version")
        .output()
        .context("running dnf --version")?;
    if !out.status.success() {
        bail!(
            "arch = \"{arch}\": this build host's dnf does not know the architecture {arch} \
             ({}); AlmaLinux patches dnf, rpm and libsolv for it: build this image on an \
             AlmaLinux 10 host, or use arch = \"x86_64\" (x86-64-v3 CPUs)",
            last_line(&out.stderr)
        );
    }
    Ok(())
}

/// Puts `/boot/vmlinuz-VER` in the tree, where the appliance layer finds the kernel for the
/// ESP (AlmaLinux's kernel package ships it in `/usr/lib/modules/VER/`). No initramfs is made
/// here: the initrd stage makes the image's (`stages/initrd.rs`, with our dracut module), and
/// whatever the kernel's scriptlet left in /boot stays out of the image
/// (`esp::drop_boot_copies`). A tree without a kernel is left alone.
fn kernel_to_boot(tree: &Path) -> Result<()> {
    let Some(version) = newest_kernel(tree)? else {
        return Ok(());
    };
    let boot = tree.join("boot");
    std::fs::create_dir_all(&boot)?;
    let kernel = boot.join(format!("vmlinuz-{version}"));
    if !kernel.is_file() {
        std::fs::copy(
            tree.join("usr/lib/modules").join(&version).join("vmlinuz"),
            &kernel,
        )
        .with_context(|| format!("copying the kernel {version} to /boot"))?;
    }
    Ok(())
}

/// The newest kernel version with a `vmlinuz` in `/usr/lib/modules/`, if any.
fn newest_kernel(tree: &Path) -> Result<Option<String>> {
    let modules = tree.join("usr/lib/modules");
    let dirs = match std::fs::read_dir(&modules) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", modules.display())),
    };
    let mut versions: Vec<String> = dirs
        .flatten()
        .filter(|e| e.path().join("vmlinuz").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    Ok(versions.pop())
}

/// rpm's sqlite database is complete in `rpmdb.sqlite` once the write-ahead log is empty;
/// the empty log and the shared-memory index (which differs from run to run) are recreated
/// on first use, so they stay out of the image.
fn drop_rpmdb_side_files(tree: &Path) -> Result<()> {
    let db = tree.join(RPMDB.trim_start_matches('/'));
    let wal = db.join("rpmdb.sqlite-wal");
    if let Ok(md) = std::fs::metadata(&wal) {
        if md.len() != 0 {
            bail!(
                "the rpm database's write-ahead log {} is not empty after dnf: refusing to pack \
                 a database that is not self-contained",
                wal.display()
            );
        }
        std::fs::remove_file(&wal)?;
    }
    let shm = db.join("rpmdb.sqlite-shm");
    if shm.exists() {
        std::fs::remove_file(&shm)?;
    }
    Ok(())
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The end of what dnf printed: its reason is in the last lines.
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_minor_that_cannot_be_fetched_points_to_the_vault() {
        let url = "https://repo.almalinux.org/almalinux/10.0/BaseOS/x86_64/os/";
        let pinned = unreachable_mirror("https://repo.almalinux.org/almalinux", "10.0", url, "404");
        assert!(
            pinned.starts_with(
                "AlmaLinux mirror https://repo.almalinux.org/almalinux is unreachable"
            ),
            "{pinned}"
        );
        assert!(pinned.contains(url) && pinned.contains("404"), "{pinned}");
        assert!(pinned.contains("pinned minor release"), "{pinned}");
        assert!(
            pinned.contains("--mirror https://vault.almalinux.org"),
            "{pinned}"
        );
        assert!(pinned.contains(MAIN_MIRROR_KEY), "{pinned}");

        // The rolling major, or the vault itself: nothing about the vault.
        for (mirror, release) in [
            ("https://repo.almalinux.org/almalinux", "10"),
            ("https://vault.almalinux.org", "10.0"),
        ] {
            let m = unreachable_mirror(mirror, release, url, "404");
            assert!(
                !m.contains("vault.almalinux.org/") && !m.contains("pinned"),
                "{m}"
            );
        }
    }

    #[test]
    fn pinned_minors() {
        for r in ["10.0", "10.1", "9.10"] {
            assert!(is_pinned_minor(r), "{r}");
        }
        for r in ["10", "10.", ".1", "10.x", "10.0.1", "bookworm", ""] {
            assert!(!is_pinned_minor(r), "{r}");
        }
    }
}
