//! README's metadata key table names every key first boot reads, and no other: the table is
//! what operators write their metadata from, so a key missing there is a key nobody sets,
//! and a key only there is one first boot refuses.

use std::collections::BTreeSet;

use axoha_firstboot::metadata::Key;

/// The keys of the table under "### Metadata keys": the first column's code spans; a row
/// `` `health.command` / `interval` `` names `health.interval` too (same prefix).
fn readme_keys() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = readme
        .split("\n### Metadata keys\n")
        .nth(1)
        .expect("README has a \"### Metadata keys\" section");
    let mut keys = BTreeSet::new();
    for row in table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let first = row.split('|').nth(1).expect("a first column");
        let mut prefix = "";
        for name in first.split('`').skip(1).step_by(2) {
            let name = match name.rsplit_once('.') {
                Some((p, _)) => {
                    prefix = &name[..=p.len()];
                    name.to_owned()
                }
                None => format!("{prefix}{name}"),
            };
            assert!(keys.insert(name.clone()), "README lists {name} twice");
        }
    }
    keys
}

#[test]
fn readme_lists_exactly_the_keys_first_boot_reads() {
    let code: BTreeSet<String> = Key::ALL.iter().map(|k| k.name().to_owned()).collect();
    let readme = readme_keys();
    let missing: Vec<_> = code.difference(&readme).collect();
    let unknown: Vec<_> = readme.difference(&code).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's metadata key table: missing {missing:?}, not a key {unknown:?}"
    );
}
