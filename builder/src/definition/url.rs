//! Where packages and keys come from: mirrors, the AxoRouter package and repository, signing
//! keys. Each is one word (it reaches a command line or a repository file) and an URL has a
//! scheme the tools that fetch it speak.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Result};

use super::text::{one_word, serde_by_str};

/// An `http://`, `https://` or `file:/` URL: what dnf and apt fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(String);

impl Url {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Url {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Url> {
        one_word(s, "an URL")?;
        let rest = ["http://", "https://", "file:/"]
            .iter()
            .find_map(|p| s.strip_prefix(p));
        match rest {
            Some(rest) if !rest.trim_matches('/').is_empty() => Ok(Url(s.to_owned())),
            Some(_) => bail!("{s:?}: the URL names no host or path"),
            None => bail!("{s:?}: expected an http://, https:// or file:/ URL"),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signing key: an URL (dnf fetches it) or a file on the build host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(Url),
    File(PathBuf),
}

impl KeySource {
    /// The local file, `None` for an URL.
    pub fn file(&self) -> Option<&Path> {
        match self {
            KeySource::Url(_) => None,
            KeySource::File(p) => Some(p),
        }
    }
}

impl FromStr for KeySource {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<KeySource> {
        one_word(s, "a key's URL or file")?;
        // `file:/key` is an URL as the mirror's `file:/` is, not a file named "file:".
        if s.contains("://") || s.starts_with("file:") {
            return s.parse().map(KeySource::Url);
        }
        Ok(KeySource::File(PathBuf::from(s)))
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Url(u) => u.fmt(f),
            KeySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The AxoRouter package: an http(s) URL to download (its last segment a package file name)
/// or a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    Download(Url),
    File(PathBuf),
}

impl FromStr for PackageSource {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<PackageSource> {
        if s.is_empty() {
            bail!("the package's path or URL is empty");
        }
        if s.contains("://") {
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                bail!("{s:?}: give a local package file or an http(s) URL");
            }
            let url: Url = s.parse()?;
            crate::fetch::file_name(url.as_str())?;
            return Ok(PackageSource::Download(url));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            bail!("{s:?}: a file name without control characters ({c:?})");
        }
        Ok(PackageSource::File(PathBuf::from(s)))
    }
}

impl fmt::Display for PackageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageSource::Download(u) => u.fmt(f),
            PackageSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `[axorouter] repository`: a dnf baseurl (almalinux-10) or `URL SUITE COMPONENT` (debian-12);
/// which of the two the profile takes is checked with the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub url: Url,
    /// Debian's suite and component.
    pub apt: Option<(String, String)>,
}

impl FromStr for Repository {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Repository> {
        if s.chars().any(|c| c.is_control()) {
            bail!("{s:?}: one line, no control characters");
        }
        let fields: Vec<&str> = s.split_ascii_whitespace().collect();
        let shape = || {
            format!(
                "{s:?}: expected a dnf baseurl (almalinux-10) or \"URL SUITE COMPONENT\" \
                 (debian-12)"
            )
        };
        let apt = match fields[..] {
            [_] => None,
            [_, suite, component] => {
                for word in [suite, component] {
                    if !word
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
                    {
                        bail!("{}: {word:?} is no suite or component name", shape());
                    }
                }
                Some((suite.to_owned(), component.to_owned()))
            }
            _ => bail!("{}", shape()),
        };
        Ok(Repository {
            url: fields[0].parse()?,
            apt,
        })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.apt {
            None => self.url.fmt(f),
            Some((suite, component)) => write!(f, "{} {suite} {component}", self.url),
        }
    }
}

serde_by_str!(Url, KeySource, PackageSource, Repository);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::text::refused;

    #[test]
    fn urls_have_a_scheme_the_tools_speak_and_one_word() {
        for ok in [
            "http://deb.debian.org/debian",
            "https://repo.almalinux.org/almalinux/",
            "file:///srv/mirror",
            "file:/srv/mirror",
        ] {
            assert_eq!(ok.parse::<Url>().unwrap().to_string(), ok);
        }
        for (bad, why) in [
            (
                "ftp://x",
                "\"ftp://x\": expected an http://, https:// or file:/ URL",
            ),
            ("HTTP://x", "expected an http://"),
            ("deb.debian.org", "expected an http://"),
            ("https://", "names no host or path"),
            ("file:///", "names no host or path"),
            ("https://a b", "no whitespace or control characters"),
            (" https://a", "no whitespace"),
            ("https://a\n", "no whitespace"),
            ("https://a\u{7f}", "control characters"),
            ("https://a\u{0}b", "control characters"),
        ] {
            let err = refused::<Url>(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn keys_are_urls_or_files() {
        assert_eq!(
            "keys/archive.gpg".parse::<KeySource>().unwrap().file(),
            Some(Path::new("keys/archive.gpg"))
        );
        assert!("https://k.example/key"
            .parse::<KeySource>()
            .unwrap()
            .file()
            .is_none());
        assert!("file:/srv/key"
            .parse::<KeySource>()
            .unwrap()
            .file()
            .is_none());
        assert!(refused::<KeySource>("a b").contains("\"a b\""));
        assert!(refused::<KeySource>("ftp://k/key").contains("\"ftp://k/key\""));
    }

    #[test]
    fn packages_are_downloads_or_files() {
        assert_eq!(
            "https://console.example/dl/axorouter-1.rpm"
                .parse::<PackageSource>()
                .unwrap(),
            PackageSource::Download(
                "https://console.example/dl/axorouter-1.rpm"
                    .parse()
                    .unwrap()
            )
        );
        assert_eq!(
            "my packages/axorouter.deb"
                .parse::<PackageSource>()
                .unwrap(),
            PackageSource::File("my packages/axorouter.deb".into())
        );
        assert!(refused::<PackageSource>("file:///x.rpm").contains("http(s) URL"));
        assert!(refused::<PackageSource>("https://console.example/").contains("package file"));
        assert!(refused::<PackageSource>("a\nb.rpm").contains("control characters"));
    }

    #[test]
    fn repositories_are_one_url_or_an_apt_line() {
        let dnf: Repository = "https://pkg.example/el10".parse().unwrap();
        assert_eq!(dnf.apt, None);
        let apt: Repository = "https://pkg.example/debian  stable main".parse().unwrap();
        assert_eq!(apt.to_string(), "https://pkg.example/debian stable main");
        for (bad, why) in [
            ("https://pkg.example stable", "\"URL SUITE COMPONENT\""),
            ("", "\"URL SUITE COMPONENT\""),
            ("https://pkg.example stable main\nx", "one line"),
            ("ftp://pkg.example stable main", "http://"),
            ("https://pkg.example st'able main", "no suite or component"),
        ] {
            let err = refused::<Repository>(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
