use std::fmt;
use std::str::FromStr;

use super::ValueError;
use crate::log::quote;

/// A host name per RFC 1123: dot-separated labels of 1-63 letters, digits and hyphens, not
/// starting or ending with a hyphen, 253 characters at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 253 {
            return Err(ValueError::new("a host name has 1 to 253 characters"));
        }
        for label in s.split('.') {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(ValueError::new(format!(
                    "label {} is not valid: 1-63 letters, digits or inner hyphens (RFC 1123)",
                    quote(label)
                )));
            }
        }
        Ok(Hostname(s.to_owned()))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
