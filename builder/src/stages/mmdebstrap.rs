//! The debian-12 rootfs: `mmdebstrap` (minbase plus the profile's packages and AxoRouter)
//! straight into a tar, checked against the host's Debian archive keyring or the
//! definition's `gpg_key`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use axoha_disk::tool::{command, run};

use crate::plan::Plan;

/// `--keyring=FILE` when the definition names its own archive key (a local file: apt checks
/// the mirror's Release signature against it), else mmdebstrap's default, the host's
/// debian-archive-keyring.
fn keyring(plan: &Plan) -> Result<Vec<String>> {
    let key = &plan.definition.gpg_key;
    if key.is_empty() {
        return Ok(Vec::new());
    }
    if key.contains("://") {
        bail!("gpg_key = {key:?}: the debian-12 profile takes a local keyring file, not an URL");
    }
    let path = std::fs::canonicalize(key).with_context(|| format!("gpg_key = {key:?}"))?;
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

pub fn bootstrap(plan: &Plan, out: &Path) -> Result<()> {
    let m = apt_uri(plan.mirror.trim_end_matches('/'));
    let m = m.as_str();
    let suite = &plan.release;
    let security = if m == "http://deb.debian.org/debian" {
        "http://deb.debian.org/debian-security".to_owned()
    } else {
        format!("{m}-security")
    };
    let mut include = plan.packages.clone();
    let mut cmd = command("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", plan.source_date_epoch.to_string())
        .args(["--mode=root", "--variant=minbase", "--format=tar"])
        .arg("--aptopt=Acquire::Retries \"3\"")
        .args(keyring(plan)?)
        // Documentation and translations are dead weight on an appliance.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        ]);
    let mut extra_source = None;
    match (&plan.axorouter.file, &plan.axorouter.repository) {
        (Some(f), _) => {
            // A package file: installed after the distribution, from inside the tree.
            cmd.arg(format!(
                "--customize-hook=upload {} /tmp/axorouter.deb",
                f.path.display()
            ))
            .arg("--customize-hook=chroot \"$1\" dpkg -i /tmp/axorouter.deb && rm \"$1/tmp/axorouter.deb\"");
        }
        (None, Some(r)) => {
            // A repository: one more apt source, checked against its own key only.
            let key = std::fs::canonicalize(&r.key)
                .with_context(|| format!("[axorouter] repository_key = {:?}", r.key))?;
            let mut fields = r.source.split_whitespace();
            let (url, dist, component) = (
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default(),
            );
            extra_source = Some(format!(
                "deb [signed-by={}] {} {dist} {component}",
                key.display(),
                apt_uri(url)
            ));
            include.push("axorouter".into());
        }
        (None, None) => bail!("no AxoRouter package or repository in the plan"),
    }
    cmd.arg(format!("--include={}", include.join(",")))
        // Logs and caches that differ from run to run, and that an image does not need.
        .arg("--customize-hook=rm -rf \"$1\"/var/log/apt/* \"$1\"/var/log/dpkg.log \"$1\"/var/cache/ldconfig/aux-cache \"$1\"/var/lib/dpkg/*-old")
        .arg(suite)
        .arg(out)
        .arg(format!("deb {m} {suite} main"))
        .arg(format!("deb {m} {suite}-updates main"))
        .arg(format!("deb {security} {suite}-security main"))
        .args(extra_source);
    // Not --quiet: apt's own reasons (E:/W:/Err: lines) are what an error must show.
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .context("starting mmdebstrap")?;
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

    // mmdebstrap picks the compressor from the file name; ours ends in .tmp, so compress here.
    let zst = out.with_extension("zst-tmp");
    run(command("zstd")
        .args(["-q", "-T0", "-10", "--rm", "-o"])
        .arg(&zst)
        .arg(out))
    .context("compressing the rootfs")?;
    std::fs::rename(&zst, out)?;
    Ok(())
}
