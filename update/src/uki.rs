//! The signed UKI of a bundle, checked on a Secure Boot node before any byte is written
//! (docs/secure-boot.md, "Updates"): an entry must never point at a UKI the firmware would
//! refuse ("Access Denied", then "No bootable option": boot counting never runs).
//!
//! Pure: bytes in, a verdict out. [`check`] proves, in this order:
//! 1. the file is a well-formed x86-64 PE32+ image with one `.linux` and one `.cmdline`;
//! 2. it carries exactly one Authenticode signature (a PKCS#7 `SignedData` in its certificate
//!    table, at the end of the file) whose SHA-256 image digest is the file's (`authenticode`
//!    computes it, as the firmware does: everything but the checksum, the certificate table
//!    and its directory entry);
//! 3. that signature was made by the node's db certificate: its signer is the certificate
//!    (issuer and serial number), its signed attributes hold the content type and the digest
//!    of the signed content, and their RSA PKCS#1 v1.5 SHA-256 signature verifies with the
//!    certificate's key (`rsa`);
//! 4. its `.cmdline` (what systemd-stub boots under Secure Boot, up to its first NUL) is
//!    exactly the image's options for this bundle and this node: the bundle's `usrhash=`, the
//!    node's state partition, `rw`, the bundle's `kernel_cmdline`; nothing else.
//!
//! Stricter than the firmware in one way: only a signature by the db certificate itself is
//! taken (sbsign's, the builder's), not one by a certificate it issued. What is refused here
//! is merely not installed; what is taken here, the firmware boots.

use anyhow::{bail, Context, Result};
use authenticode::{AttributeCertificateIterator, AuthenticodeSignature};
use axoha_boot_contract::cmdline::key_str;
use axoha_boot_contract::owner::{self, Place};
use cms::cert::IssuerAndSerialNumber;
use cms::signed_data::SignerIdentifier;
use const_oid::db::rfc5912::{ID_SHA_256, RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION};
use const_oid::db::rfc6268::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST};
use der::{DecodePem, Encode};
use object::pe::IMAGE_FILE_MACHINE_AMD64;
use object::read::pe::PeFile64;
use object::{Object, ObjectSection};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::usrhash::UsrHash;

/// The db certificate the running /usr carries (`paths::DB_CERTIFICATE`), parsed.
pub struct DbCertificate {
    cert: Certificate,
    key: RsaPublicKey,
}

