//! Network install, end to end, against the servers operators run: build the debian-12 demo
//! image's PXE bundle, write the cluster's entries with `pxe-config`, and serve them from a
//! network namespace (tests/src/pxe_net.rs) with dnsmasq as DHCP + TFTP server, configured
//! with docs/pxe.md's example word for word, and Python's http.server serving the bundle.
//!
//! One run installs a pair: router-a boots `axoha-install.efi` by OVMF's PXE (TFTP), reads its
//! node file by TFTP and fetches the image over HTTP; router-b (tagged `grub` in the dnsmasq
//! example) boots network GRUB, which reads its `grub.cfg-01-MAC` and loads the installer over
//! HTTP. Both install to 5 GiB disks (the image is 4 GiB: the installer grows the state
//! partition, the last of six, first boot its filesystem), reboot from disk and take their roles over the HA
//! bridge: router-a MASTER, router-b BACKUP. A second pair installs behind a site DHCP server
//! that knows nothing of PXE, with dnsmasq as proxy DHCP from docs/pxe.md's proxy example
//! (both nodes boot `axoha-install.efi`; the installer finds the PXE server in the proxy's
//! answer). And the refusal: a wrong sha256 leaves the blank disk blank, the node booted by
//! UEFI HTTP boot (docs/pxe.md's HTTP boot example).
//!
//! Network: everything (bridges, taps, dnsmasq, the web server, QEMU) lives in one namespace
//! on documentation prefixes (install 192.0.2.0/24, HA 203.0.113.0/24, VIP 198.51.100.0/24)
//! and is torn down by Drop guards. The rootfs cache is the one tests/tests/image.rs uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axoha_tests::console::Console;
use axoha_tests::demo::{build_demo_with, sh, tools, work_dir};
use axoha_tests::pxe_net::{doc_block, ini_blocks, PxeNetwork, HA_BRIDGE, INSTALL_BRIDGE};

const MAC_A: &str = "52:54:00:0a:00:0a";
/// Tagged `grub` in docs/pxe.md's dnsmasq example.
const MAC_B: &str = "52:54:00:0a:00:0b";

const DOC: &str = include_str!("../../docs/pxe.md");
/// The first lines of the dnsmasq examples in docs/pxe.md that these tests run: PXE (UEFI
/// PXE and network GRUB), and UEFI HTTP boot.
const PXE_EXAMPLE: &str =
    "# /etc/dnsmasq.d/axoha-install.conf - dnsmasq is the install network's only DHCP server";
const HTTP_BOOT_EXAMPLE: &str =
    "# /etc/dnsmasq.d/axoha-http-boot.conf - dnsmasq is the install network's DHCP server";
/// docs/pxe.md's proxy-DHCP example, run beside a site DHCP server.
const PROXY_EXAMPLE: &str =
    "# /etc/dnsmasq.d/axoha-pxe.conf - the network's DHCP server keeps handing out addresses;";
/// The GRUB modules of docs/pxe.md's `grub-mkimage` line.
const GRUB_MODULES: [&str; 10] = [
    "normal",
    "configfile",
    "echo",
    "test",
    "linux",
    "efinet",
    "net",
    "tftp",
    "http",
    "efi_gop",
];

/// Heavy steps (builds, boots) one at a time: two cores do not fit two of them.
static HEAVY: Mutex<()> = Mutex::new(());

struct Built {
    image_bin: PathBuf,
    /// `pxe/` of the build.
    bundle: PathBuf,
    /// The Secure Boot key set the image is signed for and the VMs' firmware has enrolled.
    keys: PathBuf,
}

