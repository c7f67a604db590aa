//! The almalinux-10 rootfs stage (`dnf --installroot`) against a local mirror: rpms built and
//! signed here, indexed with createrepo_c (see `axoha_tests::rpm_repo`), served as file://.
//! Real dnf, rpm and gpg do the work; the public AlmaLinux mirror is never contacted.
//!
//! What this cannot show: a bootable AlmaLinux image (that needs the distribution's own
//! packages). README.md says what was and was not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use axoha_tests::demo::{sh, tools, tree_tar, work_dir, EPOCH};
use axoha_tests::rpm_repo::{self, FileSource, Package, PackageFile};

/// The almalinux-10 profile's packages (builder/src/profile.rs), split over the two
/// repositories as AlmaLinux does.
const BASEOS: [&str; 13] = [
    "kernel",
    "dracut",
    "dracut-config-generic",
    "device-mapper",
    "systemd",
    "firewalld",
    "selinux-policy-targeted",
    "NetworkManager",
    "iproute",
    "procps-ng",
    "openssh-server",
    "sudo",
    "chrony",
];
/// AlmaLinux 10 has systemd-boot-unsigned in AppStream (RHEL 9 had it in its build root only).
const APPSTREAM: [&str; 2] = ["keepalived", "systemd-boot-unsigned"];

struct Setup {
    /// A good mirror: everything signed.
    mirror: PathBuf,
    /// The same, with keepalived unsigned.
    unsigned_mirror: PathBuf,
    dir: PathBuf,
}

/// The stand-in kernel's version.
const KERNEL: &str = "6.12.0-0.axoha.test.x86_64";

/// The stand-in kernel: `vmlinuz` where AlmaLinux's kernel-core puts it, and a `%posttrans`
/// that does what kernel-install may do in an installroot: leave a (here: fake) host-only
/// initramfs in /boot. It records whether it saw /proc, /sys and /dev, and whether /sys was
/// writable.
fn kernel() -> Package {
    let mut p = Package::new("kernel", "BaseOS");
    p.files.push(PackageFile {
        path: format!("/usr/lib/modules/{KERNEL}/vmlinuz"),
        source: FileSource::Text("axoha test kernel\n".into()),
        mode: 0o644,
    });
    p.posttrans_lua = Some(format!(
        "local function seen(ok) if ok then return \"yes\" else return \"no\" end end\n\
         posix.mkdir(\"/boot\")\n\
         local f = io.open(\"/boot/initramfs-{KERNEL}.img\", \"w\")\n\
         f:write(\"host-only initramfs from the kernel's scriptlet\\n\")\n\
         f:close()\n\
         local r = io.open(\"/usr/share/axoha-test-repo/kernel-scriptlet\", \"w\")\n\
         r:write(\"proc: \" .. seen(posix.access(\"/proc/self/mountinfo\")) .. \"\\n\")\n\
         r:write(\"sys: \" .. seen(posix.access(\"/sys/kernel\")) .. \"\\n\")\n\
         r:write(\"dev: \" .. seen(posix.stat(\"/dev/null\", \"type\") == \"character device\") .. \"\\n\")\n\
         local w = io.open(\"/sys/axoha-test\", \"w\")\n\
         if w then r:write(\"sys: writable\\n\") else r:write(\"sys: read-only\\n\") end\n\
         r:close()"
    ));
    p
}

/// The stand-in dracut: a busybox script (the tree has no other shell) whose "initramfs" says
/// how it was called and what it found in the tree.
fn dracut() -> Package {
    let mut p = Package::new("dracut", "BaseOS");
    p.files.push(PackageFile {
        path: "/usr/bin/busybox".into(),
        source: FileSource::Copy("/bin/busybox".into()),
        mode: 0o755,
    });
    p.files.push(PackageFile {
        path: "/usr/bin/dracut".into(),
        source: FileSource::Text(
            "#!/usr/bin/busybox sh\n\
             for a in \"$@\"; do out=$a; done\n\
             {\n\
             echo \"axoha test dracut\"\n\
             echo \"args: $*\"\n\
             echo \"SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH\"\n\
             test -e /proc/self/mountinfo && echo \"proc: yes\" || echo \"proc: no\"\n\
             test -d /sys/kernel && echo \"sys: yes\" || echo \"sys: no\"\n\
             test -c /dev/null && echo \"dev: yes\" || echo \"dev: no\"\n\
             /usr/bin/busybox touch /sys/axoha-test 2>/dev/null && echo \"sys: writable\" || echo \"sys: read-only\"\n\
             } > \"$out\"\n"
                .into(),
        ),
        mode: 0o755,
    });
    p
}

