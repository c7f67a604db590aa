//! Secure Boot (docs/secure-boot.md): the key set `keygen` makes, the definition's
//! `[secure_boot]` checked against it before any work, and the signing of systemd-boot and the
//! UKIs with `sbsign`. The signing key is read by sbsign only: it is never copied into the
//! image, the build cache or the manifest (which records the db certificate's hash).
//! `enrolment` holds the key set's files that systemd-boot enrols from the ESP.

pub mod enrolment;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use axoha_disk::hash::sha256_bytes;
use axoha_disk::tool::{command, require, run};

pub use enrolment::{Enrol, Enrolment};

/// `[secure_boot]` of the definition: the db certificate every boot file is signed for and
/// the key that signs them (paths on the build host, like `axorouter.package`). Unset: the
/// image boots unsigned, as before.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBootSection {
    /// The db certificate (PEM, `keygen`'s `secure-boot/db.crt`).
    #[serde(default)]
    pub certificate: String,
    /// Its private key (PEM, `secure-boot/db.key`): read by sbsign at build time, never
    /// baked into the image.
    #[serde(default)]
    pub key: String,
    /// Offer the key set to firmware in Setup Mode from the ESP (`off`, `manual`, `force`):
    /// the `.auth` files next to `certificate` (keygen's set) go to `loader/keys/auto/`.
    #[serde(default)]
    pub enrol: Enrol,
}

impl SecureBootSection {
    /// Both or neither: a certificate without its key (or the reverse) signs nothing.
    pub fn check(&self) -> Result<()> {
        if self.enrol != Enrol::Off && self.certificate.is_empty() {
            bail!(
                "[secure_boot] enrol = {:?} without certificate: an unsigned image has no keys \
                 to enrol",
                self.enrol.name()
            );
        }
        match (self.certificate.is_empty(), self.key.is_empty()) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => bail!(
                "[secure_boot] certificate = {:?} without key: name the db key that signs \
                 (keygen's secure-boot/db.key)",
                self.certificate
            ),
            (true, false) => bail!(
                "[secure_boot] key = {:?} without certificate: name the db certificate \
                 (keygen's secure-boot/db.crt)",
                self.key
            ),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.certificate.is_empty()
    }
}

/// What a signed build signs with: the files, checked to be a pair, and the certificate's
/// hash (in the build key and the manifest).
#[derive(Debug, Clone, Serialize)]
pub struct Signer {
    pub certificate: PathBuf,
    #[serde(skip)]
    pub key: PathBuf,
    pub certificate_sha256: String,
    pub subject: String,
    /// `enrol` not `off`: the checked `.auth` files.
    pub enrolment: Option<Enrolment>,
}

