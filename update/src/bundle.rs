//! The update bundle: `NAME-PROFILE.axoha-bundle`, a strict POSIX tar of `manifest.json`,
//! `manifest.json.minisig`, then the [`PAYLOADS`] in that order (see `tar.rs`), then, in the
//! bundle of a signed image only, its slot's signed UKI [`UKI`] (the manifest's
//! `secure_boot` says so; docs/secure-boot.md).
//!
//! The builder calls [`write`], [`generate_keypair`] and [`public_key_of`]; the node calls
//! [`Bundle::open_verified`], which checks everything (signature, manifest, each payload's
//! size and sha256, streamed) before returning, and writes nothing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::digest::{copy_hashing, copy_verified, Sha256, ShortRead};
use crate::signature;
use crate::tar::{self, Next};
use crate::usrhash::UsrHash;

pub use crate::signature::{generate_keypair, public_key_of};

/// The manifest format this updater reads and writes.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.json.minisig";
pub const MANIFEST_MAX: u64 = 64 * 1024;
pub const SIGNATURE_MAX: u64 = 4096;
/// The payload entries, in the order they follow the signature.
pub const PAYLOADS: [&str; 4] = ["usr.img", "usr.verity", "vmlinuz", "initrd.img"];
/// A signed image's bundle: the slot's signed unified kernel image, after the [`PAYLOADS`].
pub const UKI: &str = "linux.efi";
/// The most a UKI may be (it is read into memory to be checked): kernel and initrd, ample.
pub const UKI_MAX: u64 = 512 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub profile: String,
    pub name: String,
    pub version: String,
    pub build_key: String,
    pub usrhash: String,
    pub kernel_cmdline: String,
    pub files: BTreeMap<String, FileEntry>,
    /// Present only in a signed image's bundle, whose `files` then hold [`UKI`]. Absent
    /// (not `null`) otherwise: such a bundle reads as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<SecureBoot>,
}

/// What a signed bundle's UKI was signed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBoot {
    /// sha256 of the db certificate (PEM file) the UKI is signed for: for messages only; the
    /// node checks the signature itself against the certificate its own /usr carries.
    pub db_certificate_sha256: String,
}

/// Everything of the manifest the builder knows before the payloads are hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBase {
    pub profile: String,
    pub name: String,
    pub version: String,
    pub build_key: String,
    pub usrhash: String,
    pub kernel_cmdline: String,
}

/// Where the builder's payload files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payloads {
    pub usr_img: PathBuf,
    pub usr_verity: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// A signed image's: its slot's signed UKI.
    pub uki: Option<SignedUki>,
}

/// The builder's signed UKI and the certificate it is signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUki {
    pub path: PathBuf,
    pub db_certificate_sha256: String,
}

impl Payloads {
    /// The file of payload `name` (one of [`PAYLOADS`]).
    pub fn path(&self, name: &str) -> Result<&Path> {
        Ok(match name {
            "usr.img" => &self.usr_img,
            "usr.verity" => &self.usr_verity,
            "vmlinuz" => &self.vmlinuz,
            "initrd.img" => &self.initrd,
            UKI => match &self.uki {
                Some(uki) => &uki.path,
                None => bail!("this build has no signed UKI"),
            },
            other => bail!("{other:?} is not a bundle payload"),
        })
    }
}

/// A manifest whose values have been checked, with typed hashes.
#[derive(Clone, Debug)]
pub struct Checked {
    pub manifest: Manifest,
    pub usrhash: UsrHash,
    /// Per entry of [`PAYLOADS`], in that order: digest and size.
    pub payloads: [(Sha256, u64); 4],
    /// The signed UKI's ([`UKI`]), when the manifest's `secure_boot` says there is one.
    pub uki: Option<(Sha256, u64)>,
}

/// A text value of the manifest goes into boot entries and messages: no control characters.
fn plain(value: &str, field: &str) -> Result<()> {
    if value.is_empty() || value.len() > 4096 || value.chars().any(char::is_control) {
        bail!("manifest {field} {value:?} is empty, too long or has control characters");
    }
    Ok(())
}

