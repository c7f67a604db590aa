//! Bundles that must each be refused by name, with the disk image and the ESP byte-identical
//! afterwards.

mod common;

use std::path::Path;

use axoha_update::bundle;
use common::*;

/// Runs apply on `bytes` and requires a refusal mentioning `expect`, nothing changed.
fn refused(node: &Node, case: &str, bytes: &[u8], expect: &str) {
    let path = node.dir.path().join(format!(
        "case-{}.axoha-bundle",
        case.replace(['/', ' '], "_")
    ));
    std::fs::write(&path, bytes).unwrap();
    refused_path(node, case, &path, expect);
}

fn refused_path(node: &Node, case: &str, path: &Path, expect: &str) {
    let before = node.snapshot();
    let out = node.run(&["apply", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{case}: accepted\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(expect),
        "{case}: expected {expect:?} in:\n{stderr}"
    );
    assert!(
        before == node.snapshot(),
        "{case}: the disk or the ESP changed"
    );
}

/// The good bundle's entries.
fn good(node: &Node) -> (Vec<u8>, Vec<Entry>) {
    let bytes = std::fs::read(node.bundle(&hash("b2"))).unwrap();
    let entries = split(&bytes);
    assert_eq!(entries.len(), 6);
    (bytes, entries)
}

/// A bundle with its manifest JSON edited and signed again with the right key.
fn resigned(node: &Node, entries: &[Entry], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut manifest: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    edit(&mut manifest);
    let json = serde_json::to_vec(&manifest).unwrap();
    let sig = axoha_update::signature::sign(&json, &node.secret_key(), "test").unwrap();
    let mut e = entries.to_vec();
    e[0] = Entry::new("manifest.json", json);
    e[1] = Entry::new("manifest.json.minisig", sig.into_bytes());
    join(&e)
}

#[test]
fn signatures() {
    let node = Node::new();
    let (_, entries) = good(&node);

    let mut unsigned = entries.clone();
    unsigned.remove(1);
    refused(
        &node,
        "unsigned",
        &join(&unsigned),
        "expected manifest.json.minisig",
    );

    let other = tempfile::tempdir().unwrap();
    bundle::generate_keypair(other.path()).unwrap();
    let out = node.dir.path().join("other-key.axoha-bundle");
    bundle::write(
        &out,
        node.base(&hash("b2")),
        &node.payloads("x", 1000),
        &other.path().join("axoha-update.key"),
    )
    .unwrap();
    refused_path(
        &node,
        "signed by another key",
        &out,
        "signed by another key",
    );

    // The signature of another manifest (same key).
    let mut base = node.base(&hash("b2"));
    base.version = "3.0".into();
    let out = node.dir.path().join("v3.axoha-bundle");
    bundle::write(
        &out,
        base,
        &node.payloads(&hash("b2"), MIB as usize + 123),
        &node.secret_key(),
    )
    .unwrap();
    let v3 = split(&std::fs::read(&out).unwrap());
    let mut swapped = entries.clone();
    swapped[1] = v3[1].clone();
    refused(
        &node,
        "signature of a different manifest",
        &join(&swapped),
        "does not verify",
    );

    let mut garbage = entries.clone();
    garbage[1] = Entry::new("manifest.json.minisig", b"not a signature".to_vec());
    refused(
        &node,
        "garbage signature",
        &join(&garbage),
        "not a minisign signature",
    );

    std::fs::remove_file(node.root.join("usr/lib/axoha/update.pub")).unwrap();
    refused(
        &node,
        "image without update.pub",
        &join(&entries),
        "this image accepts no updates",
    );
}

#[test]
fn truncations() {
    let node = Node::new();
    let (bytes, entries) = good(&node);
    let mut cuts = vec![0, 100];
    let mut at = 0;
    for e in &entries {
        cuts.push(at); // entry boundary
        cuts.push(at + 512); // after the header
        cuts.push(at + 512 + e.data.len() / 2); // mid data
        cuts.push(at + 512 + e.data.len()); // before the padding
        at += 512 + e.data.len().div_ceil(512) * 512;
    }
    cuts.push(at); // before the end blocks
    cuts.push(at + 512); // between them
    cuts.sort();
    cuts.dedup();
    for cut in cuts {
        refused(
            &node,
            &format!("truncated at {cut}"),
            &bytes[..cut],
            "truncated",
        );
    }
}

/// A change to a manifest before it is signed again.
type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

#[test]
fn manifests() {
    let node = Node::new();
    let (_, entries) = good(&node);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "other profile",
            Box::new(|m| m["profile"] = "almalinux-10".into()),
            "does not match this node's profile \"debian-12\"",
        ),
        (
            "unknown field",
            Box::new(|m| m["extra"] = 1.into()),
            "unknown field `extra`",
        ),
        (
            "unknown file field",
            Box::new(|m| m["files"]["usr.img"]["mode"] = 1.into()),
            "unknown field `mode`",
        ),
        (
            "format 2",
            Box::new(|m| m["format"] = 2.into()),
            "manifest format 2 is not supported",
        ),
        (
            "bad usrhash",
            Box::new(|m| m["usrhash"] = "B2".repeat(32).into()),
            "usrhash \"B2B2",
        ),
        (
            "short usrhash",
            Box::new(|m| m["usrhash"] = "b2".into()),
            "usrhash \"b2\"",
        ),
        (
            "bad sha256",
            Box::new(|m| m["files"]["vmlinuz"]["sha256"] = "x".into()),
            "files.vmlinuz.sha256",
        ),
        (
            "missing file",
            Box::new(|m| {
                m["files"].as_object_mut().unwrap().remove("initrd.img");
            }),
            "lacks initrd.img",
        ),
        (
            "extra file",
            Box::new(|m| {
                m["files"]["evil"] = serde_json::json!({"sha256": "0".repeat(64), "bytes": 0})
            }),
            "unknown entry \"evil\"",
        ),
        (
            "control character",
            Box::new(|m| m["name"] = "a\nb".into()),
            "manifest name",
        ),
        (
            "kernel_cmdline with a line break",
            Box::new(|m| m["kernel_cmdline"] = "console=ttyS0\ninit=/bin/sh".into()),
            "kernel_cmdline",
        ),
        (
            "kernel_cmdline naming another /usr",
            Box::new(|m| m["kernel_cmdline"] = format!("usrhash={}", "0".repeat(64)).into()),
            "selects or mounts the system",
        ),
        (
            "kernel_cmdline with node metadata",
            Box::new(|m| m["kernel_cmdline"] = "axoha.role=secondary".into()),
            "validated description",
        ),
        (
            "kernel_cmdline with a one-boot target",
            Box::new(|m| m["kernel_cmdline"] = "systemd.unit=rescue.target".into()),
            "for one boot",
        ),
        (
            "kernel_cmdline with quotes",
            Box::new(|m| m["kernel_cmdline"] = "x=\"a b\"".into()),
            "quotes",
        ),
        (
            "kernel_cmdline too long",
            Box::new(|m| m["kernel_cmdline"] = format!("x={}", "a".repeat(600)).into()),
            "at most 512",
        ),
        (
            "version out of its alphabet",
            Box::new(|m| m["version"] = "2.0 beta".into()),
            "manifest field version",
        ),
        (
            "same usrhash as running",
            Box::new(|m| m["usrhash"] = hash("a1").into()),
            "is the running /usr",
        ),
        (
            "size differs",
            Box::new(|m| m["files"]["usr.verity"]["bytes"] = 8192.into()),
            "entry usr.verity is 8209 bytes, the manifest says 8192",
        ),
    ];
    for (case, edit, expect) in cases {
        refused(&node, case, &resigned(&node, &entries, edit), expect);
    }

    let mut big = entries.clone();
    big[0] = Entry::new("manifest.json", vec![b' '; 64 * 1024 + 1]);
    refused(&node, "oversized manifest", &join(&big), "at most 65536");
    let mut big = entries.clone();
    big[1] = Entry::new("manifest.json.minisig", vec![b' '; 4097]);
    refused(&node, "oversized signature", &join(&big), "at most 4096");
}