impl DbCertificate {
    /// From its PEM text; `shown` names the file in messages.
    pub fn from_pem(pem: &[u8], shown: &str) -> Result<DbCertificate> {
        let cert = Certificate::from_pem(pem)
            .map_err(|e| anyhow::anyhow!("{shown} is not a PEM X.509 certificate: {e}"))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            bail!(
                "{shown}: the db certificate's key is {}, not RSA (what sbsign and the firmware use)",
                spki.algorithm.oid
            );
        }
        let der = spki
            .to_der()
            .map_err(|e| anyhow::anyhow!("{shown}: its public key: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| anyhow::anyhow!("{shown}: its RSA public key: {e}"))?;
        Ok(DbCertificate { cert, key })
    }

    /// Its subject, for messages.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }
}

/// A UKI that passed [`check`]: only such bytes are written to the ESP.
pub struct VerifiedUki(Vec<u8>);

impl VerifiedUki {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// All of the module's checks (see above); every refusal names what failed. `cmdline` is
/// the exact `.cmdline` this node needs (`entry::image_options` of the bundle's usrhash,
/// the node's state partition and the bundle's `kernel_cmdline`).
pub fn check(
    uki: Vec<u8>,
    db: &DbCertificate,
    usrhash: UsrHash,
    state_partuuid: &str,
    cmdline: &str,
) -> Result<VerifiedUki> {
    let pe = PeFile64::parse(uki.as_slice())
        .map_err(|e| anyhow::anyhow!("the UKI is not a well-formed PE32+ image: {e}"))?;
    let machine = pe
        .nt_headers()
        .file_header
        .machine
        .get(object::LittleEndian);
    if machine != IMAGE_FILE_MACHINE_AMD64 {
        bail!("the UKI is a PE image for machine {machine:#06x}, not x86-64");
    }
    let text = sections(&pe)?;
    signature(&pe, uki.len(), db).context("the UKI's Authenticode signature")?;
    check_cmdline(&text, usrhash, state_partuuid, cmdline)?;
    Ok(VerifiedUki(uki))
}

/// The `.cmdline` text, once the sections a UKI needs are there, once each, inside the file.
fn sections(pe: &PeFile64) -> Result<String> {
    let mut cmdline = None;
    let mut linux = 0;
    for section in pe.sections() {
        let name = section
            .name()
            .map_err(|e| anyhow::anyhow!("the UKI's section table: {e}"))?;
        let data = section.data().map_err(|e| {
            anyhow::anyhow!(
                "the UKI's section {name} is not inside the file ({e}): a truncated or \
                     malformed PE image"
            )
        })?;
        match name {
            ".linux" => linux += 1,
            ".cmdline" if cmdline.is_some() => bail!("the UKI has two .cmdline sections"),
            ".cmdline" => cmdline = Some(data),
            _ => {}
        }
    }
    if linux != 1 {
        bail!("the UKI has {linux} .linux sections (a UKI has one: the kernel)");
    }
    let data = cmdline.context("the UKI has no .cmdline section: it would boot with none")?;
    // systemd-stub reads the section up to its first NUL; anything after it must be padding.
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    if data[end..].iter().any(|&b| b != 0) {
        bail!("the UKI's .cmdline has bytes after its terminating NUL");
    }
    let text = &data[..end];
    if !text.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
        bail!(
            "the UKI's .cmdline {:?} has bytes other than printable ASCII and spaces",
            String::from_utf8_lossy(text)
        );
    }
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// Step 2 and 3: the one signature, its image digest, its signer and its RSA signature.
fn signature(pe: &PeFile64, len: usize, db: &DbCertificate) -> Result<()> {
    use authenticode::PeTrait;
    let table = pe
        .certificate_table_range()
        .map_err(|e| anyhow::anyhow!("its certificate table is out of bounds: {e}"))?
        .context("the UKI is not signed (no certificate table): the firmware would refuse it")?;
    if table.end != len {
        bail!(
            "the certificate table ends at byte {}, not at the end of the file ({len} bytes)",
            table.end
        );
    }
    let certs: Vec<_> = AttributeCertificateIterator::new(pe)
        .map_err(|e| anyhow::anyhow!("its certificate table: {e}"))?
        .context("the UKI is not signed")?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("its certificate table: {e}"))?;
    let [cert] = certs.as_slice() else {
        bail!(
            "the UKI carries {} signatures; one (sbsign's) is expected",
            certs.len()
        );
    };
    let sig = cert
        .get_authenticode_signature()
        .map_err(|e| anyhow::anyhow!("not an Authenticode signature: {e}"))?;
    if sig.digest_algorithm().oid != ID_SHA_256 {
        bail!(
            "its image digest is {}, not SHA-256",
            sig.digest_algorithm().oid
        );
    }
    let mut digest = Sha256::new();
    authenticode::authenticode_digest(pe, &mut digest)
        .map_err(|e| anyhow::anyhow!("the UKI's sections are out of bounds: {e}"))?;
    let digest = digest.finalize();
    if digest.as_slice() != sig.digest() {
        bail!(
            "the UKI's bytes are not what was signed (image digest {}, signed {}): it was \
             changed after signing",
            crate::digest::hex(&digest),
            crate::digest::hex(sig.digest())
        );
    }
    signed_by(&sig, db)
}

/// Step 3: the signer is `db` and its signature over the signed attributes verifies.
fn signed_by(sig: &AuthenticodeSignature, db: &DbCertificate) -> Result<()> {
    let info = sig.signer_info();
    let tbs = &db.cert.tbs_certificate;
    let ours = IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    };
    match &info.sid {
        SignerIdentifier::IssuerAndSerialNumber(sid) if *sid == ours => {}
        SignerIdentifier::IssuerAndSerialNumber(sid) => bail!(
            "it was made by the certificate of issuer {:?} serial {}, not by this node's db \
             certificate {:?}: the firmware that trusts it would refuse this UKI",
            sid.issuer.to_string(),
            sid.serial_number,
            db.subject()
        ),
        SignerIdentifier::SubjectKeyIdentifier(_) => bail!(
            "its signer is named by a key identifier, not by this node's db certificate {:?}",
            db.subject()
        ),
    }
    if info.digest_alg.oid != ID_SHA_256 {
        bail!(
            "its digest algorithm is {}, not SHA-256",
            info.digest_alg.oid
        );
    }
    let alg = info.signature_algorithm.oid;
    if alg != RSA_ENCRYPTION && alg != SHA_256_WITH_RSA_ENCRYPTION {
        bail!("its signature algorithm is {alg}, not RSA with SHA-256");
    }
    let attrs = info
        .signed_attrs
        .as_ref()
        .context("it has no signed attributes (sbsign always signs them)")?;
    let single = |oid| -> Result<der::Any> {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.get(0).expect("one").clone()),
            _ => bail!("its signed attribute {oid} is missing or not single"),
        }
    };
    let content_type = single(ID_CONTENT_TYPE)?
        .decode_as::<der::asn1::ObjectIdentifier>()
        .map_err(|e| anyhow::anyhow!("its contentType attribute: {e}"))?;
    if content_type != authenticode::SPC_INDIRECT_DATA_OBJID {
        bail!("its contentType attribute is {content_type}, not Authenticode's");
    }
    let digest = single(ID_MESSAGE_DIGEST)?
        .decode_as::<der::asn1::OctetString>()
        .map_err(|e| anyhow::anyhow!("its messageDigest attribute: {e}"))?;
    let content = sig
        .encapsulated_content()
        .context("it has no signed content")?;
    if Sha256::digest(content).as_slice() != digest.as_bytes() {
        bail!("its messageDigest attribute is not the digest of the signed content");
    }
    // What is signed is the DER of the attributes as a SET OF (RFC 5652 5.4).
    let signed = attrs
        .to_der()
        .map_err(|e| anyhow::anyhow!("encoding its signed attributes: {e}"))?;
    db.key
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&signed),
            info.signature.as_bytes(),
        )
        .map_err(|_| {
            anyhow::anyhow!(
                "its RSA signature does not verify with the key of this node's db certificate {:?}",
                db.subject()
            )
        })
}