/// `axoha-image build --target pxe` of the demo image, signed for a key set of its own, once:
/// every install here is to a Secure Boot machine (the firmware checks `axoha-install.efi`,
/// then the installed systemd-boot and UKI). Under Secure Boot only the image's own command
/// line boots, so `net.ifnames=0` is in the definition, not a `pxe-config --karg`.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let out = work_dir().join("pxe-out");
        let _ = std::fs::remove_dir_all(&out);
        let keys = work_dir().join("pxe-keys");
        let _ = std::fs::remove_dir_all(&keys);
        sh(Command::new(&tools().image_bin)
            .args(["keygen", "--out"])
            .arg(&keys));
        let set = keys.join("secure-boot");
        let def = work_dir().join("pxe-axoha.toml");
        std::fs::write(
            &def,
            format!(
                "name = \"axoha\"\nprofile = \"debian-12\"\ndisk_size = \"4G\"\n\
                 kernel_cmdline = \"console=tty0 console=ttyS0,115200 net.ifnames=0\"\n\
                 [cluster.firewall]\nports = [\"4317/tcp\"]\n\
                 [secure_boot]\ncertificate = \"{}\"\nkey = \"{}\"\n",
                set.join("db.crt").display(),
                set.join("db.key").display()
            ),
        )
        .unwrap();
        let started = Instant::now();
        let res = build_demo_with(&out, "pxe", &["--config".as_ref(), def.as_os_str()]);
        assert!(
            res.status.success(),
            "PXE bundle build failed:\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
        eprintln!(
            "pxe bundle built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Built {
            image_bin: tools().image_bin.clone(),
            bundle: out.join("pxe"),
            keys: set,
        }
    })
}

/// The HA link is each node's second NIC (eth1, on the HA bridge); the VIP lives on the
/// NIC the node installed through (eth0).
const CLUSTER: &str = "vip = \"198.51.100.64/24\"\nha_if = \"eth1\"\nvip_if = \"eth0\"\nvrid = 51\n\n\
    [[nodes]]\nname = \"router-a\"\nrole = \"primary\"\nha_ip = \"203.0.113.10/24\"\nmac = \"52:54:00:0a:00:0a\"\n\n\
    [[nodes]]\nname = \"router-b\"\nrole = \"secondary\"\nha_ip = \"203.0.113.11/24\"\nmac = \"52:54:00:0a:00:0b\"\n";

/// The PXE server of docs/pxe.md, running: its TFTP root and web root in a temporary
/// directory, dnsmasq and the web server in the network's namespace.
struct Server {
    net: PxeNetwork,
    tftp: PathBuf,
    _dir: tempfile::TempDir,
}

fn link_bundle(b: &Built, to: &Path, files: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for f in files {
        // Hard links: the image is hundreds of MiB.
        std::fs::hard_link(b.bundle.join(f), to.join(f)).unwrap();
    }
}

/// Lays out `/srv/tftp` and `/srv/www` as docs/pxe.md says, with pxe-config's entries for
/// `bundle_url` made from `bundle_for_config` (whose sha256 file may be the wrong one), and
/// starts the servers with the dnsmasq example of docs/pxe.md that starts with `example`.
fn server(
    b: &Built,
    tag: &str,
    example: &str,
    bundle_url: &str,
    bundle_for_config: &Path,
) -> Server {
    let dir = tempfile::tempdir_in(work_dir()).unwrap();
    let tftp = dir.path().join("tftp");
    let www = dir.path().join("www");
    link_bundle(b, &tftp.join("axoha"), &["axoha-install.efi"]);
    let all = [
        "vmlinuz",
        "installer.img",
        "axoha-install.efi",
        "disk.raw.zst",
        "disk.raw.zst.sha256",
    ];
    link_bundle(b, &www.join("axoha"), &all);
    if bundle_url.starts_with("tftp:") {
        link_bundle(b, &tftp.join("axoha"), &all[..2]);
        link_bundle(b, &tftp.join("axoha"), &all[3..]);
    }
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(&cluster, CLUSTER).unwrap();
    let out = sh(Command::new(&b.image_bin)
        .args(["pxe-config", "--cluster"])
        .arg(&cluster)
        .arg("--bundle")
        .arg(bundle_for_config)
        .args(["--bundle-url", bundle_url, "--disk", "/dev/vda", "-o"])
        .arg(&tftp));
    let listed = String::from_utf8_lossy(&out.stdout);
    for f in [
        "ipxe/52-54-00-0a-00-0a.ipxe",
        "ipxe/boot.ipxe",
        "grub/grub.cfg-01-52-54-00-0a-00-0b",
        "pxelinux.cfg/01-52-54-00-0a-00-0b",
        "nodes/01-52-54-00-0a-00-0a.cmdline",
    ] {
        assert!(listed.contains(f), "{f} in {listed}");
    }
    for mac in [MAC_A, MAC_B] {
        let grub_cfg = tftp.join(format!("grub/grub.cfg-01-{}", mac.replace(':', "-")));
        sh(Command::new("grub-script-check").arg(&grub_cfg));
    }
    sh(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/grub", "-o"])
        .arg(tftp.join("grub/grubnetx64.efi"))
        .args(GRUB_MODULES));
    // dnsmasq serves TFTP as an unprivileged user: the tree must be readable by others.
    sh(Command::new("chmod").args(["-R", "a+rX"]).arg(dir.path()));
    let mut net = PxeNetwork::create(tag, &dir.path().join("logs")).unwrap();
    let conf = doc_block(DOC, example).unwrap();
    net.start_dnsmasq(&conf, &tftp, dir.path()).unwrap();
    net.start_http(&www).unwrap();
    Server {
        net,
        tftp,
        _dir: dir,
    }
}