impl Signer {
    /// The definition's pair, checked: both readable, the key the certificate's, sbsign there.
    pub fn load(section: &SecureBootSection) -> Result<Option<Signer>> {
        if !section.enabled() {
            return Ok(None);
        }
        require(&["sbsign", "openssl"])?;
        let certificate = PathBuf::from(&section.certificate);
        let key = PathBuf::from(&section.key);
        let pem = std::fs::read(&certificate)
            .with_context(|| format!("[secure_boot] certificate = {:?}", section.certificate))?;
        let of_cert = run(command("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&certificate))
        .with_context(|| {
            format!(
                "[secure_boot] certificate = {:?}: not a PEM certificate",
                section.certificate
            )
        })?;
        let of_key = run(command("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key))
        .with_context(|| {
            format!(
                "[secure_boot] key = {:?}: not a readable PEM private key",
                section.key
            )
        })?;
        if of_cert.stdout != of_key.stdout {
            bail!(
                "[secure_boot] key = {:?} is not the key of certificate = {:?}: what it signs \
                 would be refused by firmware that trusts the certificate",
                section.key,
                section.certificate
            );
        }
        let subject = run(command("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(&certificate))?;
        let enrolment = match section.enrol {
            Enrol::Off => None,
            mode => {
                let der = run(command("openssl")
                    .args(["x509", "-outform", "DER", "-in"])
                    .arg(&certificate))?;
                let dir = certificate.parent().unwrap_or(Path::new("."));
                Some(Enrolment::load(mode, dir, &der.stdout)?)
            }
        };
        Ok(Some(Signer {
            enrolment,
            certificate,
            key,
            certificate_sha256: sha256_bytes(&pem),
            subject: String::from_utf8_lossy(&subject.stdout)
                .trim()
                .trim_start_matches("subject=")
                .to_owned(),
        }))
    }

    /// Signs the PE file `file` in place (Authenticode, sbsign).
    pub fn sign(&self, file: &Path) -> Result<()> {
        let signed = file.with_extension("signed");
        run(command("sbsign")
            .arg("--key")
            .arg(&self.key)
            .arg("--cert")
            .arg(&self.certificate)
            .arg("--output")
            .arg(&signed)
            .arg(file))
        .with_context(|| format!("sbsign {}", file.display()))?;
        std::fs::rename(&signed, file)
            .with_context(|| format!("replacing {} by its signed copy", file.display()))
    }
}

/// The key set's owner GUID (EFI signature lists name one; the value is ours, fixed).
pub const OWNER_GUID: &str = "6a786f61-6861-4a78-8f61-786f61686178";

/// The three keys of a Secure Boot key set, from the top: the platform key signs KEK updates,
/// the key exchange key db updates, and db holds the certificate boot files are signed for.
pub const KEYS: [(&str, &str); 3] = [
    ("PK", "axoha platform key"),
    ("KEK", "axoha key exchange key"),
    ("db", "axoha image signing key"),
];

/// `keygen`'s Secure Boot half: `DIR/secure-boot/{PK,KEK,db}.{key,crt,cer}` (PEM key and
/// certificate; DER `.cer` for firmware menus that enrol from a file), `.esl` and `.auth`
/// (signature lists, and their signed updates that systemd-boot enrols: `enrolment`) and
/// `guid` (the owner GUID virt-fw-vars and efi-updatevar take). An existing set is never
/// overwritten.
pub fn generate(dir: &Path, name: &str) -> Result<PathBuf> {
    require(&["openssl"])?;
    let out = dir.join("secure-boot");
    if out.exists() {
        bail!(
            "{} exists: a Secure Boot key set is never overwritten (machines enrolled it)",
            out.display()
        );
    }
    let tmp = dir.join(".secure-boot.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (key, what) in KEYS {
        let k = tmp.join(format!("{key}.key"));
        let c = tmp.join(format!("{key}.crt"));
        run(command("openssl")
            .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes"])
            .args(["-sha256", "-days", "7300", "-subj"])
            .arg(format!("/CN={name} {what}/"))
            .arg("-keyout")
            .arg(&k)
            .arg("-out")
            .arg(&c))
        .with_context(|| format!("openssl: making the {key} key"))?;
        run(command("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&c)
            .arg("-out")
            .arg(tmp.join(format!("{key}.cer"))))?;
    }
    enrolment::make_files(&tmp, OWNER_GUID)?;
    std::fs::write(tmp.join("guid"), format!("{OWNER_GUID}\n"))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_and_its_key_come_together() {
        let s = |c: &str, k: &str| SecureBootSection {
            certificate: c.into(),
            key: k.into(),
            enrol: Enrol::Off,
        };
        assert!(s("", "").check().is_ok());
        assert!(!s("", "").enabled());
        assert!(s("db.crt", "db.key").check().is_ok());
        let e = s("db.crt", "").check().unwrap_err().to_string();
        assert!(e.contains("without key"), "{e}");
        let e = s("", "db.key").check().unwrap_err().to_string();
        assert!(e.contains("without certificate"), "{e}");
        let e = SecureBootSection {
            enrol: Enrol::Force,
            ..SecureBootSection::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("enrol = \"force\" without certificate"), "{e}");
    }

    #[test]
    fn a_key_set_signs_and_a_mismatched_pair_is_refused() {
        if axoha_disk::tool::which("openssl").is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let set = generate(dir.path(), "axoha").unwrap();
        for f in ["PK", "KEK", "db"] {
            for ext in ["key", "crt", "cer", "esl", "auth"] {
                assert!(set.join(format!("{f}.{ext}")).is_file(), "{f}.{ext}");
            }
        }
        assert!(generate(dir.path(), "axoha").is_err(), "never overwritten");
        let path = |f: &str| set.join(f).display().to_string();
        let ok = Signer::load(&SecureBootSection {
            certificate: path("db.crt"),
            key: path("db.key"),
            enrol: Enrol::Off,
        })
        .unwrap()
        .unwrap();
        assert!(
            ok.subject.contains("axoha image signing key"),
            "{}",
            ok.subject
        );
        let e = Signer::load(&SecureBootSection {
            certificate: path("db.crt"),
            key: path("KEK.key"),
            enrol: Enrol::Off,
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("is not the key of"), "{e:#}");
    }
}