/// The checks of a parsed manifest; every error names the field and value.
pub fn check(manifest: &Manifest) -> Result<Checked> {
    if manifest.format != FORMAT {
        bail!(
            "manifest format {} is not supported (this updater reads format {FORMAT})",
            manifest.format
        );
    }
    plain(&manifest.profile, "profile")?;
    plain(&manifest.name, "name")?;
    plain(&manifest.version, "version")?;
    crate::version::Version::parse(&manifest.version).context("manifest field version")?;
    plain(&manifest.build_key, "build_key")?;
    if manifest.kernel_cmdline.chars().any(char::is_control) {
        bail!(
            "manifest kernel_cmdline {:?} has control characters",
            manifest.kernel_cmdline
        );
    }
    let usrhash = UsrHash::parse(&manifest.usrhash).context("manifest field usrhash")?;
    if let Some(extra) = manifest
        .files
        .keys()
        .find(|k| !PAYLOADS.contains(&k.as_str()) && k.as_str() != UKI)
    {
        bail!("manifest files has an unknown entry {extra:?}");
    }
    let uki = match (&manifest.secure_boot, manifest.files.get(UKI)) {
        (Some(sb), Some(entry)) => {
            Sha256::parse(
                &sb.db_certificate_sha256,
                "manifest secure_boot.db_certificate_sha256",
            )?;
            if entry.bytes > UKI_MAX {
                bail!(
                    "manifest files.{UKI}.bytes is {}; a UKI is at most {UKI_MAX}",
                    entry.bytes
                );
            }
            let what = format!("manifest files.{UKI}.sha256");
            Some((Sha256::parse(&entry.sha256, &what)?, entry.bytes))
        }
        (None, None) => None,
        (Some(_), None) => bail!("manifest has secure_boot but files lacks {UKI}"),
        (None, Some(_)) => bail!("manifest files has {UKI} but no secure_boot says what signs it"),
    };
    let mut payloads = [(Sha256([0; 32]), 0u64); 4];
    for (slot, name) in payloads.iter_mut().zip(PAYLOADS) {
        let entry = manifest
            .files
            .get(name)
            .with_context(|| format!("manifest files lacks {name}"))?;
        let what = format!("manifest files.{name}.sha256");
        *slot = (Sha256::parse(&entry.sha256, &what)?, entry.bytes);
    }
    Ok(Checked {
        manifest: manifest.clone(),
        usrhash,
        payloads,
        uki,
    })
}

