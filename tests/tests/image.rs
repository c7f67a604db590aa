//! The appliance image, end to end: build the debian-12 demo image once for this test binary,
//! then check it from the outside (qemu-img, the GPT, the state filesystem read with debugfs,
//! the /usr squashfs with unsquashfs, no mounts), boot it under QEMU with UEFI, and rebuild it to prove it is bit-identical.
//!
//! Network: the image build fetches Debian packages from the mirror apt uses (a package
//! registry); the booted VM gets QEMU user-mode networks with `restrict=on`, which reach
//! nothing outside the VM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axoha_tests::demo::{
    build_demo, build_demo_signed, build_demo_with, sh, tools, update_public_key, work_dir,
};
use axoha_tests::slots::{
    bundle_usrhash, copy_and_apply, entries, repack, status, unpack, wait_blessed,
};
use axoha_tests::vm::{
    free_port, has_line, kargs, vrrp_state, wait_until, IsolatedLoopback, Ssh, Vm, BOOT_TIMEOUT,
};

/// Heavy steps (builds, boots) one at a time: two cores do not fit two of them.
static HEAVY: Mutex<()> = Mutex::new(());

struct Built {
    image_bin: PathBuf,
    out: PathBuf,
}

impl Built {
    fn qcow2(&self) -> PathBuf {
        self.out.join("axoha-demo-debian-12.qcow2")
    }
    fn raw(&self) -> PathBuf {
        self.out.join("axoha-demo-debian-12.raw")
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let t = tools();
        let out = work_dir().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let res = build_demo(&out, "qcow2,raw");
        assert!(
            res.status.success(),
            "image build failed:\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
        Built {
            image_bin: t.image_bin.clone(),
            out,
        }
    })
}

fn debugfs(raw: &Path, offset: u64, request: &str) -> String {
    let out = sh(Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(format!("{}?offset={offset}", raw.display())));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The six partitions of the spec, in order: (GPT name, PARTUUID lowercase, start in bytes).
fn partitions(raw: &Path) -> Vec<(String, String, u64)> {
    let out = sh(Command::new("sfdisk").arg("--json").arg(raw));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["uuid"].as_str().unwrap().to_lowercase(),
                p["start"].as_u64().unwrap() * 512,
            )
        })
        .collect()
}

fn partition_offset(raw: &Path, name: &str) -> u64 {
    let parts = partitions(raw);
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "ESP",
            "usr-a",
            "usr-a-verity",
            "usr-b",
            "usr-b-verity",
            "state"
        ],
        "the spec's partitions"
    );
    parts.iter().find(|p| p.0 == name).unwrap().2
}

/// The state partition (ext4, `/`: /etc, /var).
fn state_offset(raw: &Path) -> u64 {
    partition_offset(raw, "state")
}

/// A file of slot A's /usr (squashfs), by its path in the image (`/usr/...`).
fn usr_cat(raw: &Path, path: &str) -> String {
    let rel = path.strip_prefix("/usr/").expect("a path under /usr");
    let out = sh(Command::new("unsquashfs")
        .args(["-no-progress", "-offset"])
        .arg(partition_offset(raw, "usr-a").to_string())
        .arg("-cat")
        .arg(raw)
        .arg(rel));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `unsquashfs -lln` of one path of slot A's /usr: its `ls -l` line (numeric owners).
fn usr_ls(raw: &Path, path: &str) -> String {
    let rel = path.strip_prefix("/usr/").expect("a path under /usr");
    let out = sh(Command::new("unsquashfs")
        .args(["-no-progress", "-offset"])
        .arg(partition_offset(raw, "usr-a").to_string())
        .arg("-lln")
        .arg(raw)
        .arg(rel));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| {
            l.ends_with(&format!("squashfs-root/{rel}"))
                || l.contains(&format!("squashfs-root/{rel} -> "))
        })
        .unwrap_or_else(|| panic!("{path} not in /usr: {text}"))
        .to_owned()
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn artifacts_manifest_and_qemu_img_check() {
    let b = built();
    let check = sh(Command::new("qemu-img").arg("check").arg(b.qcow2()));
    assert!(String::from_utf8_lossy(&check.stdout).contains("No errors were found"));
    let sums = std::fs::read_to_string(b.out.join("SHA256SUMS")).unwrap();
    assert!(
        sums.contains("  axoha-demo-debian-12.qcow2\n")
            && sums.contains("  axoha-demo-debian-12.raw\n")
    );
    let manifest = std::fs::read_to_string(b.out.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"demo\": true"),
        "the manifest says demo"
    );
    assert!(manifest.contains("DEMO: the axoha test stand-in"));
    assert!(
        manifest.contains("\"name\": \"keepalived\""),
        "the package list is there"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&b.out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no work directory left behind: {leftovers:?}"
    );
    let inspect = sh(Command::new(&b.image_bin).arg("inspect").arg(b.qcow2()));
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.contains("DEMO") && inspect.contains("profile: debian-12"),
        "{inspect}"
    );
    assert!(inspect.contains("keepalived.service"), "{inspect}");
    assert!(
        inspect.contains("secure boot: unsigned"),
        "built without [secure_boot]: {inspect}"
    );
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn state_and_usr_hold_the_appliance() {
    let b = built();
    let raw = b.raw();
    let off = state_offset(&raw);
    let stat = usr_ls(&raw, "/usr/bin/axoha-firstboot");
    assert!(stat.starts_with("-rwxr-xr-x 0/0 "), "{stat}");
    let stat = usr_ls(&raw, "/usr/bin/axoha-update");
    assert!(stat.starts_with("-rwxr-xr-x 0/0 "), "{stat}");
    let stat = usr_ls(&raw, "/usr/bin/axoha-metrics");
    assert!(stat.starts_with("-rwxr-xr-x 0/0 "), "{stat}");
    let wants = debugfs(&raw, off, "ls /etc/systemd/system/multi-user.target.wants");
    for unit in [
        "axoha-firstboot.service",
        "keepalived.service",
        "axorouter.service",
        "firewalld.service",
    ] {
        assert!(wants.contains(unit), "{unit} enabled: {wants}");
    }
    // debian-12's default network daemon, named for first boot.
    assert_eq!(usr_cat(&raw, "/usr/lib/axoha/network"), "networkd\n");
    let cluster = usr_cat(&raw, "/usr/lib/axoha/cluster.toml");
    assert!(
        cluster.contains("vrrp_version = 3") && cluster.contains("[health]"),
        "{cluster}"
    );
    let keepalived_dir = debugfs(&raw, off, "ls /etc/keepalived");
    assert!(
        !keepalived_dir.contains("keepalived.conf"),
        "no sample config: {keepalived_dir}"
    );
    assert!(usr_ls(&raw, "/usr/sbin/keepalived").starts_with("-rwxr-xr-x"));
    assert!(usr_ls(&raw, "/usr/sbin/firewalld").starts_with('-'));
    assert!(usr_cat(
        &raw,
        "/usr/lib/systemd/system/keepalived.service.d/axoha.conf"
    )
    .contains("Restart=always"));
    assert_eq!(
        debugfs(&raw, off, "cat /etc/machine-id"),
        "",
        "first boot is first boot"
    );
    // No [[users]]: the SSH server is installed but not enabled, and no node shares host keys.
    assert!(!wants.contains("ssh.service"), "{wants}");
    assert!(
        !debugfs(&raw, off, "ls /etc/ssh").contains("ssh_host_"),
        "SSH host keys baked into the image"
    );

    // The layout: /usr is an empty mount point on the state partition, the initrd mounts the
    // squashfs from /dev/mapper/usr; fstab has the state and the ESP, by partition name.
    let parts = partitions(&raw);
    let usr_dir = debugfs(&raw, off, "ls /usr");
    assert_eq!(
        usr_dir
            .split_whitespace()
            .filter(|w| !w.starts_with('(') && w.parse::<u64>().is_err())
            .collect::<Vec<_>>(),
        [".", ".."],
        "{usr_dir}"
    );
    let fstab = debugfs(&raw, off, "cat /etc/fstab");
    // By the GPT names every build gives these partitions (an update's factory fstab must
    // fit the disk the node was installed from).
    let (state_name, esp_name) = (&parts[5].0, &parts[0].0);
    let state_uuid = &parts[5].1;
    assert_eq!((state_name.as_str(), esp_name.as_str()), ("state", "ESP"));
    assert!(
        fstab.contains(&format!(
            "PARTLABEL={state_name} / ext4 rw,errors=remount-ro,x-systemd.growfs 0 1\n"
        )) && fstab.contains(&format!(
            "PARTLABEL={esp_name} /efi vfat umask=0077,noatime,nofail,x-systemd.device-timeout=3min 0 2\n"
        )) && !fstab
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(" /usr ")),
        "{fstab}"
    );
    assert!(debugfs(&raw, off, "stat /efi").contains("Type: directory"));
    // etc-base.json (the updater's format): every file of /etc by its sha256; the factory
    // copy in /usr has the same /etc.
    let base: serde_json::Value =
        serde_json::from_str(&debugfs(&raw, off, "cat /var/lib/axoha/etc-base.json")).unwrap();
    assert_eq!(base["format"], 1, "{base}");
    assert_eq!(
        base["files"]["hostname"]["sha256"].as_str().map(str::len),
        Some(64),
        "{base}"
    );
    assert_eq!(
        usr_cat(&raw, "/usr/share/axoha/factory/etc/hostname"),
        "axoha\n"
    );
    // The ESP: slot A's kernel and initrd, and the entry naming the root hash whose halves are
    // usr-a's and usr-a-verity's PARTUUIDs.
    let esp = format!("{}@@{}", raw.display(), parts[0].2);
    let entry = String::from_utf8_lossy(
        &sh(Command::new("mtype").args(["-i", &esp, "::/loader/entries/axoha-1.conf"])).stdout,
    )
    .into_owned();
    let hash = entry
        .split_whitespace()
        .find_map(|w| w.strip_prefix("usrhash="))
        .unwrap_or_else(|| panic!("no usrhash= in {entry}"));
    assert_eq!(hash.len(), 64, "{entry}");
    assert_eq!(parts[1].1.replace('-', ""), hash[..32], "{entry}");
    assert_eq!(parts[2].1.replace('-', ""), hash[32..], "{entry}");
    assert!(
        entry.contains("linux /axoha/a/vmlinuz\ninitrd /axoha/a/initrd.img\n")
            && entry.contains(&format!(" root=PARTUUID={state_uuid} rw ")),
        "{entry}"
    );
    let loader = String::from_utf8_lossy(
        &sh(Command::new("mtype").args(["-i", &esp, "::/loader/loader.conf"])).stdout,
    )
    .into_owned();
    assert!(!loader.contains("default"), "{loader}");
    // The initrd runs `axoha-update prepare-root` and nothing else of ours: no first boot, no
    // metrics endpoint.
    let initrd = initrd_files(&esp, &work_dir().join("initrd.cpio"));
    let has = |name: &str| {
        let name = format!("usr/bin/{name}\0");
        initrd.windows(name.len()).any(|w| w == name.as_bytes())
    };
    assert!(has("axoha-update"), "no axoha-update in the initrd");
    for name in ["axoha-metrics", "axoha-firstboot"] {
        assert!(!has(name), "{name} in the initrd");
    }
}

