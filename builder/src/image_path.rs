//! `ImagePath`: an absolute path in the image, in the one spelling the image resolves it to,
//! so that checks on it (ours or not, written twice or not) cannot be dodged by another
//! spelling of the same place.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Error, Result};
use serde::{Deserialize, Serialize};

/// Both profiles' trees are usrmerged: these top-level directories are symlinks into /usr,
/// so `/lib/x` and `/usr/lib/x` are one file.
const USRMERGE_ALIASES: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Linux's PATH_MAX and NAME_MAX.
const PATH_MAX: usize = 4095;
const NAME_MAX: usize = 255;

/// Absolute, without `.`, `..`, empty components or a trailing slash, with the usrmerge
/// aliases replaced by their `/usr` targets. Parsing is the only way to make one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImagePath(String);

impl ImagePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `dir` or lies below it.
    pub fn is_within(&self, dir: &str) -> bool {
        let dir = dir.trim_end_matches('/');
        self.0 == dir || self.0.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The directory holding it.
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("/", |(p, _)| p)
    }
}

impl FromStr for ImagePath {
    type Err = Error;

    fn from_str(s: &str) -> Result<ImagePath> {
        if !s.starts_with('/') {
            bail!("path {s:?} is not absolute");
        }
        if s.chars().any(char::is_control) {
            bail!("path {s:?} contains a control character");
        }
        if s.ends_with('/') {
            bail!("path {s:?} names a directory, not a file");
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in s.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                bail!("path {s:?}: \"..\" is refused (a path names one place, spelled one way)");
            }
            if part.len() > NAME_MAX {
                bail!("path {s:?}: a component is longer than {NAME_MAX} bytes");
            }
            parts.push(part);
        }
        if parts.is_empty() {
            bail!("path {s:?} names the root directory, not a file");
        }
        if USRMERGE_ALIASES.contains(&parts[0]) && parts.len() > 1 {
            parts.insert(0, "usr");
        }
        let path = format!("/{}", parts.join("/"));
        if path.len() > PATH_MAX {
            bail!("path {s:?} is longer than {PATH_MAX} bytes");
        }
        Ok(ImagePath(path))
    }
}

impl TryFrom<String> for ImagePath {
    type Error = Error;
    fn try_from(s: String) -> Result<ImagePath> {
        s.parse()
    }
}

impl From<ImagePath> for String {
    fn from(p: ImagePath) -> String {
        p.0
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        s.parse::<ImagePath>().unwrap().0
    }

    #[test]
    fn one_spelling_per_place() {
        assert_eq!(p("/etc//hosts"), "/etc/hosts");
        assert_eq!(p("/etc/./ssh/./sshd_config"), "/etc/ssh/sshd_config");
        assert_eq!(p("//usr///bin/x"), "/usr/bin/x");
        assert_eq!(
            p("/lib/systemd/system/a.service"),
            "/usr/lib/systemd/system/a.service"
        );
        assert_eq!(p("/bin/axoha-firstboot"), "/usr/bin/axoha-firstboot");
        assert_eq!(p("/sbin/x"), "/usr/sbin/x");
        assert_eq!(p("/lib64/x"), "/usr/lib64/x");
        // A file named like an alias at the top is not an alias of anything.
        assert_eq!(p("/lib"), "/lib");
        assert_eq!(p("/library/x"), "/library/x");
    }

    #[test]
    fn ambiguous_or_odd_paths_are_refused_with_the_value() {
        for (bad, why) in [
            ("etc/hosts", "not absolute"),
            ("/etc/../etc/passwd", "\"..\""),
            ("/..", "\"..\""),
            ("/etc/", "directory"),
            ("/", "directory"),
            ("/./.", "root"),
            ("/etc/a\nb", "control"),
            (&format!("/{}", "a".repeat(256)), "longer"),
        ] {
            let err = bad.parse::<ImagePath>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn within() {
        let x = p("/usr/lib/axoha/x").parse::<ImagePath>().unwrap();
        assert!(x.is_within("/usr/lib/axoha"));
        assert!(x.is_within("/usr/lib/axoha/"));
        assert!(!x.is_within("/usr/lib/axoh"));
        assert_eq!(x.file_name(), "x");
        assert_eq!(x.parent(), "/usr/lib/axoha");
    }
}
