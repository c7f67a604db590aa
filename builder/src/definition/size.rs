//! `disk_size` and `usr_slot_size`: a whole number of G or M within the field's range, held
//! as bytes and as the text the definition gave (written back unchanged).

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::text::serde_by_str;

/// The size of the whole disk image: 1G to 64G.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSize(Size);

/// The size of each /usr slot (A and B): 256M to 16G. The squashfs of /usr must fit it, now
/// and after every update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSize(Size);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Size {
    bytes: u64,
    text: String,
}

impl Size {
    /// `s` as bytes, refused outside `range` (named `range_text` in the error).
    fn parse(s: &str, range: RangeInclusive<u64>, range_text: &str) -> Result<Size> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(digits);
        if num.is_empty() || (num.len() > 1 && num.starts_with('0')) {
            bail!("{s:?}: expected a whole number and a unit, e.g. 3G or 2048M");
        }
        let n: u64 = num
            .parse()
            .with_context(|| format!("{s:?}: more than a 64-bit size holds"))?;
        let unit: u64 = match unit {
            "G" | "GiB" => 1 << 30,
            "M" | "MiB" => 1 << 20,
            _ => bail!("{s:?}: unit must be G or M"),
        };
        // Checked: `n << 20` drops high bits, so 17592186048512M would wrap to 4 GiB.
        let bytes = n
            .checked_mul(unit)
            .with_context(|| format!("{s:?}: more bytes than a 64-bit size holds"))?;
        if !range.contains(&bytes) {
            bail!("{s:?}: between {range_text}");
        }
        Ok(Size {
            bytes,
            text: s.to_owned(),
        })
    }
}

impl DiskSize {
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }
}

impl SlotSize {
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }
}

impl FromStr for DiskSize {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<DiskSize> {
        Size::parse(s, 1 << 30..=64 << 30, "1G and 64G").map(DiskSize)
    }
}

impl FromStr for SlotSize {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<SlotSize> {
        Size::parse(s, 256 << 20..=16 << 30, "256M and 16G").map(SlotSize)
    }
}

impl fmt::Display for DiskSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Display for SlotSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

serde_by_str!(DiskSize, SlotSize);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::text::refused;

    #[test]
    fn sizes_are_whole_units_in_range() {
        assert_eq!("4G".parse::<DiskSize>().unwrap().bytes(), 4 << 30);
        assert_eq!("2048MiB".parse::<DiskSize>().unwrap().bytes(), 2 << 30);
        assert_eq!("256M".parse::<SlotSize>().unwrap().bytes(), 256 << 20);
        assert_eq!("16G".parse::<SlotSize>().unwrap().to_string(), "16G");
        for (bad, why) in [
            ("0G", "\"0G\": between 1G and 64G"),
            ("65G", "between 1G and 64G"),
            ("4", "unit must be G or M"),
            ("4T", "\"4T\": unit must be G or M"),
            ("4g", "unit must be G or M"),
            ("G", "expected a whole number"),
            ("", "expected a whole number"),
            (" 4G", "expected a whole number"),
            ("4G ", "unit must be G or M"),
            ("+4G", "expected a whole number"),
            ("04G", "expected a whole number"),
            ("4.5G", "unit must be G or M"),
            ("4G\n", "unit must be G or M"),
            ("17592186048512M", "more bytes than a 64-bit size holds"),
            ("99999999999999999999G", "more than a 64-bit size holds"),
        ] {
            let err = refused::<DiskSize>(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(refused::<SlotSize>("100M").contains("between 256M and 16G"));
        assert!(refused::<SlotSize>("0M").contains("between 256M and 16G"));
    }
}
