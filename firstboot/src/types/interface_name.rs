use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// A network interface name.
///
/// The kernel allows 1-15 bytes without `/`, `:`, whitespace or control characters. We are
/// stricter and allow only `[A-Za-z0-9_.-]`: every real interface naming scheme (eth0, ens3,
/// enp0s3, bond0.100, br-ha) fits, and nothing that keepalived's parser treats specially
/// (`#`, `!`, quotes, braces) can get through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InterfaceName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 15 {
            return Err(ValueError::new(
                "an interface name has 1 to 15 characters (kernel limit)",
            ));
        }
        if s == "." || s == ".." {
            return Err(ValueError::new("\".\" and \"..\" are not interface names"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(ValueError::new(format!(
                "character {c:?} is not allowed in an interface name (allowed: A-Z a-z 0-9 _ . -)"
            )));
        }
        Ok(InterfaceName(s.to_owned()))
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