/// Hashes the payload files, signs the manifest with the secret key, writes OUT via a temp +
/// rename.
pub fn write(
    out: &Path,
    manifest_base: ManifestBase,
    payloads: &Payloads,
    secret_key: &Path,
) -> Result<Manifest> {
    let mut files = BTreeMap::new();
    let names = PAYLOADS.iter().chain(payloads.uki.as_ref().map(|_| &UKI));
    for &name in names.clone() {
        let path = payloads.path(name)?;
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let bytes = file
            .metadata()
            .with_context(|| format!("inspecting {}", path.display()))?
            .len();
        let sha256 = copy_hashing(&mut file, None, bytes, &path.display().to_string())?;
        files.insert(
            name.to_owned(),
            FileEntry {
                sha256: sha256.to_string(),
                bytes,
            },
        );
    }
    let ManifestBase {
        profile,
        name,
        version,
        build_key,
        usrhash,
        kernel_cmdline,
    } = manifest_base;
    let manifest = Manifest {
        format: FORMAT,
        profile,
        name,
        version,
        build_key,
        usrhash,
        kernel_cmdline,
        files,
        secure_boot: payloads.uki.as_ref().map(|u| SecureBoot {
            db_certificate_sha256: u.db_certificate_sha256.clone(),
        }),
    };
    let checked = check(&manifest)?;
    let mut json = serde_json::to_vec_pretty(&manifest).context("serializing the manifest")?;
    json.push(b'\n');
    let comment = format!(
        "axoha {} {} {} usrhash={}",
        manifest.name, manifest.version, manifest.profile, manifest.usrhash
    );
    let minisig = signature::sign(&json, secret_key, &comment)?;

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = out
        .file_name()
        .with_context(|| format!("{} has no file name", out.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        for (name, data) in [(MANIFEST, json.as_slice()), (SIGNATURE, minisig.as_bytes())] {
            w.write_all(&tar::header(name, data.len() as u64)?)
                .and_then(|()| w.write_all(data))
                .with_context(|| format!("writing {}", tmp.display()))?;
            tar::write_padding(&mut w, data.len() as u64)?;
        }
        let sums = checked.payloads.iter().chain(&checked.uki);
        for (name, &(sha256, bytes)) in names.zip(sums) {
            let path = payloads.path(name)?;
            w.write_all(&tar::header(name, bytes)?)
                .with_context(|| format!("writing {}", tmp.display()))?;
            let mut src =
                File::open(path).with_context(|| format!("opening {}", path.display()))?;
            // The file changed since it was hashed: refuse rather than write a bad bundle.
            copy_verified(
                &mut src,
                Some(&mut w),
                bytes,
                &sha256,
                &path.display().to_string(),
            )?;
            tar::write_padding(&mut w, bytes)?;
        }
        tar::write_end(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    Ok(manifest)
}

/// Counts the bytes read, to know where each payload starts.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a small entry that must be `expected`, at most `cap` bytes.
fn small_entry(from: &mut dyn Read, expected: &str, index: usize, cap: u64) -> Result<Vec<u8>> {
    let header = entry_header(from, expected, index)?;
    if header.size > cap {
        bail!(
            "{expected} is {} bytes; at most {cap} are allowed",
            header.size
        );
    }
    let mut data = vec![0u8; header.size as usize];
    from.read_exact(&mut data)
        .with_context(|| format!("bundle is truncated: it ends inside {expected}"))?;
    tar::skip_padding(from, header.size, expected)?;
    Ok(data)
}

fn entry_header(from: &mut dyn Read, expected: &str, index: usize) -> Result<tar::Header> {
    match tar::read_header(from, expected)? {
        Next::End => bail!("bundle ends (end-of-archive block) where {expected} should be"),
        Next::Entry(h) if h.name != expected => {
            bail!(
                "entry {} is named {:?}, expected {expected}",
                index + 1,
                h.name
            )
        }
        Next::Entry(h) => Ok(h),
    }
}

/// Checks a whole bundle read from `from`: signature by `public_key` (one-line base64 or a
/// `.pub` file's text), manifest, every payload's size and sha256, nothing after. Calls
/// `at(index, offset)` with the stream offset at which payload `index` starts.
pub fn verify_stream(
    from: &mut dyn Read,
    public_key: &str,
    at: &mut dyn FnMut(usize, u64),
) -> Result<Checked> {
    let key = signature::parse_public_key(public_key)?;
    let mut from = Counting {
        inner: from,
        pos: 0,
    };
    let json = small_entry(&mut from, MANIFEST, 0, MANIFEST_MAX)?;
    let minisig = small_entry(&mut from, SIGNATURE, 1, SIGNATURE_MAX)?;
    signature::verify(&json, &minisig, &key)?;
    let manifest: Manifest =
        serde_json::from_slice(&json).context("manifest.json is not a valid format-1 manifest")?;
    let checked = check(&manifest)?;
    let names = PAYLOADS.iter().chain(checked.uki.as_ref().map(|_| &UKI));
    let sums = checked.payloads.iter().chain(&checked.uki);
    let mut last = "";
    for (i, (&name, &(sha256, bytes))) in names.zip(sums).enumerate() {
        last = name;
        let header = entry_header(&mut from, name, i + 2)?;
        if header.size != bytes {
            bail!(
                "entry {name} is {} bytes, the manifest says {bytes}",
                header.size
            );
        }
        at(i, from.pos);
        copy_verified(
            &mut from,
            None,
            bytes,
            &sha256,
            &format!("bundle entry {name}"),
        )
        .map_err(|e| {
            if e.downcast_ref::<ShortRead>().is_some() {
                e.context(format!("bundle is truncated: it ends inside {name}"))
            } else {
                e
            }
        })?;
        tar::skip_padding(&mut from, bytes, name)?;
    }
    match tar::read_header(&mut from, "the end-of-archive block")? {
        Next::End => tar::read_end(&mut from)?,
        Next::Entry(h) => bail!("unexpected entry {:?} after {last}", h.name),
    }
    Ok(checked)
}

/// The reader of bundles on the node.
pub struct Bundle;

/// A bundle whose signature, manifest and payloads were all checked.
#[derive(Debug)]
pub struct VerifiedBundle {
    path: PathBuf,
    file: File,
    checked: Checked,
    /// Where each payload starts: the [`PAYLOADS`], then the [`UKI`] (0 if none).
    offsets: [u64; 5],
}

impl Bundle {
    /// Opens and checks the bundle at `path` against `public_key`; writes nothing.
    pub fn open_verified(path: &Path, public_key: &str) -> Result<VerifiedBundle> {
        let file =
            File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("inspecting bundle {}", path.display()))?;
        if !meta.is_file() {
            bail!("bundle {} is not a regular file", path.display());
        }
        let mut offsets = [0u64; 5];
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let checked = verify_stream(&mut reader, public_key, &mut |i, at| offsets[i] = at)
            .with_context(|| format!("bundle {} refused", path.display()))?;
        Ok(VerifiedBundle {
            path: path.to_owned(),
            file,
            checked,
            offsets,
        })
    }
}

impl VerifiedBundle {
    pub fn manifest(&self) -> &Manifest {
        &self.checked.manifest
    }

    /// The checked manifest with its typed hashes.
    pub fn checked(&self) -> &Checked {
        &self.checked
    }

    pub fn usrhash(&self) -> UsrHash {
        self.checked.usrhash
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index (into the offsets), digest and size of payload `name`.
    fn entry(&self, name: &str) -> Result<(usize, Sha256, u64)> {
        if name == UKI {
            let (sha256, bytes) = self
                .checked
                .uki
                .with_context(|| format!("bundle {} has no {UKI}", self.path.display()))?;
            return Ok((PAYLOADS.len(), sha256, bytes));
        }
        let i = PAYLOADS
            .iter()
            .position(|p| *p == name)
            .with_context(|| format!("{name:?} is not a bundle payload"))?;
        let (sha256, bytes) = self.checked.payloads[i];
        Ok((i, sha256, bytes))
    }

    /// Size of payload `name`.
    pub fn bytes(&self, name: &str) -> Result<u64> {
        Ok(self.entry(name)?.2)
    }

    /// Payload `name` read into memory (re-hashed as it is read), for a payload that is checked
    /// before it is written (the UKI: what was checked is what gets written).
    pub fn read_payload(&self, name: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.bytes(name)?)?);
        self.copy_payload(name, &mut out)?;
        Ok(out)
    }

    /// Copies payload `name` to `to`, hashing again as it goes: an error if the bundle
    /// changed since it was checked (what was written then must not be used).
    pub fn copy_payload(&self, name: &str, to: &mut dyn Write) -> Result<()> {
        let (i, sha256, bytes) = self.entry(name)?;
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.offsets[i]))
            .with_context(|| format!("seeking to {name} in {}", self.path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        copy_verified(
            &mut reader,
            Some(to),
            bytes,
            &sha256,
            &format!("bundle entry {name}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(uki: bool, secure_boot: bool) -> Manifest {
        let entry = |bytes| FileEntry {
            sha256: "ab".repeat(32),
            bytes,
        };
        let mut files: BTreeMap<String, FileEntry> =
            PAYLOADS.iter().map(|p| (p.to_string(), entry(1))).collect();
        if uki {
            files.insert(UKI.to_owned(), entry(2));
        }
        Manifest {
            format: FORMAT,
            profile: "debian-12".into(),
            name: "edge".into(),
            version: "2".into(),
            build_key: "k".into(),
            usrhash: "cd".repeat(32),
            kernel_cmdline: String::new(),
            files,
            secure_boot: secure_boot.then(|| SecureBoot {
                db_certificate_sha256: "ef".repeat(32),
            }),
        }
    }

    #[test]
    fn a_uki_comes_with_secure_boot_or_not_at_all() {
        assert_eq!(check(&manifest(false, false)).unwrap().uki, None);
        assert_eq!(check(&manifest(true, true)).unwrap().uki.unwrap().1, 2);
        let e = check(&manifest(true, false)).unwrap_err().to_string();
        assert!(e.contains("no secure_boot"), "{e}");
        let e = check(&manifest(false, true)).unwrap_err().to_string();
        assert!(e.contains("lacks linux.efi"), "{e}");
        let mut big = manifest(true, true);
        big.files.get_mut(UKI).unwrap().bytes = UKI_MAX + 1;
        assert!(format!("{:#}", check(&big).unwrap_err()).contains("a UKI is at most"));
        let mut bad = manifest(true, true);
        bad.secure_boot.as_mut().unwrap().db_certificate_sha256 = "x".into();
        assert!(format!("{:#}", check(&bad).unwrap_err()).contains("db_certificate_sha256"));
        // An unsigned image's manifest says nothing of it, as before.
        let json = serde_json::to_string(&manifest(false, false)).unwrap();
        assert!(!json.contains("secure_boot"), "{json}");
    }
}
