//! A throw-away GPG signing key for the tests' package repositories (rpm and apt), and the
//! gpg-agent it starts, stopped again.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::demo::sh;

pub const SIGNER: &str = "axoha test repository <repo@axoha.invalid>";

/// A GPG home with one signing key (no passphrase); returns its path.
pub fn signing_key(dir: &Path) -> PathBuf {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    sh(gpg(&home).args([
        "--passphrase",
        "",
        "--quick-gen-key",
        SIGNER,
        "rsa2048",
        "sign",
        "never",
    ]));
    home
}

pub fn gpg(home: &Path) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.arg("--homedir")
        .arg(home)
        .args(["--batch", "--pinentry-mode", "loopback", "--quiet"]);
    cmd
}

/// gpg starts a gpg-agent daemon for the home directory and leaves it running; stop the one
/// this home's signing started (gpgconf addresses it by its socket in `home`).
pub fn stop_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "gpg-agent"])
        .status();
}
