//! The definition's names and small values: what a file name, a package manager's argument or
//! the updater's key file may hold.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::text::serde_by_str;

/// A string type whose parser is `$check`: `FromStr`, `Display`, `as_str` and serde.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = anyhow::Error;

            fn from_str(s: &str) -> Result<$name> {
                let check: fn(&str) -> Result<String> = $check;
                check(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        serde_by_str!($name);
    };
}

checked_string!(
    /// `name`: the artifacts' base name, 1-64 of a-z, 0-9 and -.
    ApplianceName,
    |s| {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            bail!("{s:?}: use 1-64 of a-z, 0-9 and -");
        }
        Ok(s.to_owned())
    }
);

checked_string!(
    /// `release`: the distribution release (a dnf `--releasever`, an apt suite).
    Release,
    |s| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            bail!("{s:?}: letters, digits and dots only");
        }
        Ok(s.to_owned())
    }
);

checked_string!(
    /// One of `extra_packages`: a package name as dnf and apt spell one (never an option).
    PackageName,
    |s| {
        let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b));
        if !ok {
            bail!("{s:?} is not a package name");
        }
        Ok(s.to_owned())
    }
);

checked_string!(
    /// `[update] public_key`: a minisign public key, its one-line base64 form (`RW...`),
    /// baked to /usr/lib/axoha/update.pub.
    UpdateKey,
    |s| {
        if s.contains(char::is_whitespace) {
            bail!("{s:?}: the one-line base64 key (RW...), nothing else");
        }
        axoha_update::signature::parse_public_key(s)?;
        Ok(s.to_owned())
    }
);

checked_string!(
    /// A sha256 as the operator may paste it, 64 hex digits in any case; held in lower case.
    Sha256,
    |s| {
        let v = s.trim().to_ascii_lowercase();
        if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{s:?}: expected 64 hexadecimal digits");
        }
        Ok(v)
    }
);

/// `usr_compression_level`: a zstd level, 1 to 22.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct CompressionLevel(u8);

impl CompressionLevel {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for CompressionLevel {
    type Error = String;

    fn try_from(level: u8) -> Result<CompressionLevel, String> {
        if !(1..=22).contains(&level) {
            return Err(format!("{level}: zstd levels are 1 to 22"));
        }
        Ok(CompressionLevel(level))
    }
}

impl From<CompressionLevel> for u8 {
    fn from(level: CompressionLevel) -> u8 {
        level.0
    }
}

/// Measured on the debian-12 /usr (620 MiB, 2 cores; issue 15): level 6 takes 4 s for 164 MiB,
/// mksquashfs's own default 15 takes 42 s for 152 MiB.
impl Default for CompressionLevel {
    fn default() -> CompressionLevel {
        CompressionLevel(6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::text::refused;

    #[test]
    fn names_are_refused_with_their_value() {
        assert!(refused::<ApplianceName>("").contains("\"\": use 1-64"));
        assert!(refused::<ApplianceName>("Axo Ha").contains("\"Axo Ha\""));
        assert!(refused::<ApplianceName>(&"a".repeat(65)).contains("1-64"));
        assert_eq!(
            "axoha-2".parse::<ApplianceName>().unwrap().as_str(),
            "axoha-2"
        );
        assert!(refused::<Release>("12/../x").contains("letters, digits and dots"));
        assert!(refused::<Release>("10\n").contains("letters, digits and dots"));
        assert!(refused::<PackageName>("--allow-unauthenticated").contains("not a package"));
        assert!(refused::<PackageName>("").contains("not a package"));
        assert!(refused::<PackageName>("vim tmux").contains("not a package"));
        assert_eq!("g++".parse::<PackageName>().unwrap().as_str(), "g++");
        assert!(refused::<UpdateKey>("RWnotakey").contains("\"RWnotakey\""));
        assert!(refused::<UpdateKey>("RW a").contains("one-line"));
    }

    #[test]
    fn sha256_is_64_hex_digits_held_in_lower_case() {
        let upper = "AB".repeat(32);
        assert_eq!(upper.parse::<Sha256>().unwrap().as_str(), "ab".repeat(32));
        assert!(refused::<Sha256>("abc").contains("\"abc\": expected 64 hexadecimal"));
        assert!(refused::<Sha256>(&"g".repeat(64)).contains("64 hexadecimal"));
    }

    #[test]
    fn compression_levels_are_zstds() {
        for bad in [0, 23, 255] {
            assert!(CompressionLevel::try_from(bad)
                .unwrap_err()
                .contains("1 to 22"));
        }
        assert_eq!(CompressionLevel::try_from(22).unwrap().get(), 22);
    }
}
