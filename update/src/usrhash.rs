//! `UsrHash`: the dm-verity root hash of a /usr image (`usrhash=` on the kernel command
//! line), and the partition UUIDs derived from it.

use std::fmt;

use anyhow::{bail, Result};

use crate::digest::{hex, hex32};

/// A verity root hash: exactly 64 lowercase hexadecimal digits (so in JSON too).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsrHash([u8; 32]);

impl serde::Serialize for UsrHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for UsrHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<UsrHash, D::Error> {
        let text = String::deserialize(d)?;
        UsrHash::parse(&text).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// A GPT partition UUID, compared as 16 bytes (sfdisk prints upper case, systemd lower).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartUuid([u8; 16]);

impl UsrHash {
    pub fn parse(text: &str) -> Result<UsrHash> {
        Ok(UsrHash(hex32(text, "usrhash")?))
    }

    /// PARTUUID of the usr partition: the first 128 bits of the root hash.
    pub fn usr_partuuid(&self) -> PartUuid {
        PartUuid(self.0[..16].try_into().expect("16 bytes"))
    }

    /// PARTUUID of the verity partition: the last 128 bits.
    pub fn verity_partuuid(&self) -> PartUuid {
        PartUuid(self.0[16..].try_into().expect("16 bytes"))
    }
}

impl fmt::Display for UsrHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for UsrHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsrHash({self})")
    }
}

impl PartUuid {
    /// `8-4-4-4-12` hexadecimal digits, either case.
    pub fn parse(text: &str) -> Result<PartUuid> {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12]
            || !groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            bail!(
                "partition UUID {text:?} is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"
            );
        }
        let digits = groups.concat().to_ascii_lowercase();
        let mut out = [0u8; 16];
        for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16)
                .expect("hex digits");
        }
        Ok(PartUuid(out))
    }
}

impl fmt::Display for PartUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex(&self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl fmt::Debug for PartUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartUuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partuuids_are_the_halves_of_the_hash() {
        let hash = UsrHash::parse(&format!(
            "{}{}",
            "0123456789abcdef".repeat(2),
            "fedcba9876543210".repeat(2)
        ))
        .unwrap();
        assert_eq!(
            hash.usr_partuuid().to_string(),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(
            hash.verity_partuuid().to_string(),
            "fedcba98-7654-3210-fedc-ba9876543210"
        );
        assert_eq!(
            PartUuid::parse("01234567-89AB-CDEF-0123-456789ABCDEF").unwrap(),
            hash.usr_partuuid()
        );
        assert!(PartUuid::parse("0123456789AB-CDEF-0123-456789ABCDEF").is_err());
        assert!(UsrHash::parse("0123").is_err());
    }
}