#[test]
fn payloads() {
    let node = Node::new();
    let (bytes, entries) = good(&node);

    let mut tampered = bytes.clone();
    let usr_data = 512 * 2
        + entries[0].data.len().div_ceil(512) * 512
        + entries[1].data.len().div_ceil(512) * 512
        + 512;
    tampered[usr_data + 1000] ^= 1;
    refused(
        &node,
        "tampered payload byte",
        &tampered,
        "bundle entry usr.img: sha256 is",
    );
    let mut tampered = entries.clone();
    let last = tampered[5].data.len() - 1;
    tampered[5].data[last] ^= 0x80;
    refused(
        &node,
        "tampered initrd",
        &join(&tampered),
        "bundle entry initrd.img: sha256 is",
    );

    let mut shorter = entries.clone();
    shorter[3].data.pop();
    let n = shorter[3].data.len() as u64;
    shorter[3].set_size(n);
    refused(
        &node,
        "payload size differs",
        &join(&shorter),
        "entry usr.verity is 8208 bytes, the manifest says 8209",
    );

    // usr.img larger than the slot (signed, hashes right).
    let out = node.dir.path().join("large.axoha-bundle");
    bundle::write(
        &out,
        node.base(&hash("b2")),
        &node.payloads("large", (USR_MIB * MIB) as usize + 1),
        &node.secret_key(),
    )
    .unwrap();
    refused_path(
        &node,
        "usr.img larger than the slot",
        &out,
        "usr.img is 2097153 bytes; slot b's partition 4 holds 2097152",
    );
}

