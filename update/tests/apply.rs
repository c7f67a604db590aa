//! keygen -> bundle -> apply on a disk image file: the inactive slot gets the bytes and the
//! PARTUUIDs, the ESP the kernel, initrd and entry; a second apply goes the other way.

mod common;

use common::*;

fn assert_slot(node: &Node, slot: &str, usrhash: &str, payload_tag: &str) {
    let h = usrhash_of(usrhash);
    let payloads = node.payloads(payload_tag, MIB as usize + 123);
    let usr = std::fs::read(&payloads.usr_img).unwrap();
    let verity = std::fs::read(&payloads.usr_verity).unwrap();
    let (off, _, uuid) = partition(&node.disk, &format!("usr-{slot}"));
    assert_eq!(
        read_at(&node.disk, off, usr.len()),
        usr,
        "usr-{slot} contents"
    );
    assert_eq!(uuid, h.usr_partuuid().to_string());
    let (off, _, uuid) = partition(&node.disk, &format!("usr-{slot}-verity"));
    assert_eq!(
        read_at(&node.disk, off, verity.len()),
        verity,
        "usr-{slot}-verity contents"
    );
    assert_eq!(uuid, h.verity_partuuid().to_string());
    assert_eq!(
        std::fs::read(node.esp.join(format!("axoha/{slot}/vmlinuz"))).unwrap(),
        std::fs::read(&payloads.vmlinuz).unwrap()
    );
    assert_eq!(
        std::fs::read(node.esp.join(format!("axoha/{slot}/initrd.img"))).unwrap(),
        std::fs::read(&payloads.initrd).unwrap()
    );
}

fn usrhash_of(text: &str) -> axoha_update::usrhash::UsrHash {
    usrhash(text)
}

fn entry_names(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(node.esp.join("loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn apply_writes_slot_b_then_a() {
    let node = Node::new();
    let slot_a_before = read_at(
        &node.disk,
        partition(&node.disk, "usr-a").0,
        2 * MIB as usize,
    );
    let first = hash("b2");
    let bundle = node.bundle(&first);
    let out = ok(&node.run(&["apply", bundle.to_str().unwrap()]));
    assert!(out.contains("slot b written"), "{out}");
    assert_slot(&node, "b", &first, &first);
    assert_eq!(
        read_at(
            &node.disk,
            partition(&node.disk, "usr-a").0,
            2 * MIB as usize
        ),
        slot_a_before
    );
    assert_eq!(entry_names(&node), ["axoha-1.conf", "axoha-2+3.conf"]);
    assert_eq!(
        std::fs::read_to_string(node.esp.join("loader/entries/axoha-2+3.conf")).unwrap(),
        format!(
            "title axoha edge 2.0 (slot b)\nlinux /axoha/b/vmlinuz\ninitrd /axoha/b/initrd.img\noptions usrhash={first} root=PARTUUID={STATE_UUID} rw console=ttyS0 axoha.role=primary\n"
        )
    );
    assert_eq!(
        std::fs::read(node.esp.join("axoha/a/vmlinuz")).unwrap(),
        b"old kernel"
    );

    // The status of the node before its reboot.
    let status: serde_json::Value =
        serde_json::from_str(&ok(&node.run(&["status", "--json"]))).unwrap();
    assert_eq!(status["running_slot"], "a");
    assert_eq!(status["other_usrhash"], first.as_str());
    assert_eq!(status["entries"][0]["file"], "axoha-2+3.conf");
    assert_eq!(status["entries"][0]["slot"], "b");
    assert_eq!(status["entries"][0]["tries"]["left"], 3);
    assert_eq!(status["entries"][1]["running"], true);
    let human = ok(&node.run(&["status"]));
    assert!(human.contains("running: slot a"), "{human}");

    // Rebooted into slot b, blessed; a second update goes to slot a.
    std::fs::rename(
        node.esp.join("loader/entries/axoha-2+3.conf"),
        node.esp.join("loader/entries/axoha-2.conf"),
    )
    .unwrap();
    node.set_running(&first);
    let second = hash("c3");
    let bundle = node.bundle(&second);
    ok(&node.run(&["apply", bundle.to_str().unwrap(), "--tries", "5"]));
    assert_slot(&node, "a", &second, &second);
    assert_slot(&node, "b", &first, &first);
    assert_eq!(entry_names(&node), ["axoha-2.conf", "axoha-3+5.conf"]);
    let entry = std::fs::read_to_string(node.esp.join("loader/entries/axoha-3+5.conf")).unwrap();
    assert!(
        entry.starts_with("title axoha edge 2.0 (slot a)\nlinux /axoha/a/vmlinuz\n"),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("options usrhash={second} root=PARTUUID=")),
        "{entry}"
    );
}

#[test]
fn tries_out_of_range_is_a_usage_error() {
    let node = Node::new();
    let out = node.run(&["apply", "x", "--tries", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// What was typed at the boot menu for one boot is in /proc/cmdline but not in the entry
/// that booted: the new entry carries the node's arguments from the entry, nothing else.
#[test]
fn boot_menu_arguments_are_not_carried() {
    let node = Node::new();
    let running = node.running.clone();
    std::fs::write(
        &node.cmdline,
        format!(
            "initrd=\\axoha\\a\\initrd.img usrhash={running} root=PARTUUID={STATE_UUID} rw console=ttyS0 axoha.role=primary \
             axoha.initrd_deadline=0 systemd.mask=axoha-boot-check.service systemd.unit=rescue.target axoha.role=secondary\n"
        ),
    )
    .unwrap();
    let next = hash("d4");
    let bundle = node.bundle(&next);
    ok(&node.run(&["apply", bundle.to_str().unwrap()]));
    let entry = std::fs::read_to_string(node.esp.join("loader/entries/axoha-2+3.conf")).unwrap();
    assert!(
        entry.ends_with(&format!(
            "\noptions usrhash={next} root=PARTUUID={STATE_UUID} rw console=ttyS0 axoha.role=primary\n"
        )),
        "{entry}"
    );
}
