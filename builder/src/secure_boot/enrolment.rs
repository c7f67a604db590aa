//! Key enrolment by systemd-boot (docs/secure-boot.md, "systemd-boot in Setup Mode").
//!
//! `keygen` makes the three authenticated variable files systemd-boot writes into the
//! firmware, `{PK,KEK,db}.auth`: UEFI 2.3.1 `EFI_VARIABLE_AUTHENTICATION_2` (a timestamp and a
//! PKCS#7 signature) followed by an `EFI_SIGNATURE_LIST` holding one X.509 certificate; PK's is
//! signed by PK itself (what firmware in Setup Mode accepts for PK), KEK's by PK, db's by KEK
//! (what firmware in User Mode accepts later). A build with `enrol` set checks them and puts
//! them on the ESP as `loader/keys/auto/`: systemd-boot (252 and later) finds them only while
//! the firmware is in Setup Mode; `secure-boot-enroll manual` offers a menu entry,
//! `force` enrols at once (after a 15 s countdown on hardware, none in a VM; `auto` is the
//! one directory it enrols from unasked), then resets the machine.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use axoha_disk::hash::sha256_bytes;
use axoha_disk::tool::{command, require, run};

/// `[secure_boot] enrol`: whether the image's ESP offers the key set to firmware in Setup Mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enrol {
    /// Nothing on the ESP: keys are enrolled in the firmware menu or with virt-fw-vars.
    #[default]
    Off,
    /// A boot menu entry "Enroll Secure Boot keys: auto" while in Setup Mode.
    Manual,
    /// Enrols by itself the first time it boots in Setup Mode.
    Force,
}

impl Enrol {
    pub fn name(self) -> &'static str {
        match self {
            Enrol::Off => "off",
            Enrol::Manual => "manual",
            Enrol::Force => "force",
        }
    }
}

/// Where systemd-boot looks for key sets on the ESP.
pub const ESP_DIR: &str = "loader/keys/auto";

/// The variables, in the order systemd-boot writes them (PK last: it ends Setup Mode).
pub const VARIABLES: [&str; 3] = ["db", "KEK", "PK"];

/// What signs each variable's update: PK itself, PK, KEK.
const SIGNED_BY: [(&str, &str); 3] = [("PK", "PK"), ("KEK", "PK"), ("db", "KEK")];

/// The attributes systemd-boot sets the variables with; the signature covers them, so the
/// files are signed for exactly these.
const ATTRIBUTES: &str =
    "NON_VOLATILE,BOOTSERVICE_ACCESS,RUNTIME_ACCESS,TIME_BASED_AUTHENTICATED_WRITE_ACCESS";

/// `keygen`'s part: `{PK,KEK,db}.esl` and `.auth` in `set` (which holds the keys), made with
/// sbsigntool's sbsiglist and sbvarsign.
pub fn make_files(set: &Path, owner_guid: &str) -> Result<()> {
    require(&["sbsiglist", "sbvarsign"])?;
    for (var, signer) in SIGNED_BY {
        let esl = set.join(format!("{var}.esl"));
        run(command("sbsiglist")
            .args(["--owner", owner_guid, "--type", "x509", "--output"])
            .arg(&esl)
            .arg(set.join(format!("{var}.cer"))))
        .with_context(|| format!("sbsiglist: {var}'s signature list"))?;
        run(command("sbvarsign")
            .arg("--key")
            .arg(set.join(format!("{signer}.key")))
            .arg("--cert")
            .arg(set.join(format!("{signer}.crt")))
            .args(["--attr", ATTRIBUTES, "--output"])
            .arg(set.join(format!("{var}.auth")))
            .arg(var)
            .arg(&esl))
        .with_context(|| format!("sbvarsign: {var}.auth, signed by {signer}"))?;
    }
    Ok(())
}

/// A checked key set for the ESP.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub mode: Enrol,
    /// `(file name, bytes)`, in [`VARIABLES`] order.
    #[serde(skip)]
    pub files: Vec<(String, Vec<u8>)>,
    /// Of the three files' hashes: another key set is another image.
    pub sha256: String,
}

impl Enrolment {
    /// The `.auth` files in `dir` (the certificate's directory: keygen's set), each parsed,
    /// db's holding `db_der` (the certificate the image is signed for): a db without it would
    /// make the firmware refuse every boot file of this image once enrolled.
    pub fn load(mode: Enrol, dir: &Path, db_der: &[u8]) -> Result<Enrolment> {
        let mut files = Vec::new();
        let mut hashes = String::new();
        for var in VARIABLES {
            let name = format!("{var}.auth");
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "[secure_boot] enrol = \"{}\" needs {} (made by `axoha-image keygen`; \
                     docs/secure-boot.md says how to make it for an older key set)",
                    mode.name(),
                    path.display()
                )
            })?;
            let certificates = certificates(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "[secure_boot] enrol: {} is not an authenticated variable update: {e}",
                    path.display()
                )
            })?;
            if var == "db" && !certificates.iter().any(|c| c == db_der) {
                bail!(
                    "[secure_boot] enrol: {} does not hold [secure_boot] certificate: firmware \
                     that enrolled it would refuse every boot file of this image",
                    path.display()
                );
            }
            hashes.push_str(&sha256_bytes(&bytes));
            files.push((name, bytes));
        }
        Ok(Enrolment {
            mode,
            files,
            sha256: sha256_bytes(hashes.as_bytes()),
        })
    }

    /// loader.conf's line for it.
    pub fn loader_conf_line(&self) -> String {
        format!("secure-boot-enroll {}\n", self.mode.name())
    }
}

