//! The verified reader through the library: payloads copied out re-hash, so a bundle changed
//! after it was checked is caught while writing.

mod common;

use std::os::unix::fs::FileExt;

use axoha_update::bundle::{Bundle, PAYLOADS};
use common::*;

#[test]
fn a_bundle_changed_after_the_check_fails_while_copying() {
    let node = Node::new();
    let path = node.bundle(&hash("b2"));
    let key = axoha_update::bundle::public_key_of(&node.secret_key()).unwrap();
    let bundle = Bundle::open_verified(&path, &key).unwrap();
    assert_eq!(bundle.manifest().name, "edge");
    assert_eq!(bundle.usrhash().to_string(), hash("b2"));
    for name in PAYLOADS {
        let mut out = Vec::new();
        bundle.copy_payload(name, &mut out).unwrap();
        assert_eq!(out.len() as u64, bundle.bytes(name).unwrap());
    }
    let bytes = std::fs::read(&path).unwrap();
    let usr_at = split(&bytes)[..2]
        .iter()
        .map(|e| 512 + e.data.len().div_ceil(512) * 512)
        .sum::<usize>()
        + 512;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_at(b"X", usr_at as u64 + 10)
        .unwrap();
    let err = bundle
        .copy_payload("usr.img", &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bundle entry usr.img: sha256 is"), "{err}");
    // Re-opened, the changed bundle is refused outright.
    assert!(Bundle::open_verified(&path, &key).is_err());
}

#[test]
fn a_pub_file_is_a_key_too() {
    let node = Node::new();
    let path = node.bundle(&hash("b2"));
    let text = std::fs::read_to_string(node.keys.join("axoha-update.pub")).unwrap();
    assert!(text.starts_with("untrusted comment:"));
    Bundle::open_verified(&path, &text).unwrap();
    let err = Bundle::open_verified(&path, "RWQ").unwrap_err();
    assert!(
        format!("{err:#}").contains("not a minisign public key"),
        "{err:#}"
    );
}
