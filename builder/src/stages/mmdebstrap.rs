//! The debian-12 rootfs: `mmdebstrap` (minbase plus the profile's packages and AxoRouter)
//! straight into the cache's directory, checked against the host's Debian archive keyring or
//! the definition's `gpg_key`.
//!
//! The AxoRouter .deb is given to `--include`, so apt installs it in the same transaction as
//! the distribution (its dependencies resolved, one dpkg run). dpkg unpacks with
//! `force-unsafe-io` (no fsync per file; `rootfs.rs` syncs the tree once before it becomes the
//! cache), which makes the stage faster than plain mmdebstrap (bench/build); the option is
//! taken out of the tree's dpkg configuration afterwards. (mmdebstrap's `eatmydata` hook was as
//! fast in our measurement, but fetches eatmydata from the mirror, which a partial mirror may
//! not have.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_disk::tool::command;

use crate::plan::Plan;

/// `--keyring=FILE` when the definition names its own archive key (a local file: apt checks
/// the mirror's Release signature against it), else mmdebstrap's default, the host's
/// debian-archive-keyring.
fn keyring(plan: &Plan) -> Result<Vec<String>> {
    let Some(key) = &plan.definition.gpg_key else {
        return Ok(Vec::new());
    };
    // An URL was refused with the definition (`Definition::check`).
    let Some(file) = key.file() else {
        bail!("gpg_key = \"{key}\": the debian-12 profile takes a local keyring file, not an URL");
    };
    let path = std::fs::canonicalize(file).with_context(|| format!("gpg_key = \"{key}\""))?;
    Ok(vec![format!("--keyring={}", path.display())])
}

/// apt uses a `file:` repository's packages where they lie, and dpkg, which mmdebstrap runs
/// inside the new tree, then cannot see them; apt's `copy:` method fetches them into the
/// tree's cache like any download (mmdebstrap says the same when it fails).
fn apt_uri(url: &str) -> String {
    match url.strip_prefix("file:") {
        Some(rest) => format!("copy:{rest}"),
        None => url.to_owned(),
    }
}

/// The distribution's three apt sources (release, updates, security) of the plan's mirror.
fn sources(plan: &Plan) -> [String; 3] {
    let m = apt_uri(plan.mirror.trim_end_matches('/'));
    let suite = &plan.release;
    let security = if m == "http://deb.debian.org/debian" {
        "http://deb.debian.org/debian-security".to_owned()
    } else {
        format!("{m}-security")
    };
    [
        format!("deb {m} {suite} main"),
        format!("deb {m} {suite}-updates main"),
        format!("deb {security} {suite}-security main"),
    ]
}

/// What this stage is measured against (bench/build, issue 15): plain mmdebstrap of the same
/// mirror, release and distribution packages into a tar at `out`, none of our options.
pub fn floor_command(plan: &Plan, out: &str) -> Vec<String> {
    let mut argv: Vec<String> = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=tar",
    ]
    .map(str::to_owned)
    .to_vec();
    argv.push(format!("--include={}", plan.packages.join(",")));
    argv.push(plan.release.clone());
    argv.push(out.to_owned());
    argv.extend(sources(plan));
    argv
}