/// The cpio archive of slot A's initrd (ESP `esp` as mtools names it), decompressed (dracut's
/// `--compress "gzip -n -4"`) through the file `tmp`.
fn initrd_files(esp: &str, tmp: &Path) -> Vec<u8> {
    let initrd =
        sh(Command::new("mcopy").args(["-n", "-i", esp, "::/axoha/a/initrd.img", "-"])).stdout;
    // An uncompressed early cpio (microcode) may come first: the gzip stream follows it.
    let gz = initrd
        .windows(3)
        .position(|w| w == [0x1f, 0x8b, 0x08])
        .expect("a gzip stream in the initrd");
    std::fs::write(tmp, &initrd[gz..]).unwrap();
    // Not `sh`: gzip exits 2 over the zero padding after the stream, and says so.
    let out = Command::new("gzip")
        .args(["-dc"])
        .stdin(std::fs::File::open(tmp).unwrap())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(tmp);
    assert!(
        !out.stdout.is_empty(),
        "gzip -dc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Files in `/etc` that Debian's maintainer scripts write from templates under `/usr/share`
/// (so they are in no package's file list) and that are the same on every Debian 12 system,
/// the build host included.
const DEBIAN_GENERATED: [&str; 19] = [
    "/etc/networks",
    // kmod's postinst, from its template.
    "/etc/modules",
    "/etc/xml/catalog",
    "/etc/xml/catalog.old",
    "/etc/xml/xml-core.xml",
    "/etc/xml/xml-core.xml.old",
    "/etc/xml/polkitd.xml",
    "/etc/xml/polkitd.xml.old",
    "/etc/hosts.allow",
    "/etc/hosts.deny",
    "/etc/profile",
    "/etc/python3/debian_config",
    "/etc/motd",
    "/etc/timezone",
    "/etc/inputrc",
    "/etc/pam.d/common-account",
    "/etc/pam.d/common-password",
    "/etc/pam.d/common-session",
    "/etc/pam.d/common-session-noninteractive",
];

/// Nothing in the image's `/etc` came from the build host: no file holds the host's resolver
/// addresses or machine id, and no file that no package ships is a copy of the host's (beyond
/// the distribution-generated ones above). The image's resolver, package sources and chrony
/// have no server of the build's.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn nothing_in_etc_comes_from_the_build_host() {
    let b = built();
    let raw = b.raw();
    let off = state_offset(&raw);
    let dump = tempfile::tempdir().unwrap();
    debugfs(&raw, off, &format!("rdump /etc {}", dump.path().display()));
    debugfs(
        &raw,
        off,
        &format!("rdump /var/lib/dpkg/info {}", dump.path().display()),
    );
    let mut packaged = std::collections::HashSet::new();
    for e in std::fs::read_dir(dump.path().join("info"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "list") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            packaged.extend(text.lines().map(str::to_owned));
        }
    }
    assert!(
        packaged.contains("/etc/keepalived"),
        "dpkg's file lists read"
    );
    let mut markers: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|a| a.trim().to_owned())
        .collect();
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        markers.push(id.trim().to_owned());
    }
    markers.retain(|m| m.len() >= 7);
    let mut from_host = Vec::new();
    let mut stack = vec![dump.path().join("etc")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let rel = format!("/{}", path.strip_prefix(dump.path()).unwrap().display());
            let ours = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&ours);
            for m in &markers {
                if text.contains(m.as_str()) {
                    from_host.push(format!("{rel} holds the build host's {m}"));
                }
            }
            let same_as_host = std::fs::read(&rel).is_ok_and(|h| h == ours && !h.is_empty());
            if same_as_host && !packaged.contains(&rel) && !DEBIAN_GENERATED.contains(&rel.as_str())
            {
                from_host.push(format!("{rel} is a copy of the build host's"));
            }
        }
    }
    assert!(from_host.is_empty(), "{from_host:#?}");
    let etc = |f: &str| std::fs::read_to_string(dump.path().join("etc").join(f)).unwrap();
    assert!(
        !etc("resolv.conf").contains("nameserver"),
        "{}",
        etc("resolv.conf")
    );
    assert!(
        !etc("apt/sources.list").contains("://"),
        "{}",
        etc("apt/sources.list")
    );
    let chrony = etc("chrony/chrony.conf");
    assert!(
        !chrony
            .lines()
            .any(|l| l.starts_with("server") || l.starts_with("pool")),
        "{chrony}"
    );
    assert!(
        chrony.contains("sourcedir /etc/chrony/sources.d"),
        "{chrony}"
    );
    assert!(
        dump.path().join("etc/protocols").is_file(),
        "netbase: firewalld needs it"
    );
    assert!(etc("hosts").contains("localhost"));
}

