use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// The health check keepalived runs, as one line: an absolute program path and its arguments.
///
/// keepalived splits the quoted `script` on spaces itself (no shell), so we only need to keep
/// the line inside its quotes: printable ASCII without quotes, backslashes, `#` or `!` (comment
/// starters in keepalived's parser) and braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCommand(String);

impl HealthCommand {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HealthCommand {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if !s.starts_with('/') {
            return Err(ValueError::new(
                "must start with an absolute program path, e.g. /usr/bin/systemctl",
            ));
        }
        if s.len() > 512 {
            return Err(ValueError::new("longer than 512 characters"));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_graphic() || *c == ' ')
                || matches!(c, '"' | '\'' | '\\' | '#' | '!' | '{' | '}')
        }) {
            return Err(ValueError::new(format!(
                "character {c:?} is not allowed (no quotes, backslash, #, !, braces or control characters)"
            )));
        }
        Ok(HealthCommand(s.to_owned()))
    }
}

impl fmt::Display for HealthCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