/// `EFI_CERT_TYPE_PKCS7_GUID` {4aafd29d-68df-49ee-8aa9-347d375665a7}, as stored.
const PKCS7_GUID: [u8; 16] = [
    0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7,
];
/// `EFI_CERT_X509_GUID` {a5c059a1-94e4-4aa7-87b5-ab155c2bf072}, as stored.
const X509_GUID: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// The X.509 certificates (DER) of an authenticated variable update: the header checked
/// (`EFI_TIME`, a `WIN_CERTIFICATE_UEFI_GUID` of type PKCS#7 whose length stays inside the
/// file), then every signature list, each whole and of X.509 entries. Pure: any bytes in.
pub fn certificates(auth: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const TIME: usize = 16;
    let length = u32_at(auth, TIME).ok_or("shorter than its header")?;
    let revision = auth
        .get(TIME + 4..TIME + 6)
        .ok_or("shorter than its header")?;
    let kind = auth
        .get(TIME + 6..TIME + 8)
        .ok_or("shorter than its header")?;
    if revision != [0x00, 0x02] || kind != [0xf1, 0x0e] {
        return Err("no WIN_CERTIFICATE_UEFI_GUID (revision 2.0) after the timestamp".into());
    }
    if auth.get(TIME + 8..TIME + 24) != Some(&PKCS7_GUID[..]) {
        return Err("its signature is not PKCS#7".into());
    }
    let lists = TIME
        .checked_add(length)
        .filter(|&end| length >= 24 && end <= auth.len())
        .ok_or("the signature's length runs past the file")?;
    let mut out = Vec::new();
    let mut at = lists;
    while at < auth.len() {
        let bad = |what: &str| format!("signature list at byte {at}: {what}");
        if auth.get(at..at + 16) != Some(&X509_GUID[..]) {
            return Err(bad("not of X.509 certificates"));
        }
        let (size, header, each) = match (
            u32_at(auth, at + 16),
            u32_at(auth, at + 20),
            u32_at(auth, at + 24),
        ) {
            (Some(s), Some(h), Some(e)) => (s, h, e),
            _ => return Err(bad("cut short")),
        };
        let end = at.checked_add(size).filter(|&e| e <= auth.len());
        let first = at.checked_add(28).and_then(|p| p.checked_add(header));
        let (Some(end), Some(first)) = (end, first) else {
            return Err(bad("its size runs past the file"));
        };
        if each <= 16 || first > end || (end - first) % each != 0 || end == first {
            return Err(bad("its sizes do not add up"));
        }
        for entry in auth[first..end].chunks(each) {
            // Each entry: the owner's GUID, then the certificate.
            out.push(entry[16..].to_vec());
        }
        at = end;
    }
    if out.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed update: timestamp, a PKCS#7 WIN_CERTIFICATE of `sig` bytes, then one
    /// list of `certs`.
    fn update(sig: usize, certs: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.extend(((24 + sig) as u32).to_le_bytes());
        b.extend([0x00, 0x02, 0xf1, 0x0e]);
        b.extend(PKCS7_GUID);
        b.extend(vec![0x30; sig]);
        let each = 16 + certs[0].len();
        b.extend(X509_GUID);
        b.extend(((28 + each * certs.len()) as u32).to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend((each as u32).to_le_bytes());
        for c in certs {
            b.extend([0x61; 16]);
            b.extend(*c);
        }
        b
    }

    #[test]
    fn a_well_formed_update_gives_its_certificates() {
        let b = update(40, &[b"cert-one", b"cert-two"]);
        assert_eq!(
            certificates(&b).unwrap(),
            vec![b"cert-one".to_vec(), b"cert-two".to_vec()]
        );
    }

    #[test]
    fn every_cut_and_every_changed_header_byte_is_refused_never_a_panic() {
        let good = update(40, &[b"certificate"]);
        for n in 0..good.len() {
            assert!(certificates(&good[..n]).is_err(), "cut at {n}");
        }
        // Each byte of the headers (timestamp excluded: any time is a time), changed.
        let lists = 16 + 24 + 40;
        for at in (16..16 + 24).chain(lists..lists + 28) {
            let mut b = good.clone();
            b[at] ^= 0x80;
            assert!(certificates(&b).is_err(), "byte {at} changed");
        }
        // Trailing bytes that are no list.
        let mut b = good.clone();
        b.extend([0u8; 7]);
        assert!(certificates(&b).is_err());
        // Lengths at their extremes.
        for (at, v) in [(16, u32::MAX), (lists + 16, u32::MAX), (lists + 24, 0)] {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(certificates(&b).is_err(), "{at} = {v}");
        }
    }

    #[test]
    fn keygen_files_parse_and_db_must_hold_the_signing_certificate() {
        if axoha_disk::tool::which("sbvarsign").is_none()
            || axoha_disk::tool::which("openssl").is_none()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let set = super::super::generate(dir.path(), "axoha").unwrap();
        let der = |k: &str| std::fs::read(set.join(format!("{k}.cer"))).unwrap();
        for var in VARIABLES {
            let bytes = std::fs::read(set.join(format!("{var}.auth"))).unwrap();
            assert_eq!(certificates(&bytes).unwrap(), vec![der(var)], "{var}");
        }
        let e = Enrolment::load(Enrol::Force, &set, &der("db")).unwrap();
        assert_eq!(
            e.files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            ["db.auth", "KEK.auth", "PK.auth"]
        );
        assert_eq!(e.loader_conf_line(), "secure-boot-enroll force\n");
        let wrong = Enrolment::load(Enrol::Manual, &set, &der("KEK")).unwrap_err();
        assert!(format!("{wrong:#}").contains("does not hold"), "{wrong:#}");
        std::fs::remove_file(set.join("KEK.auth")).unwrap();
        let missing = Enrolment::load(Enrol::Manual, &set, &der("db")).unwrap_err();
        assert!(format!("{missing:#}").contains("KEK.auth"), "{missing:#}");
    }
}
