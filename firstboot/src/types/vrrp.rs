use std::fmt;
use std::str::FromStr;

use super::{parse_decimal, ValueError};

/// VRRP protocol version. 3 (RFC 5798) is our default: sub-second adverts, no PASS auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrrpVersion {
    V2,
    V3,
}

impl FromStr for VrrpVersion {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "2" => Ok(VrrpVersion::V2),
            "3" => Ok(VrrpVersion::V3),
            _ => Err(ValueError::new("expected 2 or 3")),
        }
    }
}

impl fmt::Display for VrrpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VrrpVersion::V2 => "2",
            VrrpVersion::V3 => "3",
        })
    }
}

/// Advertisement interval, held in centiseconds (VRRPv3's unit on the wire).
///
/// Which values are allowed depends on the version (v2: whole seconds 1-255; v3: 0.01-40.95 s);
/// that check lives with the version in `config`, since it needs both values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AdvertInt {
    centis: u32,
}

impl AdvertInt {
    pub const fn from_centis(centis: u32) -> Self {
        AdvertInt { centis }
    }

    pub fn centis(self) -> u32 {
        self.centis
    }

    pub fn is_whole_seconds(self) -> bool {
        self.centis.is_multiple_of(100)
    }
}

impl FromStr for AdvertInt {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::new("expected seconds with at most 2 decimals, e.g. 1 or 0.2");
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 2 || (s.contains('.') && frac.is_empty()) {
            return Err(bad());
        }
        let whole = parse_decimal(whole).map_err(|_| bad())?;
        let frac = if frac.is_empty() {
            0
        } else {
            parse_decimal(&format!("{frac:0<2}")).map_err(|_| bad())?
        };
        let centis = whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac))
            .filter(|c| *c > 0 && *c <= 25_500)
            .ok_or_else(|| ValueError::new("must be more than 0 and at most 255 seconds"))?;
        Ok(AdvertInt {
            centis: centis as u32,
        })
    }
}

impl fmt::Display for AdvertInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, c) = (self.centis / 100, self.centis % 100);
        match c {
            0 => write!(f, "{s}"),
            c if c % 10 == 0 => write!(f, "{s}.{}", c / 10),
            c => write!(f, "{s}.{c:02}"),
        }
    }
}

/// A VRRPv2 PASS password: 1-8 printable characters.
///
/// keepalived silently cuts `auth_pass` to 8 characters, so a longer one is refused rather than
/// truncated behind the operator's back. It travels in cleartext; it stops accidents, not attacks.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthPass(String);

impl AuthPass {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for AuthPass {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.chars().count() > 8 {
            return Err(ValueError::new(
                "must have 1 to 8 characters (keepalived silently cuts longer passwords to 8)",
            ));
        }
        if !s.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '#' | '!' | '{' | '}')
        }) {
            return Err(ValueError::new(
                "only printable ASCII without spaces, quotes, backslash, #, ! or braces",
            ));
        }
        Ok(AuthPass(s.to_owned()))
    }
}

impl fmt::Debug for AuthPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthPass(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advert_int_round_trips() {
        for (input, shown) in [("1", "1"), ("0.2", "0.2"), ("0.25", "0.25"), ("2.5", "2.5")] {
            assert_eq!(input.parse::<AdvertInt>().unwrap().to_string(), shown);
        }
        for bad in ["0", "0.001", "1.", ".5", "-1", "256", "1e2"] {
            assert!(bad.parse::<AdvertInt>().is_err(), "{bad}");
        }
    }
}