pub fn bootstrap(plan: &Plan, out: &Path) -> Result<()> {
    let m = plan.mirror.trim_end_matches('/');
    let suite = &plan.release;
    let mut include = plan.packages.clone();
    let mut cmd = command("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", plan.source_date_epoch.to_string())
        // Debian's dracut kernel hook (/etc/kernel/postinst.d/dracut, also run by dracut's
        // trigger) skips its initrd when INITRD=No: the initrd stage makes the image's own
        // (with our module), and the distribution's was thrown away unused (~40 s, issue 15).
        .env("INITRD", "No")
        .args(["--mode=root", "--variant=minbase", "--format=directory"])
        .arg("--aptopt=Acquire::Retries \"3\"")
        .args(keyring(plan)?)
        // Documentation and translations are dead weight on an appliance.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            "--dpkgopt=force-unsafe-io",
        ]);
    let mut extra_source = None;
    let mut package_file = None;
    match (&plan.axorouter.file, &plan.axorouter.repository) {
        (Some(f), _) => {
            // A package file: apt (outside the tree) reads it at its path, dpkg (inside)
            // at the same path in the tree, so a copy sits at one /tmp path in both. apt takes
            // a path only when it ends in .deb, mmdebstrap one without a comma: our own name.
            let copy = PackageCopy::new(&f.path)?;
            let dir = copy.dir.display().to_string();
            cmd.arg(format!("--essential-hook=mkdir -p \"$1{dir}\""))
                .arg(format!(
                    "--essential-hook=upload {} {}",
                    copy.path.display(),
                    copy.path.display()
                ))
                .arg(format!("--include={}", copy.path.display()))
                .arg(format!("--customize-hook=rm -r \"$1{dir}\""));
            package_file = Some(copy);
        }
        (None, Some(r)) => {
            // A repository: one more apt source, checked against its own key only.
            // Definition::check refused a debian-12 repository without suite and component
            // or with an URL key.
            let (Some((dist, component)), Some(file)) = (&r.source.apt, r.key.file()) else {
                bail!(
                    "[axorouter] repository = \"{}\" with repository_key = \"{}\": debian-12 \
                     takes \"URL SUITE COMPONENT\" and a local key file",
                    r.source,
                    r.key
                );
            };
            let key = std::fs::canonicalize(file)
                .with_context(|| format!("[axorouter] repository_key = \"{}\"", r.key))?;
            extra_source = Some(format!(
                "deb [signed-by={}] {} {dist} {component}",
                key.display(),
                apt_uri(r.source.url.as_str())
            ));
            include.push("axorouter".into());
        }
        (None, None) => bail!("no AxoRouter package or repository in the plan"),
    }
    cmd.arg(format!("--include={}", include.join(",")))
        // For the build only: a node's dpkg (if ever run) keeps its fsyncs.
        .arg(format!(
            "--customize-hook=sed -i '/^force-unsafe-io$/d' \"$1\"{DPKG_OPTIONS}"
        ))
        // Logs and caches that differ from run to run, and that an image does not need.
        .arg("--customize-hook=rm -rf \"$1\"/var/log/apt/* \"$1\"/var/log/dpkg.log \"$1\"/var/cache/ldconfig/aux-cache \"$1\"/var/lib/dpkg/*-old")
        .arg(suite)
        .arg(out)
        .args(sources(plan))
        .args(extra_source);
    // Not --quiet: apt's own reasons (E:/W:/Err: lines) are what an error must show.
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .context("starting mmdebstrap")?;
    drop(package_file);
    if !output.status.success() {
        let log = String::from_utf8_lossy(&output.stderr);
        let reasons: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:") || l.starts_with("Err:"))
            .collect();
        bail!(
            "mmdebstrap {suite} from {m} failed ({}):\n{}",
            output.status,
            reasons[reasons.len().saturating_sub(15)..].join("\n")
        );
    }
    // With SELinux (the definition's `selinux`), labels now, while the tree is the
    // distribution's alone: the image then labels only the files it adds, and the cached
    // tree's inodes, hard-linked into every build, already carry the labels it would write.
    let policy = crate::profile::Profile::Debian12.selinux_policy();
    if out.join("etc/selinux").join(policy).is_dir() {
        axoha_selinux::label_tree(out, policy)?;
    }
    Ok(())
}

/// Where mmdebstrap writes the `--dpkgopt` options, in the tree (kept: they keep documentation
/// out of later installs too).
const DPKG_OPTIONS: &str = "/etc/dpkg/dpkg.cfg.d/99mmdebstrap";

/// The AxoRouter package copied to `/tmp/axoha-axorouter-PID/axorouter.deb` for the bootstrap
/// (the same path exists in the tree); removed when dropped.
struct PackageCopy {
    dir: PathBuf,
    path: PathBuf,
}

impl PackageCopy {
    fn new(package: &Path) -> Result<PackageCopy> {
        let dir = PathBuf::from(format!("/tmp/axoha-axorouter-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let copy = PackageCopy {
            path: dir.join("axorouter.deb"),
            dir,
        };
        std::fs::copy(package, &copy.path)
            .with_context(|| format!("copying {} for mmdebstrap", package.display()))?;
        Ok(copy)
    }
}

impl Drop for PackageCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
