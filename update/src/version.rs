//! The appliance version and its order (docs/update-versions.md).
//!
//! A version is what the definition's `version` says (1-64 of letters, digits and
//! `. _ + ~ -`), or, without one, `AXOHA_IMAGE_VERSION+BUILDKEY12` ([`of_build`]). The order
//! is rpm's and systemd-boot's (rpmvercmp, `strverscmp_improved`) on the part before the
//! first `+`; what follows `+` is build metadata and takes no part in the order (semver's
//! rule), so two builds of one version are equal, neither older:
//!
//! - the text is cut into runs of digits and runs of letters; `.`, `_`, `-` only separate;
//! - runs compare pairwise: digits as numbers (leading zeros ignored), letters as ASCII;
//!   a run of digits is newer than a run of letters;
//! - `~` sorts before anything, even the end: `2.0~rc1` < `2.0`;
//! - when one runs out first, the longer is newer: `2.0.1` > `2.0`.
//!
//! So `2026.12.2` > `2026.12.1` > `2026.11.30` > `2026.11.30~rc1`, and `10` > `9`.

use std::cmp::Ordering;
use std::fmt;

use anyhow::{bail, Result};

/// A checked appliance version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

impl Version {
    pub fn parse(text: &str) -> Result<Version> {
        if text.is_empty()
            || text.len() > 64
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
        {
            bail!("version {text:?} is not 1-64 of letters, digits and . _ + ~ -");
        }
        Ok(Version(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part that is ordered (before the first `+`).
    fn release(&self) -> &str {
        self.0.split('+').next().unwrap_or("")
    }

    /// The order of the two versions (build metadata ignored): see the module comment.
    pub fn order(&self, other: &Version) -> Ordering {
        compare(self.release(), other.release())
    }
}

impl TryFrom<String> for Version {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Version> {
        Version::parse(&s)
    }
}

impl std::str::FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Version> {
        Version::parse(text)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a build: the definition's `version`, else the builder's own version and
/// the build key's first 12 digits as build metadata. One rule for the builder (the bundle
/// it writes) and the node (the image it runs, from its baked manifest).
pub fn of_build(definition_version: &str, builder_version: &str, build_key: &str) -> String {
    match definition_version {
        "" => format!(
            "{builder_version}+{}",
            build_key.get(..12).unwrap_or(build_key)
        ),
        v => v.to_owned(),
    }
}

fn compare(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~';
    loop {
        while a.first().is_some_and(sep) {
            a = &a[1..];
        }
        while b.first().is_some_and(sep) {
            b = &b[1..];
        }
        // `~` first: older than anything, the end included.
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        let digits = a[0].is_ascii_digit();
        if digits != b[0].is_ascii_digit() {
            return if digits {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let run = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if digits {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (run(a), run(b));
        let (ra, rb) = (&a[..na], &b[..nb]);
        let order = if digits {
            let strip = |r: &[u8]| -> usize { r.iter().take_while(|c| **c == b'0').count() };
            let (ra, rb) = (&ra[strip(ra)..], &rb[strip(rb)..]);
            ra.len().cmp(&rb.len()).then_with(|| ra.cmp(rb))
        } else {
            ra.cmp(rb)
        };
        if order != Ordering::Equal {
            return order;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn order() {
        let ascending = [
            "1",
            "1.0.1",
            "2",
            "2.0~rc1",
            "2.0",
            "2.0a",
            "2.0.1",
            "9",
            "10",
            "2026.11.30~rc1",
            "2026.11.30",
            "2026.12.1",
            "2026.12.2",
        ];
        for w in ascending.windows(2) {
            assert_eq!(
                v(w[0]).order(&v(w[1])),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
            assert_eq!(v(w[1]).order(&v(w[0])), Ordering::Greater);
        }
        assert_eq!(v("2.0").order(&v("2.00")), Ordering::Equal);
        assert_eq!(v("2_0").order(&v("2.0")), Ordering::Equal);
        // Build metadata is no part of the order.
        assert_eq!(
            v("0.1.0+aaaaaaaaaaaa").order(&v("0.1.0+bbbbbbbbbbbb")),
            Ordering::Equal
        );
        assert_eq!(v("0.1.1+a").order(&v("0.1.0+b")), Ordering::Greater);
        assert_eq!(v("1-flipped").order(&v("2")), Ordering::Less);
    }

    #[test]
    fn bad() {
        for bad in ["", "1 2", "1/2", &"9".repeat(65), "é"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn of_a_build() {
        assert_eq!(of_build("2026.1", "0.1.0", "abc"), "2026.1");
        assert_eq!(
            of_build("", "0.1.0", "0123456789abcdef"),
            "0.1.0+0123456789ab"
        );
    }
}