#[test]
fn entries_and_names() {
    let node = Node::new();
    let (_, entries) = good(&node);
    let with = |f: &dyn Fn(&mut Vec<Entry>)| {
        let mut e = entries.clone();
        f(&mut e);
        join(&e)
    };
    refused(
        &node,
        "extra entry",
        &with(&|e| e.push(Entry::new("extra", vec![1]))),
        "unexpected entry \"extra\" after initrd.img",
    );
    refused(
        &node,
        "duplicate entry",
        &with(&|e| e.insert(3, e[2].clone())),
        "entry 4 is named \"usr.img\", expected usr.verity",
    );
    refused(
        &node,
        "duplicate manifest",
        &with(&|e| e.insert(1, e[0].clone())),
        "entry 2 is named \"manifest.json\", expected manifest.json.minisig",
    );
    refused(
        &node,
        "reordered entries",
        &with(&|e| e.swap(4, 5)),
        "entry 5 is named \"initrd.img\", expected vmlinuz",
    );
    refused(
        &node,
        "signature first",
        &with(&|e| e.swap(0, 1)),
        "entry 1 is named \"manifest.json.minisig\", expected manifest.json",
    );
    refused(
        &node,
        "missing entry",
        &with(&|e| {
            e.remove(3);
        }),
        "expected usr.verity",
    );
    refused(
        &node,
        "missing last entry",
        &with(&|e| {
            e.pop();
        }),
        "end-of-archive block) where initrd.img should be",
    );
    for (name, expect) in [
        ("../usr.img", "entry 3 is named \"../usr.img\""),
        ("/usr.img", "entry 3 is named \"/usr.img\""),
        ("./usr.img", "entry 3 is named \"./usr.img\""),
        ("usr.img/", "entry 3 is named \"usr.img/\""),
    ] {
        refused(
            &node,
            name,
            &with(&|e| {
                e[2].set_name(name);
            }),
            expect,
        );
    }
    for (flag, expect) in [
        (b'1', "is a hard link"),
        (b'2', "is a symbolic link"),
        (b'3', "is a character device"),
        (b'4', "is a block device"),
        (b'5', "is a directory"),
        (b'6', "is a FIFO"),
        (b'x', "is a PAX extended header"),
        (b'g', "is a PAX extended header"),
        (b'L', "is a GNU long name header"),
        (b'K', "is a GNU long name header"),
    ] {
        refused(
            &node,
            &format!("type {}", flag as char),
            &with(&|e| {
                e[2].set(156, &[flag]);
            }),
            expect,
        );
    }
    // A link whose type flag says "file" but that carries a link name.
    refused(
        &node,
        "link name",
        &with(&|e| {
            e[2].set(157, b"/etc/shadow");
        }),
        "has a link name",
    );
    // A PAX header in front of usr.img naming it something else.
    let pax = |e: &mut Vec<Entry>| {
        let mut x = Entry::new("PaxHeader", b"30 path=../../../etc/passwd\n".to_vec());
        x.set_name("PaxHeaders/usr.img").set(156, b"x");
        e.insert(2, x);
    };
    refused(&node, "PAX path header", &with(&pax), "PAX extended header");
    let gnu = |e: &mut Vec<Entry>| {
        let mut x = Entry::new("LongLink", b"usr.img\0".to_vec());
        x.set_name("././@LongLink").set(156, b"L");
        e.insert(2, x);
    };
    refused(&node, "GNU long name", &with(&gnu), "GNU long name header");
    refused(
        &node,
        "GNU magic",
        &with(&|e| {
            e[2].set(257, b"ustar  \0");
        }),
        "not a POSIX ustar header",
    );
    refused(
        &node,
        "name prefix",
        &with(&|e| {
            e[2].set(345, b"var");
        }),
        "has a name prefix",
    );
    refused(
        &node,
        "bad checksum",
        &with(&|e| e[2].header[0] = b'U'),
        "bad checksum",
    );
    refused(
        &node,
        "base-256 size",
        &with(&|e| {
            e[2].set(124, &[0x80; 12]);
        }),
        "not an octal number",
    );
    let mut trailing = with(&|_| ());
    trailing.extend_from_slice(b"hello");
    refused(
        &node,
        "data after the end",
        &trailing,
        "data after its end-of-archive",
    );
    let mut nonzero_pad = with(&|_| ());
    nonzero_pad[512 + entries[0].data.len()] = b'x';
    refused(
        &node,
        "padding",
        &nonzero_pad,
        "padding after manifest.json is not zeros",
    );
}

#[test]
fn not_a_file() {
    let node = Node::new();
    refused_path(&node, "directory", node.dir.path(), "is not a regular file");
    refused_path(
        &node,
        "missing",
        &node.dir.path().join("nope"),
        "opening bundle",
    );
}

#[test]
fn an_esp_without_the_running_entry() {
    let node = Node::new();
    let bundle = node.bundle(&hash("b2"));
    std::fs::remove_file(node.esp.join("loader/entries/axoha-1.conf")).unwrap();
    refused_path(
        &node,
        "ESP not mounted",
        &bundle,
        "is the ESP mounted at /efi?",
    );
}
