//! dm-verity hash trees made offline by `veritysetup format` on plain files, with salt and
//! UUID given (derived from the build seed): the same data gives the same tree and root hash.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::tool::{command, run};

/// A root hash: 64 lowercase hex digits (sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootHash(String);

impl RootHash {
    pub fn parse(s: &str) -> Result<RootHash> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!("{s:?} is not a sha256 root hash (64 lowercase hex digits)");
        }
        Ok(RootHash(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The PARTUUID of the data partition: the first 128 bits, as
    /// systemd-veritysetup-generator looks it up for `usrhash=`.
    pub fn data_partuuid(&self) -> String {
        as_uuid(&self.0[..32])
    }

    /// The PARTUUID of the hash partition: the last 128 bits.
    pub fn hash_partuuid(&self) -> String {
        as_uuid(&self.0[32..])
    }
}

fn as_uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Writes the hash tree of `data` to `hash` (replaced) and returns the root hash. `salt`: hex;
/// `uuid`: the verity superblock's.
pub fn format(data: &Path, hash: &Path, salt: &str, uuid: &str) -> Result<RootHash> {
    let _ = std::fs::remove_file(hash);
    std::fs::File::create(hash).with_context(|| format!("creating {}", hash.display()))?;
    let out = run(command("veritysetup")
        .arg("format")
        .arg(data)
        .arg(hash)
        .arg(format!("--salt={salt}"))
        .arg(format!("--uuid={uuid}")))
    .context("veritysetup format (the /usr hash tree)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .with_context(|| format!("no root hash in veritysetup's output:\n{text}"))?;
    RootHash::parse(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partuuids_are_the_halves_of_the_root_hash() {
        let h = RootHash::parse(&format!(
            "{}{}",
            "0123456789abcdef".repeat(2),
            "f".repeat(32)
        ))
        .unwrap();
        assert_eq!(h.data_partuuid(), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(h.hash_partuuid(), "ffffffff-ffff-ffff-ffff-ffffffffffff");
        assert!(RootHash::parse("ABC").is_err());
        assert!(RootHash::parse(&"G".repeat(64)).is_err());
    }

    #[test]
    fn format_is_deterministic() {
        if crate::tool::which("veritysetup").is_none() {
            eprintln!("skipped: no veritysetup");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, vec![7u8; 1 << 20]).unwrap();
        let salt = "00".repeat(32);
        let uuid = "12345678-1234-4234-8234-123456789abc";
        let a = format(&data, &dir.path().join("a"), &salt, uuid).unwrap();
        let b = format(&data, &dir.path().join("b"), &salt, uuid).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            std::fs::read(dir.path().join("a")).unwrap(),
            std::fs::read(dir.path().join("b")).unwrap()
        );
    }
}
