//! The almalinux-10 rootfs stage (`dnf --installroot`) against a local mirror: rpms built and
//! signed here, indexed with createrepo_c (see `axoha_tests::rpm_repo`), served as file://.
//! Real dnf, rpm and gpg do the work; the public AlmaLinux mirror is never contacted.
//!
//! What this cannot show: a bootable AlmaLinux image (that needs the distribution's own
//! packages). README.md says what was and was not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use axoha_tests::demo::{tools, work_dir, EPOCH};
use axoha_tests::rpm_repo::{self, Package};

/// The almalinux-10 profile's packages (builder/src/profile.rs), split over the two
/// repositories as AlmaLinux does.
const BASEOS: [&str; 8] = [
    "kernel",
    "dracut",
    "systemd",
    "systemd-boot-unsigned",
    "firewalld",
    "selinux-policy-targeted",
    "NetworkManager",
    "iproute",
];
const APPSTREAM: [&str; 2] = ["keepalived", "procps-ng"];

struct Setup {
    /// A good mirror: everything signed.
    mirror: PathBuf,
    /// The same, with keepalived unsigned.
    unsigned_mirror: PathBuf,
    dir: PathBuf,
}

fn packages(unsigned_keepalived: bool) -> Vec<Package> {
    let mut pkgs = Vec::new();
    for name in BASEOS {
        pkgs.push(Package::new(name, "BaseOS"));
    }
    for name in APPSTREAM {
        let mut p = Package::new(name, "AppStream");
        // A dependency across repositories, resolved by dnf.
        p.requires.push("glibc".into());
        p.unsigned = unsigned_keepalived && name == "keepalived";
        pkgs.push(p);
    }
    // What the stand-in AxoRouter binary links against, as AlmaLinux's glibc and libgcc
    // provide it.
    let mut glibc = Package::new("glibc", "BaseOS");
    let mut libgcc = Package::new("libgcc", "BaseOS");
    for req in rpm_repo::requirements(&tools().rpm) {
        if req.starts_with("libgcc_s") {
            libgcc.provides.push(req);
        } else {
            glibc.provides.push(req);
        }
    }
    pkgs.push(glibc);
    pkgs.push(libgcc);
    pkgs
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = work_dir().join("almalinux");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gnupg = rpm_repo::signing_key(&dir);
        let mirror = dir.join("mirror");
        rpm_repo::build(&mirror, "10", &packages(false), &gnupg);
        let unsigned_mirror = dir.join("mirror-unsigned");
        rpm_repo::build(&unsigned_mirror, "10", &packages(true), &gnupg);
        Setup {
            mirror,
            unsigned_mirror,
            dir,
        }
    })
}

fn rootfs(mirror: &str, cache: &Path) -> Output {
    let t = tools();
    Command::new(&t.image_bin)
        .args(["rootfs", "--profile", "almalinux-10", "--demo", "--mirror"])
        .arg(mirror)
        .arg("--axorouter")
        .arg(&t.rpm)
        .arg("--cache")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("running axoha-image")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cached_tarballs(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar.zst"))
                .collect()
        })
        .unwrap_or_default()
}

fn tar_list(tarball: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["--zstd", "-tf"])
        .arg(tarball)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .collect()
}

#[test]
fn dnf_installs_the_profile_from_a_signed_local_mirror() {
    let s = setup();
    let cache = s.dir.join("cache-good");
    let _ = std::fs::remove_dir_all(&cache);
    let url = format!("file://{}", s.mirror.display());
    let out = rootfs(&url, &cache);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let tarball = PathBuf::from(lines.next().unwrap());
    assert!(tarball.starts_with(&cache) && tarball.is_file(), "{stdout}");

    // The rpm database in the tree (where AlmaLinux 10 keeps it) lists every package of the
    // profile, the dependency dnf pulled in, AxoRouter, and the imported signing key.
    let installed: Vec<&str> = lines.collect();
    for name in BASEOS
        .iter()
        .chain(APPSTREAM.iter())
        .chain(&["glibc", "libgcc"])
    {
        assert!(
            installed.contains(&format!("{name} 1.0-1").as_str()),
            "{name} missing from {installed:?}"
        );
    }
    assert!(
        installed.contains(&"axorouter 0.0.0~demo-1"),
        "{installed:?}"
    );
    assert!(
        installed.iter().any(|l| l.starts_with("gpg-pubkey ")),
        "the repository key was not imported: {installed:?}"
    );

    let files = tar_list(&tarball);
    for want in [
        "usr/share/axoha-test-repo/keepalived",
        "usr/share/axoha-test-repo/glibc",
        "usr/bin/axorouter",
        "usr/lib/systemd/system/axorouter.service",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} not in the rootfs");
    }
    // dnf's caches, logs and history stay out of the image.
    for gone in ["var/cache/dnf", "var/lib/dnf", "var/log/dnf.log"] {
        assert!(!files.iter().any(|f| f == gone), "{gone} is in the rootfs");
    }

    // Reproducible: a second cache built from the same inputs holds the same bytes (the rpm
    // database records SOURCE_DATE_EPOCH as install time; dnf's history stays out).
    let other = s.dir.join("cache-good-2");
    let _ = std::fs::remove_dir_all(&other);
    let second = rootfs(&url, &other);
    assert!(second.status.success(), "{}", text(&second));
    let second_tarball = other.join(tarball.file_name().unwrap());
    assert_eq!(
        std::fs::read(&tarball).unwrap(),
        std::fs::read(&second_tarball).unwrap(),
        "two rootfs builds from the same inputs differ"
    );
    assert!(!files.iter().any(|f| f.ends_with("rpmdb.sqlite-shm")));

    // The same inputs again: the cached tree, not a second dnf run.
    let again = rootfs(&url, &cache);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("cache hit"), "{}", text(&again));
    assert_eq!(cached_tarballs(&cache).len(), 1);
}

#[test]
fn an_unsigned_package_is_refused_and_nothing_is_cached() {
    let s = setup();
    let cache = s.dir.join("cache-unsigned");
    let _ = std::fs::remove_dir_all(&cache);
    let out = rootfs(&format!("file://{}", s.unsigned_mirror.display()), &cache);
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("keepalived"), "{err}");
    assert!(
        err.contains("not signed") || err.contains("GPG"),
        "the refusal does not say why: {err}"
    );
    assert!(
        cached_tarballs(&cache).is_empty(),
        "{:?}",
        cached_tarballs(&cache)
    );
    // No work directory or partial file is left in the cache either.
    let left: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unreachable_mirror_is_named() {
    let s = setup();
    let cache = s.dir.join("cache-unreachable");
    let missing = format!("file://{}", s.dir.join("no-such-mirror").display());
    let out = rootfs(&missing, &cache);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains(&format!("AlmaLinux mirror {missing} is unreachable")),
        "{err}"
    );
    assert!(cached_tarballs(&cache).is_empty());
}
