use std::fmt;
use std::str::FromStr;

use super::{parse_decimal, ValueError};

/// A whole number in `MIN..=MAX`; the range is part of the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<const MIN: u32, const MAX: u32>(u32);

/// Seconds of the health check's interval and timeout.
pub type Seconds = Bounded<1, 3600>;
/// How many results in a row the health check's rise and fall take.
pub type Count = Bounded<1, 100>;

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    /// For values computed by us rather than parsed; out-of-range is a bug, not bad input.
    pub fn new(value: u32) -> Result<Self, ValueError> {
        if (MIN..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValueError::new(format!("{value} is not in {MIN}..={MAX}")))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const MIN: u32, const MAX: u32> FromStr for Bounded<MIN, MAX> {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let n = parse_decimal(s)?;
        u32::try_from(n)
            .map_err(|_| ValueError::new(format!("{n} is not in {MIN}..={MAX}")))
            .and_then(Self::new)
    }
}

impl<const MIN: u32, const MAX: u32> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// VRRP virtual router id (RFC 5798: 1-255); unique per L2 segment.
pub type Vrid = Bounded<1, 255>;

/// VRRP priority. 255 is reserved for the address owner and 0 means "leaving", so 1-254.
pub type Priority = Bounded<1, 254>;
