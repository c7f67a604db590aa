//! debian-12 with AxoRouter from its own signed apt repository (`[axorouter] repository` +
//! `repository_key`): a local repository made here with apt-ftparchive, its Release signed by
//! a throw-away key, served as file://. mmdebstrap installs `axorouter` from it by name,
//! checked against that key only. Runs the rootfs stage (`axoha-image rootfs`), which fetches
//! the distribution from the Debian mirror as the image tests do.

use std::path::Path;
use std::process::Command;

use axoha_tests::demo::{sh, tools, work_dir, EPOCH};
use axoha_tests::signing::{gpg, signing_key, stop_agent, SIGNER};

/// `ROOT/dists/stable/main/binary-amd64/Packages` with the stand-in .deb, a signed
/// `InRelease`, and the public key as a binary keyring; returns the keyring's path.
fn apt_repository(root: &Path, deb: &Path) -> std::path::PathBuf {
    let pool = root.join("pool/main");
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::copy(deb, pool.join(deb.file_name().unwrap())).unwrap();
    let dist = root.join("dists/stable");
    let bin = dist.join("main/binary-amd64");
    std::fs::create_dir_all(&bin).unwrap();
    let packages = sh(Command::new("apt-ftparchive")
        .args(["packages", "pool"])
        .current_dir(root));
    std::fs::write(bin.join("Packages"), &packages.stdout).unwrap();
    let release = sh(Command::new("apt-ftparchive")
        .args([
            "-o",
            "APT::FTPArchive::Release::Suite=stable",
            "-o",
            "APT::FTPArchive::Release::Codename=stable",
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "release",
            ".",
        ])
        .current_dir(&dist));
    std::fs::write(dist.join("Release"), &release.stdout).unwrap();

    let home = signing_key(root);
    sh(gpg(&home)
        .args(["--clearsign", "-o"])
        .arg(dist.join("InRelease"))
        .arg(dist.join("Release")));
    let keyring = root.join("axorouter-archive-keyring.gpg");
    let exported = sh(gpg(&home).args(["--export", SIGNER]));
    std::fs::write(&keyring, exported.stdout).unwrap();
    stop_agent(&home);
    keyring
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn axorouter_installs_from_its_own_signed_apt_repository() {
    let t = tools();
    let dir = work_dir().join("debian-repository");
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    let keyring = apt_repository(&repo, &t.deb);
    let definition = |key: &Path| {
        let def = dir.join("axoha.toml");
        std::fs::write(
            &def,
            format!(
                "name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n\
                 [axorouter]\nrepository = \"file://{} stable main\"\nrepository_key = \"{}\"\n",
                repo.display(),
                key.display()
            ),
        )
        .unwrap();
        def
    };
    let rootfs = |def: &Path, demo: bool| {
        let mut cmd = Command::new(&t.image_bin);
        cmd.args(["rootfs", "--config"])
            .arg(def)
            .arg("--cache")
            .arg(dir.join("cache"))
            .env("SOURCE_DATE_EPOCH", EPOCH);
        if demo {
            cmd.arg("--demo");
        }
        cmd.output().unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // Signed by a key that is not the repository's: apt refuses it, nothing is cached.
    let other = signing_key(&dir.join("other"));
    let stranger = dir.join("stranger.gpg");
    std::fs::write(&stranger, sh(gpg(&other).args(["--export", SIGNER])).stdout).unwrap();
    stop_agent(&other);
    let out = rootfs(&definition(&stranger), true);
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("NO_PUBKEY") || err.contains("not signed"),
        "refused for another reason: {err}"
    );
    // Nothing at all in the cache: no tree, no half-made work directory, no package copy.
    let cached = |d: &Path| {
        std::fs::read_dir(d.join("cache"))
            .map(|r| r.flatten().count())
            .unwrap_or(0)
    };
    assert_eq!(cached(&dir), 0);

    // With its key: installed by name from the repository.
    let def = definition(&keyring);
    let out = rootfs(&def, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("axorouter 0.0.0~demo-1"),
        "{}",
        text(&out)
    );
    // Once installed it is known to be the stand-in: without --demo, refused.
    let out = rootfs(&def, false);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("stand-in") && err.contains("--demo"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