/// Step 4: `.cmdline` is exactly `expected`; the first difference that matters is named.
fn check_cmdline(text: &str, usrhash: UsrHash, state: &str, expected: &str) -> Result<()> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let value = |key: &str| -> Vec<&str> {
        words
            .iter()
            .filter(|w| key_str(w) == key)
            .map(|w| w.split_once('=').map_or("", |(_, v)| v))
            .collect()
    };
    let hashes = value("usrhash");
    if hashes != [usrhash.to_string().as_str()] {
        bail!(
            "the UKI's .cmdline has usrhash= {hashes:?}; the bundle's /usr is usrhash={usrhash}: \
             the UKI would boot another /usr"
        );
    }
    let roots = value("root");
    let ours = format!("PARTUUID={state}");
    if roots != [ours.as_str()] {
        bail!(
            "the UKI's .cmdline has root= {roots:?}; this node's state partition is \
             root={ours} (a UKI names its state partition, which only the same appliance's \
             images share)"
        );
    }
    let wanted: Vec<&str> = expected.split_ascii_whitespace().collect();
    for w in &words {
        if !wanted.contains(w) {
            if let Err(e) = owner::check(Place::Bundle, w) {
                bail!("the UKI's .cmdline has an argument the boot contract forbids: {e}");
            }
        }
    }
    if words != wanted {
        bail!(
            "the UKI's .cmdline {text:?} is not this bundle's command line for this node \
             {expected:?}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_exactly_the_bundles() {
        let h = UsrHash::parse(&"ab".repeat(32)).unwrap();
        let want = format!("usrhash={h} root=PARTUUID=s rw console=ttyS0");
        assert!(check_cmdline(&want, h, "s", &want).is_ok());
        let other = "cd".repeat(32);
        for (text, says) in [
            (
                format!("usrhash={other} root=PARTUUID=s rw console=ttyS0"),
                "usrhash=",
            ),
            (format!("{want} usrhash={h}"), "usrhash="),
            (
                format!("usrhash={h} root=PARTUUID=t rw console=ttyS0"),
                "state partition",
            ),
            (format!("{want} init=/bin/sh"), "forbids"),
            (format!("{want} systemd.unit=rescue.target"), "forbids"),
            (format!("{want} axoha.role=primary"), "forbids"),
            (format!("{want} quiet"), "not this bundle's"),
            (
                format!("usrhash={h} root=PARTUUID=s rw"),
                "not this bundle's",
            ),
        ] {
            let e = check_cmdline(&text, h, "s", &want).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