fn packages(unsigned_keepalived: bool) -> Vec<Package> {
    let mut pkgs = vec![kernel(), dracut()];
    for name in BASEOS {
        if name != "kernel" && name != "dracut" {
            pkgs.push(Package::new(name, "BaseOS"));
        }
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
        let gnupg = axoha_tests::signing::signing_key(&dir);
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
    rootfs_with(mirror, cache, tools().rpm.as_os_str(), &[])
}

fn rootfs_with(mirror: &str, cache: &Path, axorouter: &std::ffi::OsStr, extra: &[&str]) -> Output {
    let t = tools();
    Command::new(&t.image_bin)
        .args(["rootfs", "--profile", "almalinux-10", "--demo", "--mirror"])
        .arg(mirror)
        .arg("--axorouter")
        .arg(axorouter)
        .args(extra)
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

/// The rootfs trees in the cache (the builder's private work directories start with a dot).
fn cached_trees(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rootfs-") && n.ends_with(".tree"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every entry of the tree, relative, sorted (directories without a trailing slash).
fn tree_list(tree: &Path) -> Vec<String> {
    let out = sh(Command::new("find")
        .arg(".")
        .arg("-mindepth")
        .arg("1")
        .current_dir(tree));
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn dnf_installs_the_profile_from_a_signed_local_mirror() {
    let s = setup();
    let cache = s.dir.join("cache-good");
    let _ = std::fs::remove_dir_all(&cache);
    let url = format!("file://{}", s.mirror.display());
    let out = rootfs(&url, &cache);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let tree = PathBuf::from(lines.next().unwrap());
    assert!(tree.starts_with(&cache) && tree.is_dir(), "{stdout}");

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

    let files = tree_list(&tree);
    for want in [
        "usr/share/axoha-test-repo/keepalived",
        "usr/share/axoha-test-repo/glibc",
        "usr/bin/axorouter",
        "usr/lib/systemd/system/axorouter.service",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} not in the rootfs");
    }
    // The kernel where the layer takes it for the ESP. No initramfs of ours: the initrd stage
    // makes the image's; the scriptlet's stays in the cache only (the image drops it). The
    // scriptlet had /proc, /sys (read-only) and /dev, none of it left in the tree.
    assert!(
        files.contains(&format!("boot/vmlinuz-{KERNEL}")),
        "boot/vmlinuz-{KERNEL} not in the rootfs"
    );
    let initramfs =
        std::fs::read_to_string(tree.join(format!("boot/initramfs-{KERNEL}.img"))).unwrap();
    assert_eq!(
        initramfs, "host-only initramfs from the kernel's scriptlet\n",
        "dracut ran in the rootfs stage"
    );
    let scriptlet =
        std::fs::read_to_string(tree.join("usr/share/axoha-test-repo/kernel-scriptlet")).unwrap();
    assert_eq!(scriptlet, "proc: yes\nsys: yes\ndev: yes\nsys: read-only\n");
    for dir in ["proc/", "sys/", "dev/"] {
        assert!(
            !files.iter().any(|f| f.starts_with(dir)),
            "host files under {dir} in the rootfs"
        );
    }

    // Nothing of the build host's paths (dnf's metadata cache under a host path once).
    assert!(
        !files.iter().any(|f| f.contains("axoha-image-tests")),
        "host paths in the rootfs"
    );

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
    let second_tree = other.join(tree.file_name().unwrap());
    assert!(
        tree_tar(&tree) == tree_tar(&second_tree),
        "two rootfs builds from the same inputs differ"
    );
    assert!(!files.iter().any(|f| f.ends_with("rpmdb.sqlite-shm")));

    // The same inputs again: the cached tree, not a second dnf run.
    let again = rootfs(&url, &cache);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("cache hit"), "{}", text(&again));
    assert_eq!(cached_trees(&cache).len(), 1);
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
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
        cached_trees(&cache).is_empty(),
        "{:?}",
        cached_trees(&cache)
    );
    // No work directory or partial file is left in the cache either.
    let left: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
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
    assert!(cached_trees(&cache).is_empty());
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn x86_64_v2_is_its_own_tree_and_needs_a_dnf_that_knows_it() {
    let s = setup();
    let def = s.dir.join("x86_64_v2.toml");
    std::fs::write(
        &def,
        "name = \"axoha\"\nprofile = \"almalinux-10\"\ndisk_size = \"3G\"\narch = \"x86_64_v2\"\n",
    )
    .unwrap();
    let cache = s.dir.join("cache-x86_64_v2");
    let _ = std::fs::remove_dir_all(&cache);
    let mirror = format!("file://{}", s.mirror.display());
    let out = rootfs_with(
        &mirror,
        &cache,
        tools().rpm.as_os_str(),
        &["--config", def.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    let dnf_knows_v2 = Command::new("dnf")
        .args(["--forcearch=x86_64_v2", "--version"])
        .output()
        .unwrap()
        .status
        .success();
    if dnf_knows_v2 {
        // AlmaLinux's dnf: the x86_64_v2 tree is asked for (the test mirror has none).
        assert!(err.contains("/10/BaseOS/x86_64_v2/os/"), "{err}");
    } else {
        // Debian's dnf: said before the mirror is asked, not mistaken for an unreachable one.
        assert!(
            err.contains("does not know the architecture x86_64_v2"),
            "{err}"
        );
        assert!(!err.contains("unreachable"), "{err}");
    }
    assert!(cached_trees(&cache).is_empty());
}

/// A minimal HTTP/1.0 server on 127.0.0.1 (loopback only) serving one file at `/NAME`, 404
/// for anything else; it stops when dropped. Returns the base URL.
struct FileServer {
    base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(file: &Path) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let name = format!("/{}", file.file_name().unwrap().to_string_lossy());
        let body = std::fs::read(file).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let _ = reader.read_line(&mut line);
                // Drain the headers.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let path = path.split('?').next().unwrap_or("");
                let _ = if path == name {
                    conn.write_all(
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .and_then(|_| conn.write_all(&body))
                } else {
                    conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                };
            }
        });
        FileServer {
            base,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.base.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn the_package_can_come_from_an_url_checked_by_sha256() {
    let s = setup();
    let rpm = &tools().rpm;
    let server = FileServer::start(rpm);
    let url = format!(
        "{}/{}?token=abc",
        server.base,
        rpm.file_name().unwrap().to_string_lossy()
    );
    let mirror = format!("file://{}", s.mirror.display());
    let good = axoha_disk::hash::sha256_file(rpm).unwrap();

    // A wrong sha256: refused, naming both hashes; nothing downloaded stays in the cache.
    let cache = s.dir.join("cache-url");
    let _ = std::fs::remove_dir_all(&cache);
    let wrong = "0".repeat(64);
    let out = rootfs_with(
        &mirror,
        &cache,
        url.as_ref(),
        &["--axorouter-sha256", &wrong],
    );
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains(&good) && err.contains(&wrong), "{err}");
    let downloads: Vec<_> = std::fs::read_dir(cache.join("downloads"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(downloads.is_empty(), "{downloads:?}");

    // A missing file: the server's answer is named.
    let missing = format!("{}/axorouter-9.rpm", server.base);
    let out = rootfs_with(&mirror, &cache, missing.as_ref(), &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("404"), "{}", text(&out));

    // The right sha256: downloaded, installed, and the manifest input names the URL.
    let out = rootfs_with(
        &mirror,
        &cache,
        url.as_ref(),
        &["--axorouter-sha256", &good],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("axorouter 0.0.0~demo-1"),
        "{}",
        text(&out)
    );
    // With the hash known, a second run reuses the download: the server is gone by then.
    drop(server);
    let again = rootfs_with(
        &mirror,
        &cache,
        url.as_ref(),
        &["--axorouter-sha256", &good],
    );
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn axorouter_can_come_from_its_own_signed_repository() {
    let s = setup();
    let repo = s.dir.join("axorouter-repo");
    let _ = std::fs::remove_dir_all(&repo);
    let key = rpm_repo::single(&repo, &tools().rpm);
    let def = s.dir.join("axorouter-repo.toml");
    std::fs::write(
        &def,
        format!(
            "name = \"axoha\"\nprofile = \"almalinux-10\"\ndisk_size = \"3G\"\n\
             mirror = \"file://{}\"\n[axorouter]\nrepository = \"file://{}\"\n\
             repository_key = \"{}\"\n",
            s.mirror.display(),
            repo.display(),
            key.display()
        ),
    )
    .unwrap();
    let cache = s.dir.join("cache-axorouter-repo");
    let _ = std::fs::remove_dir_all(&cache);
    let run = |demo: bool| {
        let mut cmd = Command::new(&tools().image_bin);
        cmd.args(["rootfs", "--config"])
            .arg(&def)
            .arg("--cache")
            .arg(&cache);
        if demo {
            cmd.arg("--demo");
        }
        cmd.env("SOURCE_DATE_EPOCH", EPOCH).output().unwrap()
    };
    // Installed by name from the repository, checked against that repository's key (the
    // distribution mirror's key did not sign it).
    let out = run(true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("axorouter 0.0.0~demo-1"),
        "{}",
        text(&out)
    );
    // Only once installed is it known to be the stand-in: without --demo, refused.
    let out = run(false);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("stand-in") && err.contains("--demo"), "{err}");
}

/// bench/build's dnf rows (not part of the suite: `--ignored`): the rootfs stage from an empty
/// cache against the plain `dnf --installroot` it is measured against (`axoha-image rootfs
/// --floor-command`), both on the local test mirror, three times each (median). The test
/// mirror's packages are tiny: this measures what the stage adds around dnf.
#[test]
#[ignore = "bench/build runs it"]
fn bench_only_rootfs_against_plain_dnf() {
    let s = setup();
    let url = format!("file://{}", s.mirror.display());
    let t = tools();
    let floor_root = s.dir.join("floor-root");
    let argv = rootfs_with(
        &url,
        &s.dir.join("cache-bench"),
        t.rpm.as_os_str(),
        &["--floor-command", floor_root.to_str().unwrap()],
    );
    assert!(argv.status.success(), "{}", text(&argv));
    let argv: Vec<String> = String::from_utf8_lossy(&argv.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The stage's own time (its progress line `rootfs: S s`), as bench/build takes it for
    // debian-12: the command's plan stage (hashing our binaries, tool versions) is not dnf's.
    let stage_seconds = |o: &Output| -> f64 {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("rootfs: ")?
                    .strip_suffix(" s")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no stage time: {}", text(o)))
    };
    let mut floor = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&floor_root);
        let started = std::time::Instant::now();
        sh(Command::new(&argv[0])
            .args(&argv[1..])
            .env("SOURCE_DATE_EPOCH", EPOCH));
        floor.push(started.elapsed().as_secs_f64());
        let cache = s.dir.join("cache-bench");
        let _ = std::fs::remove_dir_all(&cache);
        let out = rootfs(&url, &cache);
        assert!(out.status.success(), "{}", text(&out));
        ours.push(stage_seconds(&out));
    }
    let (floor, ours) = (median(floor), median(ours));
    println!("bench: | plain dnf --installroot (floor) | {floor:.1} |");
    println!("bench: | rootfs stage, empty cache | {ours:.1} |");
    println!("bench: | ratio | {:.2} |", ours / floor);
    let _ = std::fs::remove_dir_all(&floor_root);
}