/// How OVMF network-boots the node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Boot {
    /// OVMF's PXE client: DHCP, then the boot program by TFTP.
    Pxe,
    /// UEFI HTTP boot: the boot program's URL from DHCP (vendor class HTTPClient).
    Http,
}

/// A QEMU we started in the PXE namespace; killed by PID when dropped.
struct Vm {
    name: &'static str,
    child: Child,
    console: Console,
    started: Instant,
    /// When each marker first appeared on the console, from QEMU's start.
    seen: BTreeMap<&'static str, Duration>,
    _vars: tempfile::TempDir,
}

impl Vm {
    /// UEFI with Secure Boot, q35, TCG; NIC 0 (on the install bridge) network-boots by OVMF's own PXE client,
    /// NIC 1 is on the HA bridge; the disk boots first once it has a system on it.
    fn start(
        net: &mut PxeNetwork,
        name: &'static str,
        macs: [&str; 2],
        disk: &Path,
        boot: Boot,
    ) -> Vm {
        let vars = tempfile::tempdir().unwrap();
        let log = work_dir().join(format!("pxe-{}-{name}-serial.log", net.tag()));
        let console = Console::new(&log);
        let tap0 = net.tap(INSTALL_BRIDGE).unwrap();
        let tap1 = net.tap(HA_BRIDGE).unwrap();
        // Secure Boot on, the image's key set enrolled (the build's: `built`).
        let store = vars.path().join("OVMF_VARS.fd");
        axoha_disk::qemu::enrolled_vars(&built().keys, &store).unwrap();
        let base = axoha_disk::qemu::secure_boot_vm(&store, 2048, false);
        let mut cmd = net.namespace().exec("qemu-system-x86_64");
        cmd.args(base.get_args())
            .arg("-drive")
            .arg(format!(
                "file={},format=qcow2,if=none,id=d0",
                disk.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=d0,bootindex=1,addr=0x5"])
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap0},script=no,downscript=no"))
            .arg("-device")
            // romfile= : OVMF's own PXE client, not QEMU's iPXE option ROM. iPXE hands a UEFI
            // program its file name as load options, and systemd-stub then drops the UKI's
            // embedded command line (console=ttyS0 included).
            .arg(format!(
                "virtio-net-pci,netdev=n0,mac={},bootindex=2,addr=0x3,romfile=",
                macs[0]
            ))
            .arg("-netdev")
            .arg(format!("tap,id=n1,ifname={tap1},script=no,downscript=no"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=n1,mac={},romfile=,addr=0x4",
                macs[1]
            ))
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // QEMU's own complaints (a tap it cannot open, a bad option) for the failure report.
            .stderr(std::fs::File::create(log.with_extension("qemu-stderr")).unwrap());
        if boot == Boot::Http {
            // OVMF tries PXE before HTTP boot on the same NIC; without PXE it goes straight to
            // HTTP boot instead of waiting out a PXE DHCP exchange that names no boot file.
            for knob in ["IPv4PXESupport", "IPv6PXESupport"] {
                cmd.arg("-fw_cfg")
                    .arg(format!("name=opt/org.tianocore/{knob},string=n"));
            }
        }
        let child = cmd.spawn().expect("starting qemu-system-x86_64");
        eprintln!("{name}: qemu pid {}", child.id());
        Vm {
            name,
            child,
            console,
            started: Instant::now(),
            seen: BTreeMap::new(),
            _vars: vars,
        }
    }

    fn text(&self) -> String {
        self.console.text()
    }

    /// Notes the first time each of `markers` (label, needle) shows on the console.
    fn note(&mut self, markers: &[(&'static str, &str)]) {
        let text = self.text();
        for (label, needle) in markers {
            if !self.seen.contains_key(label) && text.contains(needle) {
                self.seen.insert(label, self.started.elapsed());
            }
        }
    }

    fn at(&self, label: &str) -> Option<f64> {
        self.seen.get(label).map(Duration::as_secs_f64)
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// The last VRRP state the notify script printed.
    fn vrrp_state(&self) -> Option<String> {
        self.text()
            .lines()
            .rev()
            .find_map(|l| l.split("VRRP axoha is now ").nth(1))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn blank_disk(path: &Path) {
    let _ = std::fs::remove_file(path);
    sh(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("5G"));
}

/// Console markers, in the order a node prints them.
const MARKERS: [(&str, &str); 7] = [
    ("lease", " netmask "),
    ("fetched", " MiB in "),
    ("written", "loader entry: "),
    ("installed", "axoha-install: SUCCESS"),
    ("configured", "SUCCESS: configured"),
    ("failed", "axoha-install: FAILED"),
    ("halted", "System halted"),
];

/// Network install to a blank disk, reboot, first boot (TCG, two VMs at once: minutes).
const PAIR_TIMEOUT: Duration = Duration::from_secs(1500);

/// The `MiB in S s` of the installer's fetch line for the image.
fn fetch_rate(text: &str) -> Option<(f64, f64)> {
    let l = text
        .lines()
        .find(|l| l.contains("disk.raw.zst: ") && l.contains(" MiB in "))?;
    let rest = l.split("disk.raw.zst: ").nth(1)?;
    let mib: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let secs: f64 = rest
        .split(" MiB in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((mib, secs))
}

/// One line per node for bench/pxe: `bench: MODE NODE` and the seconds from QEMU's start to
/// the lease, the fetched image, the written disk, the reboot and the first-boot SUCCESS,
/// then the fetch's MiB and seconds as the installer measured them.
fn bench_line(mode: &str, vm: &Vm) {
    let (mib, secs) = fetch_rate(&vm.text()).unwrap_or((0.0, 0.0));
    let at = ["lease", "fetched", "written", "installed", "configured"]
        .map(|m| format!("{:.0}", vm.at(m).unwrap_or(0.0)));
    eprintln!(
        "bench: {mode} {} {} {mib:.0} {secs:.1}",
        vm.name,
        at.join(" ")
    );
}

/// The root filesystem size first boot grew to, from the kernel's ext4 message (4 KiB
/// blocks, the mkfs.ext4 default at this size).
fn resized_bytes(text: &str) -> Option<u64> {
    let l = text
        .lines()
        .find(|l| l.contains("resized filesystem to "))?;
    let blocks: u64 = l
        .split("resized filesystem to ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(blocks * 4096)
}

#[test]
fn docs_dnsmasq_examples_pass_dnsmasq_test() {
    let blocks = ini_blocks(DOC);
    assert!(blocks.len() >= 3, "the dnsmasq examples of docs/pxe.md");
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in blocks.iter().enumerate() {
        let f = dir.path().join(format!("{i}.conf"));
        std::fs::write(&f, b).unwrap();
        let out = sh(Command::new("/usr/sbin/dnsmasq")
            .arg("--test")
            .arg(format!("--conf-file={}", f.display())));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("syntax check OK"), "{b}: {said}");
    }
}

#[test]
fn docs_grub_mkimage_line_is_the_one_the_test_runs() {
    let line = format!(
        "grub-mkimage -O x86_64-efi -p /grub -o /srv/tftp/grub/grubnetx64.efi \\\n  {}\n",
        GRUB_MODULES.join(" ")
    );
    assert!(DOC.contains(&line), "docs/pxe.md has {line:?}");
}

/// The installer's console line about its DHCP lease on eth0 with `mac`.
fn lease_line<'a>(text: &'a str, mac: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(&format!("eth0 {mac}: ")))
        .unwrap_or_else(|| panic!("no lease line for {mac}: {text}"))
        .trim_end()
}

/// Installs the cluster's pair from `srv`, both nodes at once, each network-booting by
/// OVMF's PXE, and waits until both are configured with router-a MASTER and router-b BACKUP.
/// Checks what every install must show (hash verified, state partition and filesystem
/// grown, first boot's SUCCESS), prints the bench lines as `mode` and returns both consoles.
fn install_pair(srv: &mut Server, mode: &str) -> [String; 2] {
    let dir = tempfile::tempdir_in(work_dir()).unwrap();
    // One retry: about 1 boot in 12 hangs early under TCG.
    for attempt in 1..=2 {
        let (disk_a, disk_b) = (dir.path().join("a.qcow2"), dir.path().join("b.qcow2"));
        blank_disk(&disk_a);
        blank_disk(&disk_b);
        let mut a = Vm::start(
            &mut srv.net,
            "router-a",
            [MAC_A, "52:54:00:0c:00:0a"],
            &disk_a,
            Boot::Pxe,
        );
        let mut b_vm = Vm::start(
            &mut srv.net,
            "router-b",
            [MAC_B, "52:54:00:0c:00:0b"],
            &disk_b,
            Boot::Pxe,
        );
        let started = Instant::now();
        let settled = loop {
            a.note(&MARKERS);
            b_vm.note(&MARKERS);
            srv.net.check_servers().unwrap();
            let roles = (a.vrrp_state(), b_vm.vrrp_state());
            if a.seen.contains_key("configured")
                && b_vm.seen.contains_key("configured")
                && roles.0.as_deref() == Some("MASTER")
                && roles.1.as_deref() == Some("BACKUP")
            {
                break true;
            }
            let stuck = |v: &mut Vm| v.exited() || v.seen.contains_key("failed");
            if started.elapsed() > PAIR_TIMEOUT || stuck(&mut a) || stuck(&mut b_vm) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        if !settled {
            eprintln!(
                "attempt {attempt}: the pair did not settle:\n--- router-a\n{}\n--- router-b\n{}\n--- dnsmasq\n{}",
                a.text(),
                b_vm.text(),
                srv.net.log("dnsmasq")
            );
            continue;
        }
        // Roles hold for a few advert intervals: the secondary does not take over.
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(a.vrrp_state().as_deref(), Some("MASTER"));
        assert_eq!(b_vm.vrrp_state().as_deref(), Some("BACKUP"));
        bench_line(mode, &a);
        bench_line(mode, &b_vm);
        let texts = [a.text(), b_vm.text()];
        drop((a, b_vm));
        for (name, role, t) in [
            ("router-a", "primary", &texts[0]),
            ("router-b", "secondary", &texts[1]),
        ] {
            assert!(
                t.contains("sha256") && t.contains("verified"),
                "{name}: {t}"
            );
            assert!(t.contains("partition 6 grown"), "{name}: {t}");
            let fs = resized_bytes(t).unwrap_or_else(|| panic!("{name}: no ext4 resize: {t}"));
            // 5 GiB minus the ESP, two 1 GiB /usr slots and their verity partitions.
            assert!(
                fs > 2_700 << 20,
                "{name}: state filesystem {fs} bytes on a 5 GiB disk"
            );
            assert!(
                t.contains(&format!("SUCCESS: configured {name} {role}")),
                "{t}"
            );
            // Secure Boot held from the installer's kernel to the installed one's, and the
            // node's metadata came from the node file the installer wrote on the ESP (a
            // signed command line carries none).
            assert!(
                t.matches("secureboot: Secure boot enabled").count() >= 2,
                "{name}: the installer and the installed system boot under Secure Boot: {t}"
            );
            assert!(
                t.contains(&format!("role = \"{role}\" from ESP node file")),
                "{name}: {t}"
            );
        }
        let http = srv.net.log("http");
        assert_eq!(
            http.matches("\"GET /axoha/disk.raw.zst HTTP/1.1\" 200")
                .count(),
            2,
            "both images over HTTP: {http}"
        );
        return texts;
    }
    panic!("{mode}: the two-node network install did not settle in two attempts");
}

#[test]
#[ignore = "bench/pxe runs it: in the suite, the proxy pair test installs a pair and the \
            bad-hash test boots over full-mode dnsmasq (CI time)"]
fn bench_only_two_nodes_install_over_dnsmasq_and_http_and_take_their_roles() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut srv = server(b, "pair", PXE_EXAMPLE, "http://192.0.2.5/axoha/", &b.bundle);
    let node =
        std::fs::read_to_string(srv.tftp.join("nodes/01-52-54-00-0a-00-0a.cmdline")).unwrap();
    assert!(
        node.contains("axoha.role=primary")
            && node.contains("axoha.install_url=http://192.0.2.5/axoha/disk.raw.zst"),
        "HTTP is the install path: {node}"
    );
    let [ta, tb] = install_pair(&mut srv, "pair");
    // router-a: UKI over TFTP, node file by TFTP (dnsmasq, the only DHCP server, is the boot
    // server), image over HTTP.
    assert!(
        ta.contains("node arguments from nodes/01-52-54-00-0a-00-0a.cmdline")
            && lease_line(&ta, MAC_A).ends_with("boot server 192.0.2.5"),
        "{ta}"
    );
    // router-b: network GRUB found its per-MAC entry and booted the installer from it.
    assert!(tb.contains("axoha network install of router-b"), "{tb}");
    assert!(!tb.contains("node arguments from"), "{tb}");
    let http = srv.net.log("http");
    assert!(
        http.contains("\"GET /axoha/vmlinuz HTTP/1.1\" 200"),
        "GRUB over HTTP: {http}"
    );
    let dnsmasq = srv.net.log("dnsmasq");
    for sent in [
        "sent /srv/tftp/axoha/axoha-install.efi",
        "sent /srv/tftp/grub/grubnetx64.efi",
        "sent /srv/tftp/nodes/01-52-54-00-0a-00-0a.cmdline",
        "sent /srv/tftp/grub/grub.cfg-01-52-54-00-0a-00-0b",
    ] {
        assert!(dnsmasq.contains(sent), "{sent}: {dnsmasq}");
    }
}

/// docs/pxe.md's proxy example beside a site DHCP server that hands out addresses and a
/// router and knows nothing of PXE: both nodes boot `axoha-install.efi` by the firmware's
/// PXE (the proxy's answer), then the installer takes its address from the site server and
/// the PXE server from the proxy's answer to its own PXE-client DISCOVER, fetches its node
/// file from it and the image over HTTP.
#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn two_nodes_install_behind_a_site_dhcp_server_over_proxy_dhcp() {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut srv = server(
        b,
        "proxy",
        PROXY_EXAMPLE,
        "http://192.0.2.5/axoha/",
        &b.bundle,
    );
    let work = srv.tftp.with_file_name("site");
    std::fs::create_dir_all(&work).unwrap();
    srv.net.start_site_dhcp(&work).unwrap();
    let [ta, tb] = install_pair(&mut srv, "proxy");
    let site = srv.net.log("site-dhcp");
    let proxy = srv.net.log("dnsmasq");
    for (t, mac) in [(&ta, MAC_A), (&tb, MAC_B)] {
        let hyp = mac.replace(':', "-");
        // The installer's address came from the site server, its PXE server from the proxy.
        let lease = lease_line(t, mac);
        assert!(
            lease.contains(": 192.0.2.1") && lease.ends_with("boot server 192.0.2.5 (proxy DHCP)"),
            "{lease}"
        );
        assert!(
            t.contains(&format!("node arguments from nodes/01-{hyp}.cmdline")),
            "{t}"
        );
        assert!(
            site.lines()
                .any(|l| l.contains("DHCPACK(eth0) 192.0.2.1") && l.contains(mac)),
            "{mac}: {site}"
        );
        assert!(
            proxy.contains(&format!("PXE(eno1) {mac} proxy")),
            "{mac}: {proxy}"
        );
        let node_file = format!("sent /srv/tftp/nodes/01-{hyp}.cmdline");
        assert!(proxy.contains(&node_file), "{node_file}: {proxy}");
    }
    assert!(
        proxy.contains("sent /srv/tftp/axoha/axoha-install.efi"),
        "{proxy}"
    );
    // The proxy handed out no address: every lease is the site server's.
    assert!(!proxy.contains("DHCPACK"), "{proxy}");
}

/// router-a installed alone from `bundle_url`, until its console says `done`; with the
/// server (which holds the disk) and the disk's path.
fn install_one(
    tag: &str,
    boot: Boot,
    bundle_url: &str,
    bundle_for_config: &Path,
    done: &str,
) -> (Vm, Server, PathBuf) {
    let example = match boot {
        Boot::Pxe => PXE_EXAMPLE,
        Boot::Http => HTTP_BOOT_EXAMPLE,
    };
    let mut srv = server(built(), tag, example, bundle_url, bundle_for_config);
    let disk = srv.tftp.with_file_name("a.qcow2");
    for attempt in 1..=2 {
        blank_disk(&disk);
        let mut vm = Vm::start(
            &mut srv.net,
            "router-a",
            [MAC_A, "52:54:00:0c:00:0a"],
            &disk,
            boot,
        );
        let started = Instant::now();
        while started.elapsed() < PAIR_TIMEOUT && !vm.exited() && !vm.text().contains(done) {
            vm.note(&MARKERS);
            std::thread::sleep(Duration::from_millis(250));
        }
        vm.note(&MARKERS);
        if vm.text().contains(done) {
            return (vm, srv, disk);
        }
        eprintln!("attempt {attempt}: no {done:?}:\n{}", vm.text());
    }
    panic!("{tag}: no {done:?} in two attempts");
}

#[test]
#[ignore = "system tier (root, namespaces, QEMU): scripts/test runs it"]
fn wrong_sha256_is_refused_and_the_disk_stays_blank() {
    built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in(work_dir()).unwrap();
    // A bundle whose sha256 file does not match its image.
    let wrong = dir.path().join("wrong-bundle");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(
        wrong.join("disk.raw.zst.sha256"),
        format!("{}  disk.raw.zst\n", "0".repeat(64)),
    )
    .unwrap();
    let (vm, srv, disk) = install_one(
        "bad",
        Boot::Http,
        "http://192.0.2.5/axoha/",
        &wrong,
        "System halted",
    );
    let text = vm.text();
    drop(vm);
    assert!(
        text.contains("REFUSED: sha256 mismatch") && text.contains("/dev/vda was not touched"),
        "{text}"
    );
    assert!(!text.contains("written"), "{text}");
    // UEFI HTTP boot fetched the installer from the web server, the node file came by TFTP.
    let http = srv.net.log("http");
    assert!(
        http.contains("\"GET /axoha/axoha-install.efi HTTP/1.1\" 200"),
        "UEFI HTTP boot: {http}"
    );
    assert!(text.contains("node arguments from nodes/01-52-54-00-0a-00-0a.cmdline"));
    // Not one cluster of the disk was written.
    let map = sh(Command::new("qemu-img")
        .args(["map", "--output=json"])
        .arg(&disk));
    let map = String::from_utf8_lossy(&map.stdout);
    assert!(
        !map.contains("\"data\": true"),
        "the disk was written: {map}"
    );
    // Not even zeroed: BLKZEROOUT would leave present zero clusters behind.
    assert!(
        !map.contains("\"present\": true"),
        "the disk was touched: {map}"
    );
}

/// For bench/pxe: one node alone, booted by `boot`, the image over `url`, timed.
fn bench_one(mode: &str, boot: Boot, url: &str) {
    let b = built();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (vm, _srv, _disk) = install_one(mode, boot, url, &b.bundle, "SUCCESS: configured");
    assert!(vm.text().contains("SUCCESS: configured router-a primary"));
    bench_line(mode, &vm);
}

#[test]
#[ignore = "bench/pxe runs it: the pair test covers the HTTP install"]
fn bench_only_http_install() {
    // UEFI HTTP boot: the installer over HTTP as well; only the node file comes by TFTP.
    bench_one("http", Boot::Http, "http://192.0.2.5/axoha/");
}

#[test]
#[ignore = "bench/pxe runs it: TFTP is slow under TCG"]
fn bench_only_tftp_install() {
    bench_one("tftp", Boot::Pxe, "tftp:///axoha/");
}
