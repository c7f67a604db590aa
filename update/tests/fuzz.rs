//! Property tests of the bundle reader: whatever the bytes, no panic and a bounded time; a
//! good bundle with bytes flipped, cut or inserted is refused, or (a flip that changes no
//! value, such as a checksum field's NUL for a space) reads as the very same bundle.
//! `PROPTEST_CASES` raises the case count for a longer run.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axoha_update::bundle::{self, verify_stream, ManifestBase, Payloads};
use proptest::prelude::*;

const LIMIT: Duration = Duration::from_secs(1);

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// A small good bundle and its public key, made once.
fn sample() -> &'static (Vec<u8>, String) {
    static SAMPLE: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        bundle::generate_keypair(p).unwrap();
        for (name, n) in [("u", 1500), ("v", 700), ("k", 30), ("i", 513)] {
            std::fs::write(p.join(name), vec![n as u8; n]).unwrap();
        }
        let payloads = Payloads {
            usr_img: p.join("u"),
            usr_verity: p.join("v"),
            vmlinuz: p.join("k"),
            initrd: p.join("i"),
            uki: None,
        };
        let base = ManifestBase {
            profile: "debian-12".into(),
            name: "edge".into(),
            version: "1".into(),
            build_key: "k".into(),
            usrhash: "ab".repeat(32),
            kernel_cmdline: String::new(),
        };
        bundle::write(&p.join("b"), base, &payloads, &p.join("axoha-update.key")).unwrap();
        let key = bundle::public_key_of(&p.join("axoha-update.key")).unwrap();
        (std::fs::read(p.join("b")).unwrap(), key)
    })
}

fn read(bytes: &[u8], key: &str) -> anyhow::Result<bundle::Checked> {
    let started = Instant::now();
    let result = verify_stream(&mut &bytes[..], key, &mut |_, _| {});
    assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
    result
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Mutation::Flip(at, x)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..600))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (_, key) = sample();
        prop_assert!(read(&bytes, key).is_err());
    }

    #[test]
    fn tar_shaped_garbage_is_refused(names in prop::collection::vec("[a-z./]{1,20}", 1..8), sizes in prop::collection::vec(0u64..2000, 8), types in prop::collection::vec(prop::sample::select(b"0125xLg7".to_vec()), 8)) {
        let (_, key) = sample();
        let mut bytes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut e = common::Entry::new("x", vec![7; sizes[i] as usize]);
            if name.len() < 100 {
                e.set_name(name);
            }
            e.set(156, &[types[i]]);
            bytes.extend(common::join(&[e]).split_at(512 + (sizes[i] as usize).div_ceil(512) * 512).0);
        }
        bytes.extend([0; 1024]);
        prop_assert!(read(&bytes, key).is_err());
    }

    #[test]
    fn mutated_bundles_are_refused_or_unchanged(m in mutation()) {
        let (good, key) = sample();
        let original = read(good, key).unwrap();
        let mut bytes = good.clone();
        match &m {
            Mutation::Flip(at, x) => { let at = at % bytes.len(); bytes[at] ^= x; }
            Mutation::Cut(at) => bytes.truncate(at % bytes.len()),
            Mutation::Insert(at, b) => { let at = at % bytes.len(); bytes.splice(at..at, b.iter().copied()); }
        }
        if let Ok(checked) = read(&bytes, key) {
            prop_assert_eq!(checked.manifest, original.manifest);
            prop_assert_eq!(checked.payloads, original.payloads);
        }
    }
}
