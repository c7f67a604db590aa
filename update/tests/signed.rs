//! A Secure Boot node (its entry boots a signed UKI, its /usr carries the db certificate)
//! takes only a bundle whose UKI the firmware would boot: UKIs made with the real tools
//! (openssl keys as `axoha-image keygen` makes them, systemd-stub + objcopy as the builder's
//! `uki.rs`, sbsign), then hostile ones, each refused by name with the disk and the ESP
//! byte-identical. `sbverify` agrees with the updater on the good and the foreign one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use axoha_update::bundle::{self, SignedUki};
use common::*;

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// A self-signed RSA certificate and key as keygen's db (`-set_serial` fixed, so an impostor
/// can name itself exactly like it).
fn db_key(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
    let (key, crt) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    sh(Command::new("openssl")
        .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-sha256", "-days", "7300", "-set_serial", "4242", "-subj"])
        .arg(subject)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt));
    (key, crt)
}

/// A UKI of `cmdline` made as the builder makes one (systemd-stub, the same sections at the
/// same addresses), with the node's test payloads as kernel and initrd.
fn uki(dir: &Path, name: &str, cmdline: &str) -> PathBuf {
    let cmd = dir.join(format!("{name}.cmdline"));
    std::fs::write(&cmd, cmdline).unwrap();
    let osrel = dir.join("os-release");
    std::fs::write(&osrel, "ID=debian\nVERSION_ID=12\n").unwrap();
    let (kernel, initrd) = (dir.join("kernel"), dir.join("initrd"));
    std::fs::write(&kernel, vec![0x4b; 70_000]).unwrap();
    std::fs::write(&initrd, vec![0x49; 50_000]).unwrap();
    let out = dir.join(format!("{name}.efi"));
    let mut c = Command::new("objcopy");
    for (section, file, vma) in [
        (".osrel", &osrel, 0x20000),
        (".cmdline", &cmd, 0x30000),
        (".linux", &kernel, 0x2000000),
        (".initrd", &initrd, 0x3000000),
    ] {
        c.arg("--add-section")
            .arg(format!("{section}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{section}={vma:#x}"));
    }
    sh(c.arg(STUB).arg(&out));
    out
}

