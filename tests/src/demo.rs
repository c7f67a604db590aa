//! What the image and PXE tests share: the release binaries, the stand-in AxoRouter package
//! and one rootfs cache, prepared once per test process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::firstboot::target_dir;

/// One SOURCE_DATE_EPOCH for every build the tests make: same inputs, same bytes.
pub const EPOCH: &str = "1700000000";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Where the image tests keep their builds, logs and the shared rootfs cache.
pub fn work_dir() -> PathBuf {
    target_dir()
        .expect("target directory")
        .join("axoha-image-tests")
}

/// Runs a command that must succeed; panics with its output otherwise.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Tools {
    /// `target/release/axoha-image` (built with axoha-firstboot, axoha-install, axoha-update
    /// and axoha-metrics beside it).
    pub image_bin: PathBuf,
    /// The stand-in AxoRouter .deb.
    pub deb: PathBuf,
    /// The stand-in AxoRouter .rpm.
    pub rpm: PathBuf,
    /// The rootfs cache every test build shares.
    pub cache: PathBuf,
}

/// Builds the release binaries and the stand-in packages, once per test process.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        crate::require_root().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = target_dir().unwrap();
        sh(Command::new(&cargo)
            .args([
                "build",
                "--release",
                "-p",
                "axoha-image",
                "-p",
                "axoha-firstboot",
            ])
            .args([
                "-p",
                "axoha-install",
                "-p",
                "axoha-update",
                "-p",
                "axoha-metrics",
            ])
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", &target));
        let work = work_dir();
        std::fs::create_dir_all(&work).unwrap();
        let listed = sh(
            Command::new(workspace().join("tests/axorouter-standin/build-packages"))
                .arg(work.join("packages"))
                .env("CARGO_TARGET_DIR", &target)
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        let listed = String::from_utf8_lossy(&listed.stdout);
        let built = |ext: &str| {
            listed
                .lines()
                .find(|l| l.ends_with(ext))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("build-packages prints the {ext} path"))
        };
        Tools {
            image_bin: target.join("release/axoha-image"),
            deb: built(".deb"),
            rpm: built(".rpm"),
            cache: work.join("cache"),
        }
    })
}

/// `axoha-image build --profile debian-12 --demo` of the given targets into `out`.
pub fn build_demo(out: &Path, targets: &str) -> Output {
    build_demo_with(out, targets, &[])
}

/// The same with more arguments (`--config DEF`, `--signing-key KEY`, ...): the stand-in
/// package, the shared cache and SOURCE_DATE_EPOCH stay the tests' own.
pub fn build_demo_with(out: &Path, targets: &str, extra: &[&std::ffi::OsStr]) -> Output {
    let t = tools();
    Command::new(&t.image_bin)
        .args([
            "build",
            "--target",
            targets,
            "--profile",
            "debian-12",
            "--demo",
        ])
        .args(extra)
        .arg("--axorouter")
        .arg(&t.deb)
        .arg("--cache")
        .arg(&t.cache)
        .arg("-o")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("running axoha-image")
}

/// `build_demo_with` of the definition `def`, its bundles signed with the update key `key`.
pub fn build_demo_signed(out: &Path, targets: &str, def: &Path, key: &Path) -> Output {
    build_demo_with(
        out,
        targets,
        &[
            "--config".as_ref(),
            def.as_os_str(),
            "--signing-key".as_ref(),
            key.as_os_str(),
        ],
    )
}

/// The update public key `axoha-image keygen --out keys` wrote, as a definition's
/// `[update] public_key` takes it (the minisign key line of `axoha-update.pub`).
pub fn update_public_key(keys: &Path) -> String {
    std::fs::read_to_string(keys.join("axoha-update.pub"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("RW"))
        .expect("a minisign public key line")
        .to_owned()
}

/// A cached rootfs tree as one reproducible stream: a tar sorted by name, numeric owners,
/// extended attributes, no atime/ctime (what the builder's cache was before it became the tree
/// itself). Two trees from the same inputs must give the same bytes.
pub fn tree_tar(tree: &Path) -> Vec<u8> {
    sh(Command::new("tar")
        .args([
            "--sort=name",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--format=pax",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "-C",
        ])
        .arg(tree)
        .args(["-cf", "-", "."]))
    .stdout
}
