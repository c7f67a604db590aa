//! Downloading the AxoRouter package when it is given as an URL (`--axorouter URL`, or
//! `[axorouter] package = "https://..."`), e.g. the download link of an AxoConsole.
//!
//! The body is hashed while it streams into a temporary file in the cache, and the file is
//! renamed to its final name only when the transfer is complete and, when a sha256 was given
//! (`--axorouter-sha256` / `[axorouter] sha256`), only when it matches: a truncated or
//! substituted download never reaches the build. With a sha256 an earlier download that
//! matches is reused without network access.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use axoha_disk::hash::{copy_hashing, sha256_file};

use crate::definition::{Sha256, Url};

/// A local package file must match its expected sha256 as a download must.
pub fn check_file(path: &Path, want: &Sha256) -> Result<()> {
    let got = sha256_file(path)?;
    if got != want.as_str() {
        bail!(
            "--axorouter {}: sha256 is {got}, expected {want}",
            path.display()
        );
    }
    Ok(())
}

/// The file name the package keeps in the cache: the URL's last path segment (the package
/// type is read from it), without query or fragment.
pub fn file_name(url: &str) -> Result<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("");
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b));
    if !ok {
        bail!("{url:?}: the URL does not end in a package file name");
    }
    Ok(name.to_owned())
}

/// Downloads `url` into `cache/downloads/` and returns the local file.
pub fn fetch(url: &Url, expected: Option<&Sha256>, cache: &Path) -> Result<PathBuf> {
    let url = url.as_str();
    let name = file_name(url)?;
    let expected = expected.map(Sha256::as_str);
    let dir = cache.join("downloads");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = match expected {
        Some(h) => dir.join(format!("{}-{name}", &h[..16])),
        None => dir.join(&name),
    };
    if let Some(h) = expected {
        if dest.is_file() && sha256_file(&dest)? == h {
            return Ok(dest);
        }
    }
    let tmp = dir.join(format!(".{name}.{}.part", std::process::id()));
    let result = download(url, &tmp, expected);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {}", dest.display()))?;
    Ok(dest)
}

fn download(url: &str, tmp: &Path, expected: Option<&str>) -> Result<()> {
    let response = ureq::get(url)
        .timeout(std::time::Duration::from_secs(600))
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, r) => {
                anyhow::anyhow!(
                    "--axorouter {url}: the server answered {code} {}",
                    r.status_text()
                )
            }
            other => anyhow::anyhow!("--axorouter {url}: {other}"),
        })?;
    let mut body = response.into_reader();
    let mut file =
        std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let got = copy_hashing(&mut body, &mut file)
        .with_context(|| format!("--axorouter {url}: downloading into {}", tmp.display()))?;
    file.sync_all()?;
    if let Some(want) = expected {
        if got != want {
            bail!("--axorouter {url}: the download's sha256 is {got}, expected {want}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_checked() {
        assert_eq!(
            file_name("https://h/d/axorouter-1.2.3.x86_64.rpm?token=x#f").unwrap(),
            "axorouter-1.2.3.x86_64.rpm"
        );
        assert!(file_name("https://h/").is_err());
        assert!(file_name("https://h/a/..").is_err());
        assert!(file_name("https://h/a%2Fb.rpm").is_err());
    }
}