/// Builds an image with one `[[users]]` account (a key pair made here), checks its files
/// from the outside, boots it as a primary with a gateway, DNS and NTP servers, and logs in
/// over SSH through `boot --ssh`, which forwards 127.0.0.1:PORT to the VIP: the account
/// works, sudo needs no password, the node made its own host keys at first boot (the image
/// has none), and the node is a complete network appliance (firewalld running with our zones,
/// its name, route, resolver and time servers, no package timers, no failed unit). From
/// outside, through QEMU's forwards to the VIP: AxoRouter's port answers, a port that a
/// process in the node listens on but the firewall does not list does not.
/// This node is also the Secure Boot proof (docs/secure-boot.md): its image is signed with a
/// key set from `keygen` and it boots under OVMF's Secure Boot firmware with that set enrolled,
/// its metadata from the ESP's node file; an argument added to its entry never arrives, and
/// the same disk with one byte of the UKI's command line changed is refused by the firmware.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn users_log_in_and_the_node_is_a_complete_appliance() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = work_dir().join("users");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (key, public) = ops_key(&dir);
    let public = public.as_str();
    let keys = dir.join("keys");
    sh(Command::new(&b.image_bin)
        .arg("keygen")
        .arg("--out")
        .arg(&keys));
    let set = keys.join("secure-boot");
    let update_pub = update_public_key(&keys);
    // Version 1 boots; version 2's bundle is the signed update applied below.
    let definition = |version: &str| {
        // net.ifnames=0 in the definition: under Secure Boot only the signed command line
        // boots.
        format!(
            "name = \"axoha\"\nprofile = \"debian-12\"\nversion = \"{version}\"\n\
             disk_size = \"3G\"\n\
             kernel_cmdline = \"console=ttyS0,115200 net.ifnames=0\"\n\
             [cluster.firewall]\nports = [\"4317/tcp\"]\n\
             [update]\npublic_key = \"{update_pub}\"\n\
             [[users]]\nname = \"ops\"\nssh_keys = [\"{public}\"]\nsudo = true\n\
             [secure_boot]\ncertificate = \"{}\"\nkey = \"{}\"\nenrol = \"force\"\n",
            set.join("db.crt").display(),
            set.join("db.key").display()
        )
    };
    let def = dir.join("axoha.toml");
    std::fs::write(&def, definition("1")).unwrap();
    let out = dir.join("out");
    let started = Instant::now();
    let res = build_demo_with(&out, "raw", &["--config".as_ref(), def.as_os_str()]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    eprintln!(
        "signed users variant built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let raw = out.join("axoha-demo-debian-12.raw");
    signed_rebuild_differs_only_in_signatures(&def, &raw, &dir.join("again"));
    let inspect = sh(Command::new(&b.image_bin).arg("inspect").arg(&raw));
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.contains("secure boot: signed for db certificate CN=axoha axoha image signing key")
            && inspect.contains("key enrolment from the ESP: force"),
        "{inspect}"
    );
    // The key set systemd-boot enrols, and the line that makes it do so in Setup Mode.
    let esp = format!("{}@@{}", raw.display(), partition_offset(&raw, "ESP"));
    for var in ["PK", "KEK", "db"] {
        let on_esp = sh(Command::new("mtype").args([
            "-i",
            &esp,
            &format!("::/loader/keys/auto/{var}.auth"),
        ]));
        assert_eq!(
            on_esp.stdout,
            std::fs::read(set.join(format!("{var}.auth"))).unwrap(),
            "{var}.auth on the ESP"
        );
    }
    let loader = sh(Command::new("mtype").args(["-i", &esp, "::/loader/loader.conf"]));
    assert!(
        String::from_utf8_lossy(&loader.stdout).contains("secure-boot-enroll force\n"),
        "{}",
        String::from_utf8_lossy(&loader.stdout)
    );
    let off = state_offset(&raw);
    let passwd = debugfs(&raw, off, "cat /etc/passwd");
    let ops = passwd
        .lines()
        .find(|l| l.starts_with("ops:"))
        .unwrap_or_else(|| panic!("no ops account: {passwd}"));
    let uid: u32 = ops.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid >= 1000, "{ops}");
    assert!(ops.ends_with(":/home/ops:/bin/bash"), "{ops}");
    // No password: `*` (not locked, so sshd lets the key in).
    let shadow = debugfs(&raw, off, "cat /etc/shadow");
    assert!(shadow.lines().any(|l| l.starts_with("ops:*:")), "{shadow}");
    assert!(debugfs(&raw, off, "stat /etc/shadow").contains("Mode:  0640"));
    let group = debugfs(&raw, off, "cat /etc/group");
    assert!(
        group.lines().any(|l| l.starts_with("sudo:")
            && l.split(':').nth(3).unwrap().split(',').any(|m| m == "ops")),
        "{group}"
    );
    assert_eq!(
        debugfs(&raw, off, "cat /home/ops/.ssh/authorized_keys"),
        format!("{public}\n")
    );
    for (path, mode) in [
        ("/home/ops/.ssh/authorized_keys", "0600"),
        ("/home/ops/.ssh", "0700"),
        ("/home/ops", "0700"),
    ] {
        let stat = debugfs(&raw, off, &format!("stat {path}"));
        assert!(stat.contains(&format!("Mode:  {mode}")), "{path}: {stat}");
        assert!(stat.contains(&format!("User: {uid:>5}")), "{path}: {stat}");
    }
    assert_eq!(
        debugfs(&raw, off, "cat /etc/sudoers.d/axoha-users")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["ops ALL=(ALL:ALL) NOPASSWD: ALL"]
    );
    assert!(debugfs(&raw, off, "stat /etc/sudoers.d/axoha-users").contains("Mode:  0440"));
    let wants = debugfs(&raw, off, "ls /etc/systemd/system/multi-user.target.wants");
    assert!(wants.contains("ssh.service"), "{wants}");
    assert!(!debugfs(&raw, off, "ls /etc/ssh").contains("ssh_host_"));
    assert!(usr_cat(
        &raw,
        "/usr/lib/systemd/system/ssh.service.d/axoha-host-keys.conf"
    )
    .contains("ssh-keygen -A"));

    // Boot it as a complete node: name, default route, DNS, time servers from metadata.
    let (port, router_port, other_port) = (free_port(), free_port(), free_port());
    let mut args = kargs(&ROUTER_A);
    args.extend(kargs(&[
        // Its own address on the VIP network (the second heartbeat path), which the
        // default route leaves from.
        "axoha.public_ip=198.51.100.10/24",
        "axoha.public_peers=198.51.100.11",
        "axoha.gateway=198.51.100.1",
        "axoha.dns=203.0.113.53,203.0.113.54",
        "axoha.ntp=203.0.113.123",
    ]));
    args.extend(["--ssh".to_owned(), port.to_string()]);
    for (host, guest) in [(router_port, 4317), (other_port, 8080)] {
        args.extend(["--forward".to_owned(), format!("{host}:{guest}")]);
    }
    // Secure Boot from Setup Mode (no keys, as a server whose keys were cleared):
    // systemd-boot enrols the image's own set (`enrol = "force"`) and resets the VM, which
    // then boots with Secure Boot on. (The refused UKI below boots with the set enrolled by
    // virt-fw-vars, the other route.) The metadata goes to the ESP's node file; the one-boot
    // argument goes into the entry, as if typed at the boot menu, and must never reach the
    // kernel.
    args.push("--secure-boot-setup-mode".to_owned());
    args.extend(kargs(&["systemd.unit=emergency.target"]));
    let (mut vm, booted) = boot(
        b,
        &raw,
        "users-ssh",
        &args,
        &[
            &["Enrolling secure boot keys from directory"],
            &["secureboot: Secure boot enabled"],
            &["role = \"primary\" from ESP node file"],
            &["SUCCESS: configured router-a primary"],
            &["axoha: VRRP axoha is now MASTER"],
        ],
        None,
    );
    assert!(
        !has_line(&booted, &["Kernel command line:", "emergency"]),
        "{booted}"
    );
    let node = Ssh {
        key: key.clone(),
        user: "ops".into(),
        port,
        netns: None,
    };
    let ssh = |script: &str| node.run(script);
    let started = Instant::now();
    let out = loop {
        let out = ssh("id -un; sudo -n id -u; ls /etc/ssh");
        if out.status.success() || started.elapsed() > Duration::from_secs(180) {
            break out;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh ops@VIP: {said}{}\nconsole:\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines[..2], ["ops", "0"], "{said}");
    assert!(
        lines.contains(&"ssh_host_ed25519_key.pub"),
        "host keys made at first boot: {said}"
    );
    // sudo resolves the node's own name without DNS (no "unable to resolve host").
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // From inside: every row of "a complete network appliance", one section per check.
    // The second listener (8080) is a process the node runs that the firewall must keep out.
    let report = ssh(
        "set -u; s() { echo \"== $1\"; }; \
         sudo -n systemd-run --quiet --unit=axoha-probe /usr/bin/axorouter --listen 0.0.0.0:8080; \
         sleep 1; \
         s firewalld; systemctl is-active firewalld; \
         s zones; sudo -n firewall-cmd --get-active-zones; \
         s ha-rules; sudo -n firewall-cmd --zone=axoha-ha --list-rich-rules | sort; \
         s vip-ports; sudo -n firewall-cmd --zone=axoha-vip --list-ports; \
         s vip-services; sudo -n firewall-cmd --zone=axoha-vip --list-services; \
         s vip-rules; sudo -n firewall-cmd --zone=axoha-vip --list-rich-rules; \
         s nft-vrrp; sudo -n nft list ruleset | grep -Ec 'l4proto vrrp|protocol vrrp'; \
         s probe-local; exec 3<>/dev/tcp/127.0.0.1/8080 && head -n1 <&3; exec 3<&-; \
         s route; ip route show default; \
         s resolv; grep -v '^#' /etc/resolv.conf; \
         s chrony; systemctl is-active chrony; sudo -n chronyc -n sources | tail -n +3 | awk '{print $2}'; \
         s hostname; hostname; \
         s hosts; getent hosts router-a | awk '{print $1}'; \
         s timers; systemctl list-timers --no-legend | grep -Ec 'apt|dpkg' || true; \
         systemctl is-enabled apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer; \
         s failed; systemctl --failed --no-legend --plain | grep -v axoha-probe || true; \
         s usr; findmnt -no SOURCE /usr; sudo -n dmsetup status usr | awk '{print $3, $4}'; \
         sudo -n touch /usr/axoha-x 2>/dev/null && echo usr-writable || echo usr-read-only; \
         s writable; sudo -n touch /etc/axoha-x /var/axoha-x && sudo -n rm /etc/axoha-x /var/axoha-x && echo etc-var-writable; \
         findmnt -no SOURCE,FSTYPE /; findmnt -no FSTYPE /efi; \
         s secure-boot; sudo -n bootctl status --no-pager 2>/dev/null | grep -E '^ *Secure Boot:'; \
         cat /sys/kernel/security/lockdown; \
         s cmdline; cat /proc/cmdline; \
         s end",
    );
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let section = |name: &str| report_section(&text, name);
    let why = format!(
        "{text}\n{}\nconsole:\n{}",
        String::from_utf8_lossy(&report.stderr),
        vm.console()
    );
    assert_eq!(section("firewalld"), ["active"], "{why}");
    let zones = section("zones").join("\n");
    assert!(
        zones.contains("axoha-ha\n  interfaces: eth0")
            && zones.contains("axoha-vip\n  interfaces: eth1"),
        "{why}"
    );
    assert_eq!(
        section("ha-rules"),
        // Sorted: firewalld lists a zone's rich rules in no fixed order.
        [
            // The metrics endpoint, from `metrics_from`'s default: the HA link's subnet.
            r#"rule family="ipv4" source address="192.0.2.0/24" port port="9650" protocol="tcp" accept"#,
            r#"rule family="ipv4" source address="192.0.2.11" protocol value="vrrp" accept"#,
        ],
        "{why}"
    );
    assert_eq!(section("vip-ports"), ["4317/tcp"], "{why}");
    assert_eq!(section("vip-services"), ["ssh"], "{why}");
    assert_eq!(
        section("vip-rules"),
        [r#"rule family="ipv4" source address="198.51.100.11" protocol value="vrrp" accept"#],
        "{why}"
    );
    assert_ne!(
        section("nft-vrrp"),
        ["0"],
        "VRRP rules loaded in nftables: {why}"
    );
    assert_eq!(section("probe-local"), ["axorouter-standin OK"], "{why}");
    assert_eq!(
        section("route"),
        ["default via 198.51.100.1 dev eth1 proto static "],
        "{why}"
    );
    assert_eq!(
        section("resolv"),
        ["nameserver 203.0.113.53", "nameserver 203.0.113.54"],
        "{why}"
    );
    assert_eq!(section("chrony"), ["active", "203.0.113.123"], "{why}");
    assert_eq!(section("hostname"), ["router-a"], "{why}");
    assert_eq!(section("hosts"), ["127.0.1.1"], "{why}");
    assert_eq!(
        section("timers"),
        ["0", "masked", "masked", "masked"],
        "no package-manager timers: {why}"
    );
    assert_eq!(
        section("failed"),
        Vec::<String>::new(),
        "no failed units: {why}"
    );
    // /usr is the verity-checked squashfs (dm-verity status V: verified so far), read-only;
    // /etc and /var are on the state partition, writable; the ESP is at /efi.
    assert_eq!(
        section("usr"),
        ["/dev/mapper/usr", "verity V", "usr-read-only"],
        "{why}"
    );
    let writable = section("writable");
    assert_eq!(writable[0], "etc-var-writable", "{why}");
    assert!(writable[1].ends_with(" ext4"), "{why}");
    assert_eq!(writable[2], "vfat", "{why}");
    let secure = section("secure-boot");
    assert_eq!(
        secure.first().map(|l| l.trim()),
        Some("Secure Boot: enabled (user)"),
        "{why}"
    );
    assert!(secure[1].contains("[integrity]"), "lockdown: {why}");
    // The signed command line: the definition's words, none added at the menu or the entry.
    let cmdline = section("cmdline").join(" ").trim_end().to_owned();
    assert!(
        cmdline.starts_with("usrhash=")
            && cmdline.ends_with(" rw console=ttyS0,115200 net.ifnames=0"),
        "{why}"
    );
    assert!(
        !cmdline.contains("emergency") && !cmdline.contains("axoha."),
        "{why}"
    );

    // From outside, through QEMU's forwards to the VIP: AxoRouter's port answers, the other
    // listener does not.
    assert_eq!(
        read_line(router_port),
        Some("axorouter-standin OK".to_owned()),
        "{why}"
    );
    assert_eq!(
        read_line(other_port),
        None,
        "port 8080 must be closed: {why}"
    );

    // Our units, and the daemons they start, put no error on the console.
    let console = vm.console();
    let ours = ["axoha", "keepalived", "axorouter", "firewalld", "chrony"];
    let errors: Vec<&str> = console
        .lines()
        .filter(|l| ours.iter().any(|u| l.contains(u)))
        .filter(|l| {
            ["FAILED", "ERROR", "INVALID_", "Traceback", "rror:"]
                .iter()
                .any(|e| l.contains(e))
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nconsole:\n{console}");

    // A counted update to a signed slot: version 2's bundle (built now, signed for the same
    // db) is applied, boots under Secure Boot and is blessed. First a bundle whose UKI another
    // key signed (the KEK's: not in db, so the firmware would refuse it): refused before a
    // byte is written.
    let v2 = signed_bundle(&dir, &definition("2"), &keys);
    let foreign = resigned_uki_bundle(&dir, &v2, &set, &keys);
    let entries_before = entries(&node);
    node.copy(&foreign, "/var/tmp/foreign.axoha-bundle");
    let refused = node.run("sudo -n axoha-update apply /var/tmp/foreign.axoha-bundle");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("not by this node's db certificate"),
        "a UKI signed by another key must be refused: {said}"
    );
    assert_eq!(entries(&node), entries_before, "nothing written: {said}");
    node.ok("sudo -n rm -f /var/tmp/foreign.axoha-bundle");
    let v2_hash = bundle_usrhash(&v2);
    copy_and_apply(&node, &v2, "");
    let from = vm.console().len();
    let _ = node.run("sudo -n systemctl reboot");
    assert!(
        vm.wait_after(
            from,
            &[
                &["secureboot: Secure boot enabled"],
                &["axoha: VRRP axoha is now MASTER"]
            ],
            BOOT_TIMEOUT
        )
        .is_some(),
        "version 2 did not boot under Secure Boot:\n{}",
        vm.console()
    );
    wait_blessed(&node, &v2_hash, &vm);
    let st = status(&node);
    assert_eq!(st["running_version"], "2", "{st}");
    let sb = node.ok("sudo -n bootctl status --no-pager 2>/dev/null | grep -E '^ *Secure Boot:'");
    assert_eq!(sb.trim(), "Secure Boot: enabled (user)", "{sb}");
    drop(vm);

    // One byte of the signed command line changed (its usrhash=), then the UKI with its
    // signature removed: the firmware refuses each and no kernel starts. Short boots that
    // watch the console. (`esp`: the same partition as above; `raw` is never booted itself.)
    let uki = dir.join("linux.efi");
    sh(Command::new("mcopy")
        .args(["-i", &esp, "::/axoha/a/linux.efi"])
        .arg(&uki));
    let mut changed = std::fs::read(&uki).unwrap();
    let at = changed
        .windows(8)
        .position(|w| w == b"usrhash=")
        .expect("the UKI's .cmdline holds usrhash=")
        + 8;
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    let bare = dir.join("linux.unsigned.efi");
    std::fs::copy(&uki, &bare).unwrap();
    // (sbattach removes the signature in place.)
    sh(Command::new("sbattach").arg("--remove").arg(&bare));
    let unsigned = std::fs::read(&bare).unwrap();
    for (what, bytes) in [("changed", changed), ("unsigned", unsigned)] {
        std::fs::write(&uki, bytes).unwrap();
        sh(Command::new("mcopy")
            .args(["-o", "-i", &esp])
            .arg(&uki)
            .arg("::/axoha/a/linux.efi"));
        let started = Instant::now();
        let log = work_dir().join(format!("secure-boot-refused-{what}-serial.log"));
        let vm = Vm::start(
            &b.image_bin,
            &raw,
            &log,
            &["--secure-boot".to_owned(), set.display().to_string()],
            None,
        );
        let refused = ["Access Denied", "Security Violation", "No bootable option"];
        let said = wait_until(Duration::from_secs(300), || {
            let text = vm.console();
            refused.iter().any(|r| text.contains(r))
        });
        let text = vm.console();
        drop(vm);
        assert!(said, "the firmware must refuse the {what} UKI:\n{text}");
        assert!(
            !text.contains("EFI stub") && !text.contains("Linux version"),
            "{what} UKI: no kernel may start: {text}"
        );
        eprintln!(
            "{what} UKI refused in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--target bundle` of `definition` (a signed image: its bundle carries the slot's signed
/// UKI), signed with `keys`' update key.
fn signed_bundle(dir: &Path, definition: &str, keys: &Path) -> PathBuf {
    let def = dir.join("axoha-v2.toml");
    std::fs::write(&def, definition).unwrap();
    let out = dir.join("out-v2");
    let res = build_demo_signed(&out, "bundle", &def, &keys.join("axoha-update.key"));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out.join("axoha-demo-debian-12.axoha-bundle")
}

/// `bundle` with its UKI's signature replaced by one of the KEK key (a key the firmware's db
/// does not hold), the bundle signed again with the cluster's own update key: only the UKI
/// check can refuse it.
fn resigned_uki_bundle(dir: &Path, bundle: &Path, set: &Path, keys: &Path) -> PathBuf {
    let parts = dir.join("foreign");
    let m = unpack(bundle, &parts);
    assert!(m.secure_boot.is_some(), "a signed image's bundle");
    let uki = parts.join("linux.efi");
    let bare = parts.join("linux.unsigned.efi");
    std::fs::copy(&uki, &bare).unwrap();
    sh(Command::new("sbattach").arg("--remove").arg(&bare));
    sh(Command::new("sbsign")
        .arg("--key")
        .arg(set.join("KEK.key"))
        .arg("--cert")
        .arg(set.join("KEK.crt"))
        .arg("--output")
        .arg(&uki)
        .arg(&bare));
    let out = dir.join("foreign.axoha-bundle");
    repack(&parts, m, "3", None, &keys.join("axoha-update.key"), &out);
    out
}

/// Reproducible but for the signatures (sbsign's are not deterministic): the signed disk built
/// again without its cached build has every byte outside the ESP the same, every ESP file the
/// same, and the two signed files (systemd-boot, slot A's UKI) the same once their signatures
/// are removed (`sbattach --remove`).
fn signed_rebuild_differs_only_in_signatures(def: &Path, raw: &Path, again: &Path) {
    let before = cached_builds();
    let manifest = std::fs::read_to_string(raw.with_file_name("manifest.json")).unwrap();
    let key = serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["inputs"]["build_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The signed build's own cache entry only (its manifest has the build key).
    let mut removed = 0;
    for entry in before {
        let text = std::fs::read_to_string(entry.join("manifest.json")).unwrap_or_default();
        if text.contains(&format!("\"build_key\": \"{key}\"")) {
            std::fs::remove_dir_all(entry).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "the signed build's cache entry");
    let res = build_demo_with(again, "raw", &["--config".as_ref(), def.as_os_str()]);
    let log = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{log}");
    assert!(!log.contains("disk: cache hit"), "built again: {log}");
    let raw2 = again.join("axoha-demo-debian-12.raw");
    let esp = partition_offset(raw, "ESP");
    let esp_end = partition_offset(raw, "usr-a");
    // Every byte outside the ESP.
    {
        use std::io::Read;
        let (mut a, mut b) = (
            std::fs::File::open(raw).unwrap(),
            std::fs::File::open(&raw2).unwrap(),
        );
        let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut at = 0u64;
        loop {
            let n = a.read(&mut x).unwrap();
            b.read_exact(&mut y[..n]).unwrap();
            if n == 0 {
                break;
            }
            // Whole chunks compared first (memcmp): a byte loop over 4 GiB is slow unoptimized.
            if x[..n] == y[..n] {
                at += n as u64;
                continue;
            }
            for (i, (p, q)) in x[..n].iter().zip(&y[..n]).enumerate() {
                let off = at + i as u64;
                assert!(
                    p == q || (esp..esp_end).contains(&off),
                    "the rebuilt signed disk differs at byte {off}, outside the ESP"
                );
            }
            at += n as u64;
        }
    }
    // Every file of the ESP.
    let tree = |disk: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        sh(Command::new("mcopy")
            .args([
                "-s",
                "-n",
                "-i",
                &format!("{}@@{esp}", disk.display()),
                "::/*",
            ])
            .arg(to));
    };
    let (t1, t2) = (again.join("esp-1"), again.join("esp-2"));
    tree(raw, &t1);
    tree(&raw2, &t2);
    let files = sh(Command::new("find")
        .arg(".")
        .args(["-type", "f"])
        .current_dir(&t1));
    let files = String::from_utf8_lossy(&files.stdout).into_owned();
    let signed = ["./EFI/BOOT/BOOTX64.EFI", "./axoha/a/linux.efi"];
    for f in files.lines() {
        let (p1, p2) = (t1.join(f), t2.join(f));
        if signed.contains(&f) {
            assert_ne!(
                std::fs::read(&p1).unwrap(),
                std::fs::read(&p2).unwrap(),
                "{f}"
            );
            for p in [&p1, &p2] {
                sh(Command::new("sbattach").arg("--remove").arg(p));
            }
        }
        assert!(
            std::fs::read(&p1).unwrap() == std::fs::read(&p2).unwrap(),
            "ESP file {f} differs between two signed builds (signatures removed)"
        );
    }
    for f in signed {
        assert!(files.lines().any(|l| l == f), "{f} on the ESP: {files}");
    }
    std::fs::remove_dir_all(again).unwrap();
}

/// The first line a TCP server on 127.0.0.1:PORT sends, if any within 10 s.
fn read_line(port: u16) -> Option<String> {
    use std::io::BufRead;
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    let line = line.trim_end().to_owned();
    (!line.is_empty()).then_some(line)
}

/// Boots until the needles show up, with one retry: about 1 boot in 12 hangs early under TCG.
/// A fresh ed25519 key pair for the `ops` login in `dir`: the private key's path and the
/// public line.
fn ops_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@example", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

/// The lines of section `name` of a report made of `== NAME` headers (what the VM tests'
/// one SSH command prints).
fn report_section(text: &str, name: &str) -> Vec<String> {
    text.split(&format!("== {name}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section {name} in:\n{text}"))
        .lines()
        .take_while(|l| !l.starts_with("== "))
        .map(str::to_owned)
        .collect()
}

fn boot(
    b: &Built,
    image: &Path,
    name: &str,
    args: &[String],
    needles: &[&[&str]],
    ns: Option<&IsolatedLoopback>,
) -> (Vm, String) {
    let log = work_dir().join(format!("{name}-serial.log"));
    for attempt in 1..=2 {
        let mut vm = Vm::start(&b.image_bin, image, &log, args, ns);
        if let Some(text) = vm.wait_for(needles, BOOT_TIMEOUT) {
            return (vm, text);
        }
        eprintln!(
            "{name}: boot attempt {attempt} did not get there:\n{}",
            vm.console()
        );
    }
    panic!("{name}: no boot reached {needles:?}");
}

/// A primary alone on its HA link, configured from the kernel command line only.
const ROUTER_A: [&str; 9] = [
    "net.ifnames=0",
    "axoha.role=primary",
    "axoha.ha_ip=192.0.2.10/24",
    "axoha.peers=192.0.2.11",
    "axoha.vip=198.51.100.64/24",
    "axoha.ha_if=eth0",
    "axoha.vip_if=eth1",
    "axoha.vrid=51",
    "axoha.hostname=router-a",
];

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn boots_under_qemu_with_uefi_and_configures_the_node() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let args = kargs(&ROUTER_A);
    let (_vm, text) = boot(
        b,
        &b.qcow2(),
        "cmdline-only",
        &args,
        &[
            &["SUCCESS: configured router-a primary"],
            &["Started", "keepalived.service"],
            // Alone on the HA link, the primary is master: the VIP is up.
            &["axoha: VRRP axoha is now MASTER"],
        ],
        None,
    );
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn without_metadata_the_console_says_what_is_missing_and_keepalived_stays_down() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (_vm, text) = boot(
        b,
        &b.qcow2(),
        "no-metadata",
        &kargs(&["net.ifnames=0"]),
        &[&["FAILED: invalid metadata", "missing role"], &["login:"]],
        None,
    );
    assert!(
        !has_line(&text, &["Started", "keepalived.service"]),
        "keepalived must stay down:\n{text}"
    );
    assert!(!text.contains("VRRP axoha is now"), "{text}");
}

/// The NetworkManager variant of debian-12 (`network = "networkmanager"`) with SELinux on
/// (`selinux = "permissive"`: Debian's reference policy, our module, the tree labelled at
/// build time), with an `ops` login: router-b of the pair below boots from it, so the
/// NetworkManager path of first boot (the keyfiles AlmaLinux nodes get) runs under the real
/// daemon, and under SELinux as on AlmaLinux, without a boot of its own. Returns the image
/// and the login key.
fn built_networkmanager() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(build_networkmanager)
}

fn build_networkmanager() -> (PathBuf, PathBuf) {
    let dir = work_dir().join("networkmanager");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (key, public) = ops_key(&dir);
    let def = dir.join("axoha.toml");
    std::fs::write(
        &def,
        format!(
            "name = \"axoha\"\nprofile = \"debian-12\"\nnetwork = \"networkmanager\"\n\
             selinux = \"permissive\"\ndisk_size = \"3G\"\nkernel_cmdline = \"console=ttyS0,115200\"\n\
             [cluster.firewall]\nports = [\"4317/tcp\"]\n\
             [[users]]\nname = \"ops\"\nssh_keys = [\"{}\"]\nsudo = true\n",
            public.trim()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let started = Instant::now();
    let res = build_demo_with(&out, "qcow2", &["--config".as_ref(), def.as_os_str()]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // The variant's rootfs has more packages (network-manager, selinux-policy-default,
    // auditd): its own cache entry.
    eprintln!(
        "networkmanager variant built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    (out.join("axoha-demo-debian-12.qcow2"), key)
}

/// The variant's cached rootfs tree: the one that has NetworkManager.
fn networkmanager_tree() -> PathBuf {
    let cache = &tools().cache;
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "tree") && p.join("usr/sbin/NetworkManager").exists()
        })
        .unwrap_or_else(|| panic!("no rootfs with NetworkManager in {}", cache.display()))
}

/// `section -> key -> value` of a keyfile; NetworkManager's own spelling of a gateway
/// (`address1=ADDR,GATEWAY`) is read as `address1` and `gateway`.
fn keyfile(text: &str) -> std::collections::BTreeMap<(String, String), String> {
    let mut out = std::collections::BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let (value, gateway) = match (key, value.split_once(',')) {
            ("address1", Some((addr, gw))) => (addr, Some(gw)),
            _ => (value, None),
        };
        out.insert((section.clone(), key.to_owned()), value.to_owned());
        if let Some(gw) = gateway {
            out.insert((section.clone(), "gateway".to_owned()), gw.to_owned());
        }
    }
    out
}

/// NetworkManager's own offline reader loads every keyfile first boot writes, and keeps every
/// value as written: IPv4 and IPv6, the HA link alone and with the second heartbeat path,
/// gateway and DNS. Debian's NetworkManager 1.42 has it (`nmcli --offline connection modify`
/// reads a keyfile on stdin, checks it as the daemon does and prints it back), although its
/// `--help` does not list `--offline`. Run from the variant's rootfs tree (read only).
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn networkmanager_reads_every_keyfile_first_boot_writes() {
    {
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        built_networkmanager();
    }
    let tree = networkmanager_tree();
    let v4 = "axoha.role=secondary axoha.ha_ip=192.0.2.11/24 axoha.peers=192.0.2.10 \
              axoha.vip=198.51.100.64/24 axoha.ha_if=eth0 axoha.vip_if=eth1 axoha.vrid=51";
    let v6 = "axoha.role=secondary axoha.ha_ip=2001:db8::11/64 axoha.peers=2001:db8::10 \
              axoha.vip=2001:db8:1::64/64 axoha.ha_if=eth0 axoha.vip_if=eth1 axoha.vrid=51";
    let cases = [
        ("ipv4 ha link only", v4.to_owned()),
        (
            "ipv4 two paths, gateway, dns",
            format!(
                "{v4} axoha.public_ip=198.51.100.11/24 axoha.public_peers=198.51.100.10 \
                 axoha.gateway=198.51.100.1 axoha.dns=203.0.113.53,203.0.113.54"
            ),
        ),
        ("ipv6 ha link only", v6.to_owned()),
        (
            "ipv6 two paths, gateway, dns",
            format!(
                "{v6} axoha.public_ip=2001:db8:1::11/64 axoha.public_peers=2001:db8:1::10 \
                 axoha.gateway=2001:db8:1::1 axoha.dns=2001:db8:2::53"
            ),
        ),
    ];
    // What NetworkManager leaves out because it is its default.
    let defaults = [(("connection", "autoconnect"), "true")];
    for (case, cmdline) in cases {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/axoha")).unwrap();
        std::fs::write(
            root.path().join("usr/lib/axoha/network"),
            "networkmanager\n",
        )
        .unwrap();
        let cmdline_file = root.path().join("cmdline");
        std::fs::write(&cmdline_file, &cmdline).unwrap();
        axoha_tests::firstboot::apply(root.path(), &cmdline_file).unwrap();
        for id in ["axoha-ha", "axoha-vip"] {
            let ours = std::fs::read_to_string(root.path().join(format!(
                "etc/NetworkManager/system-connections/{id}.nmconnection"
            )))
            .unwrap();
            let mut child = Command::new("chroot")
                .arg(&tree)
                .args(["/usr/bin/nmcli", "--offline", "connection", "modify"])
                .args(["connection.id", id])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(ours.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let theirs = String::from_utf8_lossy(&out.stdout);
            let why = format!(
                "{case}, {id}:\n--- ours\n{ours}--- NetworkManager's\n{theirs}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "NetworkManager refused it: {why}"
            );
            let theirs = keyfile(&theirs);
            for ((section, key), value) in keyfile(&ours) {
                let kept = theirs.get(&(section.clone(), key.clone()));
                let default = defaults
                    .iter()
                    .any(|((s, k), v)| *s == section && *k == key && *v == value);
                assert!(
                    kept == Some(&value) || (kept.is_none() && default),
                    "[{section}] {key}={value} read back as {kept:?}: {why}"
                );
            }
        }
    }
}

/// Two nodes on both heartbeat paths (the HA link and the VIP network): router-a from the
/// default (systemd-networkd) image and a NoCloud seed, router-b from the NetworkManager
/// variant and an OpenStack config drive. Inside router-b:
/// NetworkManager loaded first boot's keyfiles (both links up with their addresses, each bound
/// to its firewalld zone, the default route and DNS from the metadata), and it hears router-a
/// over both paths; a drain and an undrain of router-b; then the primary powers off and
/// router-b takes the VIP, and answers a client's connection that was open on router-a with
/// an RST (firewalld and conntrack do not swallow it). router-b runs SELinux (permissive, Debian's reference policy): no
/// denial concerns keepalived, the notify script, our units, AxoRouter, NetworkManager or
/// firewalld (`selinux_report`).
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn two_vms_from_a_seed_and_a_config_drive_fail_over_when_the_primary_powers_off() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (nm_image, key) = built_networkmanager();
    let (nm_image, key) = (nm_image.clone(), key.clone());
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        "vip = \"198.51.100.64/24\"\nha_if = \"eth0\"\nvip_if = \"eth1\"\nvrid = 51\n\
         gateway = \"198.51.100.1\"\ndns = [\"203.0.113.53\", \"203.0.113.54\"]\n\
         metrics_from = [\"192.0.2.0/24\", \"198.51.100.192/26\"]\n\n\
         [[nodes]]\nname = \"router-a\"\nrole = \"primary\"\nha_ip = \"192.0.2.10/24\"\n\
         public_ip = \"198.51.100.10/24\"\nmac = \"52:54:00:0a:00:0a\"\n\n\
         [[nodes]]\nname = \"router-b\"\nrole = \"secondary\"\nha_ip = \"192.0.2.11/24\"\n\
         public_ip = \"198.51.100.11/24\"\nmac = \"52:54:00:0a:00:0b\"\n",
    )
    .unwrap();
    // router-a from a NoCloud seed, router-b from an OpenStack config drive found by label
    // (the metadata service has a boot of its own below): one cluster description for both.
    let seeds = dir.path().join("seeds");
    let drives = dir.path().join("configdrive");
    for (format, out) in [("nocloud", &seeds), ("configdrive", &drives)] {
        sh(Command::new(&b.image_bin)
            .args(["seed", "--all", "--format", format, "--cluster"])
            .arg(&cluster)
            .arg("-o")
            .arg(out));
    }
    let ns = IsolatedLoopback::new("pair");
    let port = 20000 + (std::process::id() % 20000);
    // The VIP network: a UDP pair on loopback, one port per VM; only router-b's QEMU has a
    // user network on it (SSH to its public_ip), so it stays reachable after the failover.
    let vip_a = 41000 + (std::process::id() % 10000) as u16 * 2 % 10000;
    let ssh_port = free_port();
    // No --mac: boot takes each node's HA MAC from its seed or drive, as the README's
    // commands do.
    let vm_args = |name: &str, own: u16, other: u16| {
        let from = if name == "router-b" { &drives } else { &seeds };
        let mut a = vec![
            "--seed".to_owned(),
            from.join(format!("{name}.iso")).display().to_string(),
            "--net".to_owned(),
            format!("mcast:{port}"),
            "--vip-net".to_owned(),
            format!("udp:{own}:{other}"),
        ];
        a.extend(kargs(&["net.ifnames=0"]));
        a
    };
    let a_args = vm_args("router-a", vip_a, vip_a + 1);
    let mut b_args = vm_args("router-b", vip_a + 1, vip_a);
    b_args.extend(["--ssh".to_owned(), ssh_port.to_string()]);
    // Both metrics endpoints from outside, over the VIP side: router-b's user network
    // forwards them, and its QEMU host address (in .200-.249) is one of metrics_from's
    // sources (198.51.100.192/26); router-b's own public_ip is not.
    let (metrics_a, metrics_b) = (free_port(), free_port());
    for (port, addr) in [(metrics_a, "198.51.100.10"), (metrics_b, "198.51.100.11")] {
        b_args.extend(["--forward-to".to_owned(), format!("{port}:{addr}:9650")]);
    }
    // A TCP client of the VIP (AxoRouter's port) for the RST check across the failover.
    let vip_router = free_port();
    b_args.extend(["--forward".to_owned(), format!("{vip_router}:4317")]);
    let a_needles: [&[&str]; 2] = [
        &["SUCCESS: configured router-a primary"],
        &["VRRP axoha is now MASTER"],
    ];
    let b_needles: [&[&str]; 3] = [
        &["axoha.role (meta) = \"secondary\" from OpenStack config drive"],
        &["SUCCESS: configured router-b secondary"],
        &["VRRP axoha is now BACKUP"],
    ];
    // Both boot at once (they must see each other), each retried once on its own.
    let log_a = work_dir().join("router-a-serial.log");
    let log_b = work_dir().join("router-b-serial.log");
    let mut vm_a = Vm::start(&b.image_bin, &b.qcow2(), &log_a, &a_args, Some(&ns));
    let mut vm_b = Vm::start(&b.image_bin, &nm_image, &log_b, &b_args, Some(&ns));
    if vm_a.wait_for(&a_needles, BOOT_TIMEOUT).is_none() {
        eprintln!("router-a: retrying the boot:\n{}", vm_a.console());
        drop(vm_a);
        vm_a = boot(b, &b.qcow2(), "router-a", &a_args, &a_needles, Some(&ns)).0;
    }
    if vm_b.wait_for(&b_needles, BOOT_TIMEOUT).is_none() {
        eprintln!("router-b: retrying the boot:\n{}", vm_b.console());
        drop(vm_b);
        vm_b = boot(b, &nm_image, "router-b", &b_args, &b_needles, Some(&ns)).0;
    }
    // The VIP is on the primary only. A secondary that boots first is MASTER until the
    // primary's keepalived runs and preempts it, so wait for the states to settle.
    let settled = wait_until(Duration::from_secs(120), || {
        vrrp_state(&vm_a.console()) == Some("MASTER")
            && vrrp_state(&vm_b.console()) == Some("BACKUP")
    });
    assert!(
        settled,
        "primary MASTER and secondary BACKUP expected:\n--- router-a\n{}\n--- router-b\n{}",
        vm_a.console(),
        vm_b.console()
    );

    let node = Ssh {
        key,
        user: "ops".into(),
        port: ssh_port,
        netns: Some(&ns),
    };
    assert!(
        node.wait(Duration::from_secs(180)),
        "ssh router-b:\n{}",
        vm_b.console()
    );
    let report = node.run(
        "set -u; s() { echo \"== $1\"; }; \
         s daemons; systemctl is-active NetworkManager systemd-networkd || true; \
         s version; nmcli --version; \
         s active; nmcli -t -f NAME,DEVICE,STATE connection show --active | grep -v '^lo:' | sort; \
         s nm-zones; nmcli -g connection.zone connection show axoha-ha; nmcli -g connection.zone connection show axoha-vip; \
         s keyfile-warnings; sudo -n journalctl -b -u NetworkManager --no-pager -o cat | grep -E '<(warn|error)>' | grep -Ei 'keyfile|axoha|nmconnection' || true; \
         s addresses; ip -4 -o addr show dev eth0 | awk '{print $4}'; ip -4 -o addr show dev eth1 | awk '{print $4}'; \
         s zones; sudo -n firewall-cmd --get-active-zones; \
         s zone-of; sudo -n firewall-cmd --get-zone-of-interface=eth0; sudo -n firewall-cmd --get-zone-of-interface=eth1; \
         s route; ip route show default; \
         s resolv; grep '^nameserver' /etc/resolv.conf; \
         s paths; sudo -n axoha-firstboot status | grep -E '^  (ha link|vip network)' | awk '{print $3, $4, $5}'; \
         s failed; systemctl --failed --no-legend --plain; \
         s end",
    );
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let section = |name: &str| report_section(&text, name);
    let why = format!(
        "{text}\n{}\nrouter-b console:\n{}",
        String::from_utf8_lossy(&report.stderr),
        vm_b.console()
    );
    eprintln!("router-b: NetworkManager {:?}", section("version"));
    assert_eq!(section("daemons"), ["active", "inactive"], "{why}");
    // (The report leaves out `lo`, which NetworkManager 1.42 lists as a connection of its own.)
    assert_eq!(
        section("active"),
        ["axoha-ha:eth0:activated", "axoha-vip:eth1:activated"],
        "{why}"
    );
    assert_eq!(section("nm-zones"), ["axoha-ha", "axoha-vip"], "{why}");
    assert_eq!(section("keyfile-warnings"), Vec::<String>::new(), "{why}");
    // A backup holds its own addresses only (the VIP is router-a's).
    assert_eq!(
        section("addresses"),
        ["192.0.2.11/24", "198.51.100.11/24"],
        "{why}"
    );
    let zones = section("zones").join("\n");
    assert!(
        zones.contains("axoha-ha\n  interfaces: eth0")
            && zones.contains("axoha-vip\n  interfaces: eth1"),
        "{why}"
    );
    assert_eq!(section("zone-of"), ["axoha-ha", "axoha-vip"], "{why}");
    let route = section("route");
    assert!(
        route.len() == 1 && route[0].starts_with("default via 198.51.100.1 dev eth1 proto static"),
        "{why}"
    );
    assert_eq!(
        section("resolv"),
        ["nameserver 203.0.113.53", "nameserver 203.0.113.54"],
        "{why}"
    );
    // The backup hears the master's adverts on both heartbeat paths.
    assert_eq!(
        section("paths"),
        ["eth0 192.0.2.10 heard", "eth1 198.51.100.10 heard"],
        "{why}"
    );
    assert_eq!(section("failed"), Vec::<String>::new(), "{why}");

    // Monitoring (issue 25): both nodes scraped from outside, the VIP side refused.
    let metrics_started = Instant::now();
    let (a_text, b_text) = metrics_of_the_pair(&ns, metrics_a, metrics_b, &node);
    let b_transitions = metric(
        &b_text,
        r#"axoha_vrrp_transitions_total{vrrp_instance="axoha"}"#,
    );
    let b_last = metric(
        &b_text,
        r#"axoha_vrrp_last_transition_timestamp_seconds{vrrp_instance="axoha"}"#,
    );
    let monitoring_secs = metrics_started.elapsed().as_secs_f64();
    let _ = a_text;

    // The zone XML names the interfaces too; this shows NetworkManager binds them itself: take
    // eth0 out of its zone in firewalld's running state, then let NetworkManager activate
    // axoha-ha again. (The backup still hears the master over eth1 meanwhile.)
    let rebound = node.run(
        "sudo -n firewall-cmd --zone=axoha-ha --remove-interface=eth0 >/dev/null; \
         sudo -n firewall-cmd --get-zone-of-interface=eth0 2>&1; \
         sudo -n nmcli connection up axoha-ha >/dev/null; \
         for i in $(seq 40); do \
           z=$(sudo -n firewall-cmd --get-zone-of-interface=eth0 2>&1); \
           [ \"$z\" = axoha-ha ] && break; sleep 0.5; done; echo \"$z\"",
    );
    let rebound = String::from_utf8_lossy(&rebound.stdout).into_owned();
    let zones: Vec<&str> = rebound.lines().collect();
    assert!(
        zones.len() == 2 && zones[0] != "axoha-ha" && zones[1] == "axoha-ha",
        "eth0 unbound, then bound again by NetworkManager: {rebound}\nconsole:\n{}",
        vm_b.console()
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            vrrp_state(&vm_b.console()) == Some("BACKUP")
                && vrrp_state(&vm_a.console()) == Some("MASTER")
        }),
        "still primary MASTER, secondary BACKUP:\n{}",
        vm_b.console()
    );

    // A drain of the backup (router-a, healthy, holds the VIP) and its undrain: keepalived
    // reads the drain file, first boot's commands run under SELinux; router-a stays MASTER.
    let drained = node.run(
        "sudo -n axoha-firstboot drain >/dev/null; echo \"drain $?\"; \
         sudo -n axoha-firstboot status --listen-ms 0 | grep '^drain:'; \
         sudo -n axoha-firstboot undrain >/dev/null; echo \"undrain $?\"; \
         sudo -n axoha-firstboot status --listen-ms 0 | grep '^drain:'; \
         sudo -n axoha-firstboot health 2>&1; echo \"health $?\"",
    );
    let drained = String::from_utf8_lossy(&drained.stdout).into_owned();
    let lines: Vec<&str> = drained.lines().collect();
    assert!(
        lines.len() == 6
            && lines[0] == "drain 0"
            && lines[1].contains("drained by the operator")
            && lines[2] == "undrain 0"
            && lines[3].ends_with("not drained")
            && lines[5] == "health 0",
        "drain, undrain and health on router-b: {drained}\nconsole:\n{}",
        vm_b.console()
    );
    assert!(
        vrrp_state(&vm_a.console()) == Some("MASTER"),
        "router-a keeps the VIP while router-b drains:\n{}",
        vm_a.console()
    );

    // A connection to the VIP, open on router-a when it powers off (issue 22).
    let mut client = VipClient::connect(&ns, vip_router);
    // Power off the primary: the secondary takes the VIP within a few seconds.
    let off = Instant::now();
    drop(vm_a);
    let took = wait_until(Duration::from_secs(30), || {
        vrrp_state(&vm_b.console()) == Some("MASTER")
    });
    assert!(
        took,
        "router-b did not take the VIP after the primary powered off:\n{}",
        vm_b.console()
    );
    eprintln!(
        "failover after power-off: {:.1} s",
        off.elapsed().as_secs_f64()
    );
    let vip = node.ok("ip -4 -o addr show dev eth1 | awk '{print $4}'");
    assert!(
        vip.lines().any(|l| l == "198.51.100.64/24"),
        "the VIP on router-b's eth1 (NetworkManager leaves keepalived's address alone): {vip}"
    );

    // The client's next segment reaches router-b, which has no such connection: with
    // firewalld's rules and conntrack in force it answers with an RST (QEMU's user network,
    // the client's TCP peer, then closes the client's socket), so the client reconnects
    // instead of retransmitting into silence for minutes.
    let answered = client.send_after_failover();
    if answered != "reset" {
        // What the node did with the segments (IP and TCP counters: arrived, reached TCP,
        // answered with an RST), its neighbours, addresses, sockets and VIP zone.
        let look = node.run(
            "grep -A1 -E '^(Ip|Tcp):' /proc/net/snmp; ip neigh show dev eth1; \
             ip -o addr show dev eth1; ss -tan; sudo -n firewall-cmd --zone=axoha-vip --list-all",
        );
        eprintln!(
            "router-b around the stale segment:\n{}",
            String::from_utf8_lossy(&look.stdout)
        );
    }
    assert!(
        answered == "reset",
        "a segment of router-a's connection to the VIP, on router-b: {answered} (an RST \
         expected: router-b must not drop it)\nrouter-b console:\n{}",
        vm_b.console()
    );
    eprintln!("stale connection after the failover: {answered} by router-b");
    drop(client);

    // The VIP moved: router-b's endpoint says so, with one more transition, newer.
    let moved = Instant::now();
    let mut text = String::new();
    let changed = wait_until(Duration::from_secs(60), || {
        text = scrape(&ns, metrics_b).unwrap_or_default();
        text.lines()
            .any(|l| l == r#"axoha_vrrp_state{state="MASTER",vrrp_instance="axoha"} 1"#)
            && text
                .lines()
                .any(|l| l == r#"axoha_vip_held{interface="eth1",vip="198.51.100.64/24"} 1"#)
    });
    assert!(changed, "router-b's metrics after the failover:\n{text}");
    assert!(
        metric(
            &text,
            r#"axoha_vrrp_transitions_total{vrrp_instance="axoha"}"#
        ) > b_transitions,
        "{text}"
    );
    assert!(
        metric(
            &text,
            r#"axoha_vrrp_last_transition_timestamp_seconds{vrrp_instance="axoha"}"#
        ) > b_last,
        "{text}"
    );
    has_lines(
        &text,
        &[r#"axoha_node_info{node="router-b",role="secondary",vip="198.51.100.64/24"} 1"#],
    );
    eprintln!(
        "monitoring checks: {:.1} s",
        monitoring_secs + moved.elapsed().as_secs_f64()
    );
    selinux_report(&node, &vm_b.console());
}

/// A denial is ours when one of our programs was denied (`comm`: keepalived, the notify script,
/// our binaries, AxoRouter and its check, the `systemctl` keepalived runs) or when it names
/// one of our files (the keyfile NetworkManager reads, the zone firewalld reads, anything
/// named axoha or keepalived). NetworkManager's and firewalld's other denials under Debian's
/// policy (chrony's dispatcher scripts, libffi's memfd trampolines) are the distribution's:
/// printed, not failed.
const OURS: [&str; 6] = [
    // Any mention: our programs (`comm="axoha-..."`, keepalived) and files alike.
    "axoha",
    "keepalived",
    "comm=\"axorouter\"",
    "comm=\"check-router\"",
    "comm=\"systemctl\"",
    ".nmconnection",
];

/// router-b after first boot, both VRRP states, a drain and a failover, with SELinux on:
/// permissive with Debian's policy and our modules loaded, the image's arguments on the
/// command line, NetworkManager and firewalld in their confined domains (keepalived and our
/// units in `initrc_t`: Debian's policy has no keepalived domain), our files with the labels
/// those domains read, the health check run, and no denial of ours. Every denial seen is
/// printed.
fn selinux_report(node: &Ssh, console: &str) {
    let report = node.run(
        "set -u; s() { echo \"== $1\"; }; \
         s mode; sudo -n getenforce; \
         s policy; sudo -n sestatus | awk -F': *' '/^Loaded policy name/ {print $2}'; \
         s modules; sudo -n semodule -l | awk '$1 ~ /^(keepalived_axorouter|axoha_rhel_types)$/ {print $1}' | sort; \
         s cmdline; tr ' ' '\\n' < /proc/cmdline | grep -E '^(security|selinux|enforcing)=' || true; \
         s domains; ps -eo label=,comm= | awk '$2 ~ /^(keepalived|NetworkManager|firewalld|axorouter)$/ {split($1, c, \":\"); print $2, c[3]}' | sort -u; \
         s labels; for f in /etc/NetworkManager/system-connections/axoha-ha.nmconnection \
           /etc/firewalld/zones/axoha-ha.xml /etc/keepalived/keepalived.conf /run/axoha \
           /usr/libexec/keepalived/axoha-vrrp-notify /var/lib/axoha /etc/axoha/node.toml; do \
           sudo -n stat -c '%n %C' \"$f\"; done; \
         s health-checks; sudo -n journalctl -b -u keepalived -o cat | grep -c 'VRRP_Script(axoha_health) succeeded' || true; \
         s transitions; sudo -n cat /run/axoha/transitions | awk '{print $2, $3}'; \
         s denials; { sudo -n ausearch -m AVC,USER_AVC,SELINUX_ERR -ts boot 2>/dev/null || true; \
           sudo -n journalctl -b -o cat | grep -E 'avc: +denied|SELINUX_ERR' || true; \
           sudo -n dmesg | grep -E 'avc: +denied|SELINUX_ERR' || true; } \
           | grep -E 'avc: +denied|SELINUX_ERR' | grep -v 'COMMAND=' | sed -E 's/^.*(avc: +denied|SELINUX_ERR)/\\1/; s/ pid=[0-9]+//; s/ ino=[0-9]+//' | sort -u; \
         s end",
    );
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let section = |name: &str| report_section(&text, name);
    let why = format!(
        "{text}\n{}\nrouter-b console:\n{console}",
        String::from_utf8_lossy(&report.stderr)
    );
    let denials = section("denials");
    eprintln!(
        "router-b SELinux: {:?}, domains {:?}, {} denial(s) since boot:",
        section("mode"),
        section("domains"),
        denials.len()
    );
    for d in &denials {
        eprintln!("  {d}");
    }
    assert_eq!(section("mode"), ["Permissive"], "{why}");
    assert_eq!(section("policy"), ["default"], "{why}");
    assert_eq!(
        section("modules"),
        ["axoha_rhel_types", "keepalived_axorouter"],
        "{why}"
    );
    assert_eq!(
        section("cmdline"),
        ["security=selinux", "selinux=1"],
        "{why}"
    );
    let domains = section("domains");
    for expected in [
        "NetworkManager NetworkManager_t",
        "firewalld firewalld_t",
        "keepalived initrc_t",
        "axorouter initrc_t",
    ] {
        assert!(domains.iter().any(|d| d == expected), "{expected}: {why}");
    }
    let label = |path: &str| -> String {
        section("labels")
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{path} ")))
            .and_then(|c| c.split(':').nth(2))
            .unwrap_or_else(|| panic!("no label of {path}: {why}"))
            .to_owned()
    };
    // What the confined daemons read is labelled for them (first boot writes in place, the
    // directory's type is inherited), and nothing is unlabelled.
    assert_eq!(
        label("/etc/NetworkManager/system-connections/axoha-ha.nmconnection"),
        "NetworkManager_etc_rw_t",
        "{why}"
    );
    assert_eq!(
        label("/etc/firewalld/zones/axoha-ha.xml"),
        "firewalld_etc_rw_t",
        "{why}"
    );
    assert!(
        !section("labels").iter().any(|l| l.contains("unlabeled_t")),
        "{why}"
    );
    let checks: u32 = section("health-checks")
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        checks >= 1,
        "keepalived's health check never succeeded: {why}"
    );
    // The notify script ran for both states (as BACKUP at boot, as MASTER after the failover).
    let transitions = section("transitions").join("\n");
    assert!(
        transitions.contains("BACKUP") && transitions.contains("MASTER"),
        "{why}"
    );
    let ours: Vec<&String> = denials
        .iter()
        .filter(|d| OURS.iter().any(|o| d.contains(o)))
        .collect();
    assert!(
        ours.is_empty(),
        "SELinux denials of keepalived, the notify script, our units, AxoRouter, \
         NetworkManager or firewalld: {ours:#?}\n{why}"
    );
}

/// A TCP client of the VIP through a forward on 127.0.0.1 inside `ns` (Python, a process we
/// started, killed by PID on drop), to AxoRouter's port: the stand-in greets and closes its
/// side, the client keeps its own side open (a half-closed connection the holder remembers)
/// until [`VipClient::send_after_failover`].
struct VipClient {
    child: std::process::Child,
    said: std::io::BufReader<std::process::ChildStdout>,
}

impl VipClient {
    fn connect(ns: &IsolatedLoopback, port: u16) -> VipClient {
        use std::io::BufRead;
        let mut child = ns
            .command("python3")
            .args([
                "-c",
                // After the failover: a line every 0.5 s on the old connection. QEMU's user
                // network is the client's TCP peer: when the node answers a segment with an
                // RST it closes this socket, and the next write fails.
                "import socket, sys, time\n\
                 s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)\n\
                 print('greeted' if s.recv(64).startswith(b'axorouter') else 'other', flush=True)\n\
                 sys.stdin.readline()\n\
                 end = time.monotonic() + 20\n\
                 try:\n\
                 \x20   while time.monotonic() < end:\n\
                 \x20       s.sendall(b'line after the failover\\n')\n\
                 \x20       time.sleep(0.5)\n\
                 \x20   print('no answer in 20 s', flush=True)\n\
                 except (BrokenPipeError, ConnectionResetError):\n\
                 \x20   print('reset', flush=True)\n",
                &port.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut said = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = said.read_line(&mut line);
        let client = VipClient { child, said };
        assert_eq!(
            line.trim(),
            "greeted",
            "AxoRouter on the VIP through the forward"
        );
        client
    }

    /// Writes on the old connection: `reset` when the node answered with an RST within 20 s,
    /// else `no answer in 20 s`.
    fn send_after_failover(&mut self) -> String {
        use std::io::{BufRead, Write};
        let _ = self.child.stdin.as_mut().unwrap().write_all(b"go\n");
        let mut line = String::new();
        let _ = self.said.read_line(&mut line);
        line.trim().to_owned()
    }
}

impl Drop for VipClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` through a forward on 127.0.0.1 inside `ns` (Python's urllib).
fn scrape(ns: &IsolatedLoopback, port: u16) -> Result<String, String> {
    let out = ns
        .command("python3")
        .args([
            "-c",
            "import sys, urllib.request as u; \
             sys.stdout.write(u.urlopen('http://127.0.0.1:%s/metrics' % sys.argv[1], \
             timeout=10).read().decode())",
            &port.to_string(),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `promtool check metrics` on `text`: passed, and what it said.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-deps installs it)");
    let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A sample's value (`NAME{LABELS}` as the endpoint writes it); 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "no line {line:?} in:\n{text}"
        );
    }
}

/// The pair's metrics, router-a MASTER and router-b BACKUP, scraped from outside through
/// router-b's forwards (the VIP side, from a metrics_from source): every metric there with
/// its value, `promtool check metrics` content, the same facts as the two `status` commands
/// and the login banner; from router-b's own address on the VIP side (not a metrics_from
/// source) router-a's endpoint is refused by its firewall, over the HA link it answers. And
/// the journal is persistent (issue 25's item 4).
fn metrics_of_the_pair(
    ns: &IsolatedLoopback,
    metrics_a: u16,
    metrics_b: u16,
    node: &Ssh,
) -> (String, String) {
    // The heartbeat listener's first window (four adverts) must have ended.
    let mut texts = (String::new(), String::new());
    let ready = wait_until(Duration::from_secs(90), || {
        texts = (
            scrape(ns, metrics_a).unwrap_or_else(|e| e),
            scrape(ns, metrics_b).unwrap_or_else(|e| e),
        );
        [&texts.0, &texts.1].iter().all(|t| {
            t.lines()
                .any(|l| l == r#"axoha_read_ok{part="heartbeat"} 1"#)
        })
    });
    let (a, b) = texts;
    assert!(ready, "--- router-a\n{a}\n--- router-b\n{b}");
    for (name, text) in [("router-a", &a), ("router-b", &b)] {
        let (ok, said) = promtool_check_metrics(text);
        assert!(ok, "promtool check metrics on {name}: {said}\n{text}");
        has_lines(
            text,
            &[
                "axoha_first_boot_done 1",
                "axoha_healthy 1",
                r#"axoha_unit_active{unit="keepalived.service"} 1"#,
                r#"axoha_unit_active{unit="axorouter.service"} 1"#,
                r#"axoha_read_ok{part="config"} 1"#,
                r#"axoha_read_ok{part="pair"} 1"#,
                r#"axoha_read_ok{part="health"} 1"#,
                r#"axoha_read_ok{part="update"} 1"#,
                "axoha_update_rolled_back 0",
                r#"axoha_update_outcome{outcome="ok"} 1"#,
                "axoha_etc_kept_files 0",
                "axoha_drained 0",
            ],
        );
        for series in [
            "axoha_image_info{",
            "axoha_other_slot_info{",
            "axoha_boot_tries_left ",
            "axoha_boot_blessed ",
            r#"axoha_vrrp_transitions_total{vrrp_instance="axoha"} "#,
            r#"axoha_vrrp_last_transition_timestamp_seconds{vrrp_instance="axoha"} "#,
            "axoha_heartbeat_since_timestamp_seconds{",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{name}: no {series}...\n{text}"
            );
        }
        assert!(
            metric(
                text,
                r#"axoha_vrrp_transitions_total{vrrp_instance="axoha"}"#
            ) >= 1.0,
            "{text}"
        );
    }
    has_lines(
        &a,
        &[
            r#"axoha_node_info{node="router-a",role="primary",vip="198.51.100.64/24"} 1"#,
            r#"axoha_vrrp_state{state="MASTER",vrrp_instance="axoha"} 1"#,
            r#"axoha_vrrp_state{state="BACKUP",vrrp_instance="axoha"} 0"#,
            r#"axoha_vip_held{interface="eth1",vip="198.51.100.64/24"} 1"#,
            // Only the master advertises: the master hears nobody.
            r#"axoha_heartbeat_heard{interface="eth0",path="ha link",peer="192.0.2.11"} 0"#,
        ],
    );
    has_lines(
        &b,
        &[
            r#"axoha_node_info{node="router-b",role="secondary",vip="198.51.100.64/24"} 1"#,
            r#"axoha_vrrp_state{state="BACKUP",vrrp_instance="axoha"} 1"#,
            r#"axoha_vrrp_state{state="MASTER",vrrp_instance="axoha"} 0"#,
            r#"axoha_vip_held{interface="eth1",vip="198.51.100.64/24"} 0"#,
            r#"axoha_heartbeat_heard{interface="eth0",path="ha link",peer="192.0.2.10"} 1"#,
            r#"axoha_heartbeat_heard{interface="eth1",path="vip network",peer="198.51.100.10"} 1"#,
        ],
    );
    // Inside router-b: the two status commands say what its endpoint says; the banner; the
    // firewall of router-a from router-b's VIP-side address (refused) and over the HA link.
    let report = node.run(
        "set -u; s() { echo \"== $1\"; }; \
         s unit; systemctl is-active axoha-metrics; \
         s pair; sudo -n axoha-firstboot status --listen-ms 0 | grep -E '^(node|VRRP):'; \
         s image; sudo -n axoha-update status --json | grep -E '\"running_(version|slot)\"'; \
         s banner; cat /run/motd.d/axoha; \
         s issue; cat /run/issue.d/axoha.issue; \
         s vip-side; timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.10/9650 && echo open' 2>&1 | tail -1; \
         s ha-side; timeout 5 bash -c 'exec 3<>/dev/tcp/192.0.2.10/9650 && echo open' 2>&1 | tail -1; \
         s journal; sudo -n test -f /var/log/journal/$(cat /etc/machine-id)/system.journal && echo persistent; \
         s end",
    );
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let section = |name: &str| report_section(&text, name);
    let why = format!("{text}\n{}", String::from_utf8_lossy(&report.stderr));
    assert_eq!(section("unit"), ["active"], "{why}");
    let pair = section("pair");
    assert!(
        pair.len() == 2
            && pair[0].starts_with("node:      router-b (secondary,")
            && pair[1] == "VRRP:      BACKUP",
        "{why}"
    );
    let field = |line: &str| line.split('"').nth(3).unwrap_or_default().to_owned();
    let image = section("image");
    let (mut version, mut slot) = (String::new(), String::new());
    for l in &image {
        if l.contains("running_version") {
            version = field(l);
        } else if l.contains("running_slot") {
            slot = field(l);
        }
    }
    let info = b
        .lines()
        .find(|l| l.starts_with("axoha_image_info{"))
        .unwrap_or_default();
    assert!(
        !version.is_empty()
            && info.contains(&format!("slot=\"{slot}\""))
            && info.contains(&format!("version=\"{version}\"")),
        "axoha-update status {image:?} vs {info}"
    );
    let banner = section("banner").join("\n");
    assert!(
        banner.contains("router-b (secondary), VRRP BACKUP")
            && banner.contains(&format!("slot {slot}"))
            && banner.contains("metrics: http://192.0.2.11:9650/metrics"),
        "{why}"
    );
    assert!(section("issue").join("\n").contains("VRRP BACKUP"), "{why}");
    let refused = section("vip-side");
    assert!(
        refused.len() == 1 && refused[0] != "open",
        "router-a's endpoint from router-b's VIP-side address: {why}"
    );
    assert_eq!(section("ha-side"), ["open"], "over the HA link: {why}");
    // The journal is on the state partition: axoha's units' logs survive a reboot.
    assert_eq!(section("journal"), ["persistent"], "{why}");
    (a, b)
}

/// One node configured by the OpenStack metadata service alone, served on its VIP NIC's
/// isolated network (QEMU's DHCP, and 169.254.169.254:80 forwarded inside QEMU to
/// `axoha-image respond-metadata`), reached after a DHCP lease on eth1 (eth0, the HA link,
/// has no DHCP server: it is tried first). A primary alone becomes MASTER; its heartbeat
/// watch resolves the metadata again from what first boot kept.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn a_vm_from_the_metadata_service_becomes_master() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        "vip = \"198.51.100.64/24\"\nha_if = \"eth0\"\nvip_if = \"eth1\"\nvrid = 51\n\n\
         [[nodes]]\nname = \"router-a\"\nrole = \"primary\"\nha_ip = \"192.0.2.10/24\"\nmac = \"52:54:00:0a:00:0a\"\n\n\
         [[nodes]]\nname = \"router-b\"\nrole = \"secondary\"\nha_ip = \"192.0.2.11/24\"\nmac = \"52:54:00:0a:00:0b\"\n",
    )
    .unwrap();
    let drives = dir.path().join("configdrive");
    sh(Command::new(&b.image_bin)
        .args(["seed", "--all", "--format", "configdrive", "--cluster"])
        .arg(&cluster)
        .arg("-o")
        .arg(&drives));
    let ns = IsolatedLoopback::new("mdsvc");
    let port = 20000 + (std::process::id() % 20000);
    let mut args = vec![
        "--metadata-service".to_owned(),
        drives.join("router-a.iso").display().to_string(),
        "--net".to_owned(),
        format!("mcast:{port}"),
    ];
    args.extend(kargs(&["net.ifnames=0"]));
    let needles: [&[&str]; 5] = [
        &[
            "DHCP lease",
            "on eth1",
            "for the OpenStack metadata service",
        ],
        &["axoha.role (meta) = \"primary\" from OpenStack metadata service"],
        &["SUCCESS: configured router-a primary"],
        &["VRRP axoha is now MASTER"],
        &["watching VRRP heartbeats on eth0"],
    ];
    let (vm, _) = boot(
        b,
        &b.qcow2(),
        "metadata-service",
        &args,
        &needles,
        Some(&ns),
    );
    assert_eq!(
        vrrp_state(&vm.console()),
        Some("MASTER"),
        "{}",
        vm.console()
    );
}

/// A signed image's bundle (docs/secure-boot.md, "Updates"): signed, slot A's payloads, its
/// signed UKI (the very one on the disk's ESP) which the updater's own check takes for a node
/// of this image, and the image's /usr carries the db certificate it checks against.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn the_update_bundle_is_signed_and_carries_slot_a() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = work_dir().join("bundle");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = |name: &str| {
        sh(Command::new(&b.image_bin)
            .args(["keygen", "--out"])
            .arg(dir.join(name)));
        let public = std::fs::read_to_string(dir.join(name).join("axoha-update.pub")).unwrap();
        let line = public.lines().rfind(|l| !l.trim().is_empty()).unwrap();
        (
            dir.join(name).join("axoha-update.key"),
            line.trim().to_owned(),
        )
    };
    let (key, public) = keygen("keys");
    let (other_key, _) = keygen("other");
    let def = dir.join("axoha.toml");
    std::fs::write(
        &def,
        format!(
            "name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"4G\"\n\
             kernel_cmdline = \"console=ttyS0,115200\"\n[update]\npublic_key = \"{public}\"\n\
             [secure_boot]\ncertificate = \"{sb}/db.crt\"\nkey = \"{sb}/db.key\"\n",
            sb = dir.join("keys/secure-boot").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let build = |targets: &str, key: &Path| {
        build_demo_with(
            &out,
            targets,
            &[
                "--config".as_ref(),
                def.as_os_str(),
                "--signing-key".as_ref(),
                key.as_os_str(),
            ],
        )
    };
    let started = Instant::now();
    let res = build("bundle", &other_key);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && err.contains("not the definition's [update] public_key"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "failed fast");
    assert!(!out.join("axoha-demo-debian-12.axoha-bundle").exists());

    let res = build("raw,bundle", &key);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let bundle = out.join("axoha-demo-debian-12.axoha-bundle");
    let listed = sh(Command::new("tar").arg("-tf").arg(&bundle));
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "manifest.json",
            "manifest.json.minisig",
            "usr.img",
            "usr.verity",
            "vmlinuz",
            "initrd.img",
            "linux.efi"
        ]
    );
    let entry = |name: &str| sh(Command::new("tar").arg("-xOf").arg(&bundle).arg(name)).stdout;
    let manifest: serde_json::Value = serde_json::from_slice(&entry("manifest.json")).unwrap();
    let signature = String::from_utf8_lossy(&entry("manifest.json.minisig")).into_owned();
    assert!(signature.starts_with("untrusted comment:"), "{signature}");
    assert_eq!(manifest["format"], 1, "{manifest}");
    assert_eq!(manifest["profile"], "debian-12", "{manifest}");
    assert_eq!(
        manifest["kernel_cmdline"], "console=ttyS0,115200",
        "{manifest}"
    );
    let raw = out.join("axoha-demo-debian-12.raw");
    let parts = partitions(&raw);
    let usrhash = manifest["usrhash"].as_str().unwrap();
    assert_eq!(parts[1].1.replace('-', ""), usrhash[..32], "{manifest}");
    let usr = entry("usr.img");
    assert_eq!(
        manifest["files"]["usr.img"]["bytes"].as_u64(),
        Some(usr.len() as u64)
    );
    let mut on_disk = vec![0u8; usr.len()];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&raw).unwrap();
        f.seek(SeekFrom::Start(parts[1].2)).unwrap();
        f.read_exact(&mut on_disk).unwrap();
    }
    assert!(on_disk == usr, "the bundle's usr.img is slot A of the disk");
    assert_eq!(
        usr_cat(&raw, "/usr/lib/axoha/update.pub"),
        format!("{public}\n")
    );

    // The signed UKI: the ESP's, signed for the key set's db, which the image's /usr carries;
    // the updater's check takes it for a node of this image (its state partition).
    let db = dir.join("keys/secure-boot/db.crt");
    let db_pem = std::fs::read_to_string(&db).unwrap();
    assert_eq!(
        usr_cat(&raw, &format!("/{}", axoha_update::paths::DB_CERTIFICATE)),
        db_pem
    );
    assert_eq!(
        manifest["secure_boot"]["db_certificate_sha256"],
        axoha_disk::hash::sha256_bytes(db_pem.as_bytes()),
        "{manifest}"
    );
    let uki = entry("linux.efi");
    let on_esp = dir.join("esp-linux.efi");
    let esp = format!("{}@@{}", raw.display(), partition_offset(&raw, "ESP"));
    sh(Command::new("mcopy")
        .args(["-i", &esp, "::/axoha/a/linux.efi"])
        .arg(&on_esp));
    assert!(
        std::fs::read(&on_esp).unwrap() == uki,
        "the bundle's UKI is slot A's"
    );
    sh(Command::new("sbverify").arg("--cert").arg(&db).arg(&on_esp));
    let state = parts
        .iter()
        .find(|p| p.0 == axoha_boot_contract::layout::STATE_NAME)
        .expect("a state partition")
        .1
        .to_lowercase();
    let hash = axoha_update::usrhash::UsrHash::parse(usrhash).unwrap();
    let want = axoha_boot_contract::entry::image_options(usrhash, &state, "console=ttyS0,115200");
    let cert = axoha_update::uki::DbCertificate::from_pem(db_pem.as_bytes(), "db.crt").unwrap();
    if let Err(e) = axoha_update::uki::check(uki, &cert, hash, &state, &want) {
        panic!("the updater refuses the builder's UKI: {e:#}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The build cache's entries (`CACHE/build-PROFILE-KEY/`).
fn cached_builds() -> Vec<PathBuf> {
    std::fs::read_dir(&tools().cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("build-"))
        .map(|e| e.path())
        .collect()
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn another_target_reuses_the_disk_and_a_rebuild_gives_identical_bytes() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let first = std::fs::read_to_string(b.out.join("SHA256SUMS")).unwrap();
    let sum_of = |sums: &str, suffix: &str| -> String {
        sums.lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in {sums}"))
            .to_owned()
    };

    // Another target of the same build: made from the cached disk, no stage runs again.
    let other = work_dir().join("out-raw-only");
    let _ = std::fs::remove_dir_all(&other);
    let out = build_demo(&other, "raw");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("disk: cache hit"), "{log}");
    for stage in ["rootfs", "appliance layer", "filesystems and disk"] {
        assert!(!log.contains(stage), "{stage} ran again: {log}");
    }
    let again = std::fs::read_to_string(other.join("SHA256SUMS")).unwrap();
    assert_eq!(sum_of(&again, ".raw"), sum_of(&first, ".raw"));
    // Then the qcow2 into the same output: the manifest lists both (the raw from the build
    // before, same build key), so asking for both again finds them up to date.
    let out = build_demo(&other, "qcow2");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && log.contains("disk: cache hit"),
        "{log}"
    );
    let both = std::fs::read_to_string(other.join("SHA256SUMS")).unwrap();
    assert_eq!(sum_of(&both, ".raw"), sum_of(&first, ".raw"), "{both}");
    assert_eq!(sum_of(&both, ".qcow2"), sum_of(&first, ".qcow2"), "{both}");
    let out = build_demo(&other, "qcow2,raw");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("up to date"), "{log}");
    std::fs::remove_dir_all(&other).unwrap();

    // Without the cached disk: every stage after the rootfs again, the same bytes.
    assert!(!cached_builds().is_empty());
    for entry in cached_builds() {
        std::fs::remove_dir_all(entry).unwrap();
    }
    let second = work_dir().join("out-again");
    let _ = std::fs::remove_dir_all(&second);
    let out = build_demo(&second, "qcow2,raw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("disk: cache hit"), "{log}");
    assert!(
        log.contains("cache hit"),
        "the second build reuses the cached rootfs"
    );
    assert!(
        log.contains("initrd: cache hit"),
        "the second build reuses the cached initrd (dracut does not run): {log}"
    );
    // Not a terminal: plain lines only (the live bars are for terminals).
    assert!(
        !log.contains('\r') && !log.contains('\u{1b}'),
        "control characters in a log: {log:?}"
    );
    let again = std::fs::read_to_string(second.join("SHA256SUMS")).unwrap();
    assert_eq!(
        first, again,
        "same definition, cache and SOURCE_DATE_EPOCH: same bytes"
    );
    assert_eq!(cached_builds().len(), 1, "the rebuilt disk is cached again");
    std::fs::remove_dir_all(&second).unwrap();
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn bad_definitions_fail_before_any_work() {
    // The binaries and the stand-in only: nothing here may get as far as building.
    let b = tools();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases: [(&str, &str); 14] = [
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[secure_boot]\ncertificate = \"db.crt\"\n", "without key"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[secure_boot]\nenrol = \"force\"\n", "enrol = \"force\" without certificate"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[secure_boot]\nenrol = \"always\"\n", "enrol = \"always\""),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[secure_boot]\ncertificate = \"/nonexistent/db.crt\"\nkey = \"/nonexistent/db.key\"\n", "[secure_boot] certificate = \"/nonexistent/db.crt\""),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\ndisksize = 1\n", "disksize"),
        ("name = \"axoha\"\nprofile = \"debian-9\"\ndisk_size = \"3G\"\n", "profile"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[cluster]\nvrid = 300\n", "vrid"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[cluster]\nauth_pass = \"x\"\n", "auth_pass"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\n[[users]]\nname = \"ops\"\nssh_keys = [\"command=sh ssh-ed25519 AAAA\"]\n", "users: ops"),
        // Each value type's refusal, with the line that holds it (key and value).
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3T\"\n", "\"3T\": unit must be G or M"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\nusr_slot_size = \"0M\"\n", "\"0M\": between 256M and 16G"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\nmirror = \"ftp://deb.example/debian\"\n", "4 | mirror = \"ftp://deb.example/debian\"\n  |          ^^^^^^^^^^^^^^^^^^^^^^^^^^\n\"ftp://deb.example/debian\": expected an http://"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\nkernel_cmdline = \"quiet\\u0007\"\n", "no quotes or control characters"),
        ("name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"3G\"\ngpg_key = \"https://deb.example/key\"\n", "gpg_key = \"https://deb.example/key\": the debian-12 profile takes a local keyring file"),
    ];
    // Runs `axoha-image build ARGS -o OUT`, which must fail; returns what it said.
    let refused = |args: &[&std::ffi::OsStr]| -> String {
        let res = Command::new(&b.image_bin)
            .args(["build", "--target", "qcow2"])
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!res.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&res.stderr).into_owned()
    };
    let deb = b.deb.as_os_str();
    for (text, key) in cases {
        let def = dir.path().join("axoha.toml");
        std::fs::write(&def, text).unwrap();
        let started = Instant::now();
        let err = refused(&[
            "--demo".as_ref(),
            "--config".as_ref(),
            def.as_os_str(),
            "--axorouter".as_ref(),
            deb,
        ]);
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key}: failed fast"
        );
        assert!(!out.exists(), "{key}: nothing written");
    }
    // The command line's values are typed the same way.
    for (flag, value, want) in [
        (
            "--mirror",
            "ftp://deb.example/debian",
            "expected an http://, https:// or file:/ URL",
        ),
        (
            "--axorouter-sha256",
            "abc",
            "\"abc\": expected 64 hexadecimal digits",
        ),
        (
            "--axorouter",
            "ftp://console.example/axorouter.deb",
            "give a local package file or an http(s) URL",
        ),
    ] {
        let err = refused(&[
            "--demo".as_ref(),
            "--profile".as_ref(),
            "debian-12".as_ref(),
            flag.as_ref(),
            value.as_ref(),
        ]);
        assert!(
            err.contains(flag) && err.contains(want),
            "{flag} {value}: {err}"
        );
        assert!(!out.exists(), "{flag}: nothing written");
    }
    // Without an AxoRouter package the build says where it comes from.
    let err = refused(&["--profile".as_ref(), "debian-12".as_ref()]);
    assert!(
        err.contains("AxoConsole") && err.contains("--axorouter"),
        "{err}"
    );
    // The stand-in is never baked silently.
    let err = refused(&[
        "--profile".as_ref(),
        "debian-12".as_ref(),
        "--axorouter".as_ref(),
        deb,
    ]);
    assert!(err.contains("--demo"), "{err}");
    assert!(!out.exists());
}
