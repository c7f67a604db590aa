use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// A node's role: the primary holds the VIP whenever it is healthy (it preempts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl FromStr for Role {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "primary" => Ok(Role::Primary),
            "secondary" => Ok(Role::Secondary),
            _ => Err(ValueError::new("expected \"primary\" or \"secondary\"")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        })
    }
}
