//! Locating and running the `axoha-firstboot` binary under test.
//!
//! The binary lives in another package of the workspace, so Cargo does not build it for this
//! crate's tests (`CARGO_BIN_EXE_*` covers only the own package). We build it once per test
//! process with the same cargo and target directory as the running test, which keeps `cargo
//! test -p axoha-tests` self-contained and always testing the current source.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

/// Path of `axoha-firstboot`: `$AXOHA_FIRSTBOOT` when set (to test an installed binary), else
/// `<target>/debug/axoha-firstboot`, built once by `cargo build -p axoha-firstboot`.
pub fn binary() -> Result<&'static Path> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("AXOHA_FIRSTBOOT") {
        return Ok(PathBuf::from(path));
    }
    let target = target_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests crate has no parent directory")?;
    let status = Command::new(cargo)
        .args(["build", "-p", "axoha-firstboot", "--bin", "axoha-firstboot"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running cargo build -p axoha-firstboot")?;
    if !status.success() {
        bail!("cargo build -p axoha-firstboot failed ({status})");
    }
    Ok(target.join("debug").join("axoha-firstboot"))
}

/// The cargo target directory of the running executable: `target/debug/deps/<test>` (tests) or
/// `target/<profile>/<bin>` (the bench binary) or `target/<profile>/examples/<example>` ->
/// `target`.
pub fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe.parent().context("executable has no directory")?;
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir = dir.parent().context("deps has no parent")?;
    }
    Ok(dir
        .parent()
        .context("profile directory has no parent")?
        .to_path_buf())
}

/// `axoha-firstboot apply --root ROOT --cmdline CMDLINE --no-start`: writes the node's files.
pub fn apply(root: &Path, cmdline: &Path) -> Result<()> {
    let out = Command::new(binary()?)
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg("--cmdline")
        .arg(cmdline)
        .arg("--no-start")
        .output()
        .context("running axoha-firstboot apply")?;
    if !out.status.success() {
        bail!(
            "axoha-firstboot apply --root {} failed ({}):\n{}{}",
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `axoha-firstboot render --root ROOT --cmdline CMDLINE`: the keepalived.conf it would write.
pub fn render(root: &Path, cmdline: &Path) -> Result<String> {
    let out = Command::new(binary()?)
        .arg("render")
        .arg("--root")
        .arg(root)
        .arg("--cmdline")
        .arg(cmdline)
        .output()
        .context("running axoha-firstboot render")?;
    if !out.status.success() {
        bail!(
            "axoha-firstboot render --root {} failed ({}):\n{}",
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("render output is not UTF-8")
}