fn sign(file: &Path, key: &Path, crt: &Path) -> PathBuf {
    let out = file.with_extension("signed.efi");
    sh(Command::new("sbsign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(crt)
        .arg("--output")
        .arg(&out)
        .arg(file));
    out
}

fn sbverify(file: &Path, crt: &Path) -> bool {
    Command::new("sbverify")
        .arg("--cert")
        .arg(crt)
        .arg(file)
        .output()
        .unwrap()
        .status
        .success()
}

/// A signed node: the image's entry boots slot a's UKI; /usr carries `crt`.
struct Signed {
    node: Node,
    key: PathBuf,
    crt: PathBuf,
    work: PathBuf,
}

fn signed_node() -> Signed {
    let node = Node::new();
    let work = node.dir.path().join("sb");
    std::fs::create_dir(&work).unwrap();
    let (key, crt) = db_key(&work, "db", "/CN=axoha image signing key/");
    let dir = node.root.join("usr/lib/axoha/secure-boot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&crt, dir.join("db.crt")).unwrap();
    std::fs::write(node.esp.join("axoha/a/linux.efi"), b"old uki").unwrap();
    std::fs::write(
        node.esp.join("loader/entries/axoha-1.conf"),
        format!(
            "title axoha edge (slot a)\nefi /axoha/a/linux.efi\noptions usrhash={} root=PARTUUID={STATE_UUID} rw console=ttyS0\n",
            node.running
        ),
    )
    .unwrap();
    Signed {
        node,
        key,
        crt,
        work,
    }
}

/// What the good UKI's `.cmdline` is: the bundle's usrhash, the node's state partition, the
/// bundle's kernel_cmdline (`console=ttyS0`, `Node::base`).
fn good_cmdline(usrhash: &str) -> String {
    format!("usrhash={usrhash} root=PARTUUID={STATE_UUID} rw console=ttyS0")
}

/// A bundle of `usrhash` whose UKI is `uki` (`None`: an unsigned image's bundle).
fn bundle_with(s: &Signed, usrhash: &str, tag: &str, uki: Option<&Path>) -> PathBuf {
    let mut payloads = s.node.payloads(usrhash, MIB as usize + 123);
    payloads.uki = uki.map(|path| SignedUki {
        path: path.to_owned(),
        db_certificate_sha256: "0".repeat(64),
    });
    let out = s.node.dir.path().join(format!("{tag}.axoha-bundle"));
    bundle::write(&out, s.node.base(usrhash), &payloads, &s.node.secret_key()).unwrap();
    out
}

#[test]
fn a_signed_node_installs_a_good_signed_uki_as_an_efi_entry() {
    let s = signed_node();
    let new = hash("b2");
    let signed = sign(&uki(&s.work, "good", &good_cmdline(&new)), &s.key, &s.crt);
    assert!(sbverify(&signed, &s.crt), "sbverify takes the good UKI");
    let b = bundle_with(&s, &new, "good", Some(&signed));
    let out = ok(&s.node.run(&["apply", b.to_str().unwrap()]));
    assert!(out.contains("signed UKI verified"), "{out}");
    let esp = &s.node.esp;
    assert_eq!(
        std::fs::read(esp.join("axoha/b/linux.efi")).unwrap(),
        std::fs::read(&signed).unwrap()
    );
    assert!(sbverify(&esp.join("axoha/b/linux.efi"), &s.crt));
    assert!(
        !esp.join("axoha/b/vmlinuz").exists(),
        "no unbootable kernel beside it"
    );
    assert!(!esp.join("axoha/b/initrd.img").exists());
    assert_eq!(
        std::fs::read_to_string(esp.join("loader/entries/axoha-2+3.conf")).unwrap(),
        format!(
            "title axoha edge 2.0 (slot b)\nefi /axoha/b/linux.efi\noptions {}\n",
            good_cmdline(&new)
        )
    );
    let (off, _, uuid) = partition(&s.node.disk, "usr-b");
    assert_eq!(uuid, usrhash(&new).usr_partuuid().to_string());
    let usr = std::fs::read(s.node.payloads(&new, MIB as usize + 123).usr_img).unwrap();
    assert_eq!(read_at(&s.node.disk, off, usr.len()), usr);
}

/// Each bundle is refused, saying `says`, with the disk and the ESP untouched.
fn refused(s: &Signed, b: &Path, says: &str) {
    let before = s.node.snapshot();
    let out = s.node.run(&["apply", b.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{says}: applied\n{err}");
    assert!(err.contains(says), "expected {says:?} in:\n{err}");
    assert!(
        before == s.node.snapshot(),
        "{says}: the disk or the ESP changed"
    );
    assert!(
        !s.node
            .root
            .join("var/lib/axoha/update/memory.json")
            .exists()
            || !std::fs::read_to_string(s.node.root.join("var/lib/axoha/update/memory.json"))
                .unwrap()
                .contains(&hash("b2")),
        "{says}: the refused bundle was remembered"
    );
}

#[test]
fn a_signed_node_refuses_every_uki_its_firmware_would_not_boot() {
    let s = signed_node();
    let new = hash("b2");
    let w = &s.work;
    let good = uki(w, "good", &good_cmdline(&new));

    // Not signed at all.
    let b = bundle_with(&s, &new, "unsigned", Some(&good));
    refused(&s, &b, "the UKI is not signed");

    // Signed by another key set's db.
    let (other_key, other_crt) = db_key(w, "other", "/CN=someone else/");
    let foreign = sign(&good, &other_key, &other_crt);
    assert!(!sbverify(&foreign, &s.crt), "sbverify refuses it too");
    let b = bundle_with(&s, &new, "foreign", Some(&foreign));
    refused(&s, &b, "not by this node's db certificate");

    // Another key whose certificate names itself exactly like the node's (subject, serial).
    let (fake_key, fake_crt) = db_key(w, "fake", "/CN=axoha image signing key/");
    let impostor = sign(&good, &fake_key, &fake_crt);
    let b = bundle_with(&s, &new, "impostor", Some(&impostor));
    refused(
        &s,
        &b,
        "does not verify with the key of this node's db certificate",
    );

    // One byte of the signed UKI changed (in the kernel).
    let signed = sign(&good, &s.key, &s.crt);
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.windows(8).position(|x| x == [0x4b; 8]).unwrap() + 100;
    bytes[at] ^= 1;
    let changed = w.join("changed.efi");
    std::fs::write(&changed, &bytes).unwrap();
    assert!(!sbverify(&changed, &s.crt));
    let b = bundle_with(&s, &new, "changed", Some(&changed));
    refused(&s, &b, "changed after signing");

    // Signed well, but for another /usr.
    let other = sign(
        &uki(w, "other-usr", &good_cmdline(&hash("c3"))),
        &s.key,
        &s.crt,
    );
    let b = bundle_with(&s, &new, "other-usr", Some(&other));
    refused(&s, &b, "the UKI would boot another /usr");

    // Signed well, with arguments the boot contract forbids.
    for (tag, extra) in [
        ("init", "init=/bin/sh"),
        ("unit", "systemd.unit=rescue.target"),
    ] {
        let cmdline = format!("{} {extra}", good_cmdline(&new));
        let bad = sign(&uki(w, tag, &cmdline), &s.key, &s.crt);
        let b = bundle_with(&s, &new, tag, Some(&bad));
        refused(&s, &b, "an argument the boot contract forbids");
    }

    // Signed well, naming another state partition.
    let cmdline = good_cmdline(&new).replace(STATE_UUID, "5ea7e000-0000-4000-8000-0000000000ff");
    let elsewhere = sign(&uki(w, "elsewhere", &cmdline), &s.key, &s.crt);
    let b = bundle_with(&s, &new, "elsewhere", Some(&elsewhere));
    refused(&s, &b, "this node's state partition");

    // A signed UKI cut in half.
    let bytes = std::fs::read(&signed).unwrap();
    let cut = w.join("cut.efi");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let b = bundle_with(&s, &new, "cut", Some(&cut));
    refused(&s, &b, "is not inside the file");

    // Not a PE file at all.
    let text = w.join("text.efi");
    std::fs::write(&text, "MZ not really").unwrap();
    let b = bundle_with(&s, &new, "text", Some(&text));
    refused(&s, &b, "not a well-formed PE32+ image");

    // An unsigned image's bundle: a kernel and an initrd the firmware would refuse.
    let b = bundle_with(&s, &new, "no-uki", None);
    refused(&s, &b, "carries none");

    // The image carries no db certificate.
    let b = bundle_with(&s, &new, "no-db", Some(&signed));
    let db = s.node.root.join("usr/lib/axoha/secure-boot/db.crt");
    std::fs::remove_file(&db).unwrap();
    refused(&s, &b, "db.crt is missing");
    std::fs::copy(&s.crt, &db).unwrap();

    // After all that, the good one still goes in.
    let out = ok(&s.node.run(&["apply", b.to_str().unwrap()]));
    assert!(out.contains("signed UKI verified"), "{out}");
}

/// An unsigned node takes a signed image's bundle as it takes any: kernel and initrd, a
/// `linux` entry, the UKI not used (docs/secure-boot.md).
#[test]
fn an_unsigned_node_installs_a_signed_bundles_kernel_and_initrd() {
    let s = signed_node();
    std::fs::write(
        s.node.esp.join("loader/entries/axoha-1.conf"),
        format!(
            "title axoha edge (slot a)\nlinux /axoha/a/vmlinuz\ninitrd /axoha/a/initrd.img\noptions usrhash={} root=PARTUUID={STATE_UUID} rw console=ttyS0\n",
            s.node.running
        ),
    )
    .unwrap();
    let new = hash("b2");
    let signed = sign(&uki(&s.work, "good", &good_cmdline(&new)), &s.key, &s.crt);
    let b = bundle_with(&s, &new, "good", Some(&signed));
    let out = ok(&s.node.run(&["apply", b.to_str().unwrap()]));
    assert!(out.contains("signed UKI is not used"), "{out}");
    let esp = &s.node.esp;
    assert!(esp.join("axoha/b/vmlinuz").is_file());
    assert!(!esp.join("axoha/b/linux.efi").exists());
    let entry = std::fs::read_to_string(esp.join("loader/entries/axoha-2+3.conf")).unwrap();
    assert!(entry.contains("linux /axoha/b/vmlinuz\n"), "{entry}");
}
