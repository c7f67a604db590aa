//! Downloading a bundle from an http(s) URL into /var/lib/axoha/update/, size-capped.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axoha_root::RootDir;

use crate::paths;

/// The file name a URL's bundle is stored under: its last path segment when that is a plain
/// `*.axoha-bundle` name, else `download.axoha-bundle`.
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let plain = !last.is_empty()
        && last.len() <= 128
        && last
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !last.starts_with('.');
    if plain && last.ends_with(".axoha-bundle") {
        last.to_owned()
    } else {
        "download.axoha-bundle".to_owned()
    }
}

/// Downloads `url` (at most `cap` bytes) into the node's download directory; the path.
pub fn fetch(url: &str, root: &RootDir, cap: u64) -> Result<PathBuf> {
    let name = file_name(url);
    // No overall deadline (a bundle is large); a stalled connection times out.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent
        .get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    if let Some(len) = response.header("Content-Length") {
        let len: u64 = len
            .trim()
            .parse()
            .with_context(|| format!("{url}: Content-Length {len:?} is not a number"))?;
        if len > cap {
            bail!("{url} is {len} bytes; a bundle for this disk is at most {cap}");
        }
    }
    let dir = root.create_dir_all(paths::DOWNLOADS, &mut Vec::new())?;
    let mut reader = response.into_reader().take(cap + 1);
    let tmp = dir.write_temp_from(OsStr::new(&name), 0o600, &mut |f: &mut File| {
        let n = std::io::copy(&mut reader, f).with_context(|| format!("downloading {url}"))?;
        if n > cap {
            bail!("{url} is larger than {cap} bytes, the most a bundle for this disk can be");
        }
        f.flush().context("flushing")
    })?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = dir.rename(tmp, OsStr::new(&name)) {
        let _ = dir.unlink(tmp);
        return Err(e).with_context(|| format!("storing the download of {url}"));
    }
    dir.sync()?;
    println!("downloaded {url}");
    Ok(dir.path().join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            file_name("https://x/y/edge-debian-12.axoha-bundle?a=b"),
            "edge-debian-12.axoha-bundle"
        );
        assert_eq!(file_name("https://x/y/../..%2f"), "download.axoha-bundle");
        assert_eq!(file_name("https://x/"), "download.axoha-bundle");
        assert_eq!(
            file_name("https://x/.axoha-bundle"),
            "download.axoha-bundle"
        );
    }
}
