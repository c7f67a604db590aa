//! Minisign (Ed25519) signatures of manifest.json: keys and signing with the `minisign`
//! crate (builder side), verification with `minisign-verify` (node side).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// File names `axoha-image keygen --out DIR` writes.
pub const SECRET_KEY_FILE: &str = "axoha-update.key";
pub const PUBLIC_KEY_FILE: &str = "axoha-update.pub";

/// Writes a new unencrypted key pair into `dir` (the secret key 0600; neither may exist).
pub fn generate_keypair(dir: &Path) -> Result<()> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow!("generating a minisign key pair: {e}"))?;
    let secret = pair
        .sk
        .to_box(Some("axoha update signing key"))
        .map_err(|e| anyhow!("encoding the secret key: {e}"))?
        .to_string();
    let public = pair
        .pk
        .to_box()
        .map_err(|e| anyhow!("encoding the public key: {e}"))?
        .to_string();
    create_new(&dir.join(SECRET_KEY_FILE), secret.as_bytes(), 0o600)?;
    create_new(&dir.join(PUBLIC_KEY_FILE), public.as_bytes(), 0o644)
}

fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The unencrypted secret key in `path`.
fn secret_key(path: &Path) -> Result<minisign::SecretKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sk_box = minisign::SecretKeyBox::from_string(&text)
        .map_err(|e| anyhow!("{} is not a minisign secret key: {e}", path.display()))?;
    sk_box.into_unencrypted_secret_key().map_err(|e| {
        anyhow!(
            "{}: not an unencrypted minisign secret key: {e}",
            path.display()
        )
    })
}

/// The public key (one-line base64 form, as in `[update] public_key`) of a secret key file.
pub fn public_key_of(secret_key_path: &Path) -> Result<String> {
    let sk = secret_key(secret_key_path)?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| {
        anyhow!(
            "deriving the public key of {}: {e}",
            secret_key_path.display()
        )
    })?;
    Ok(pk.to_base64())
}

/// Signs `data` with the secret key in `secret_key_path`; the text of a `.minisig` file.
pub fn sign(data: &[u8], secret_key_path: &Path, trusted_comment: &str) -> Result<String> {
    let sk = secret_key(secret_key_path)?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| {
        anyhow!(
            "deriving the public key of {}: {e}",
            secret_key_path.display()
        )
    })?;
    let signature = minisign::sign(Some(&pk), &sk, data, Some(trusted_comment), None)
        .map_err(|e| anyhow!("signing with {}: {e}", secret_key_path.display()))?;
    Ok(signature.to_string())
}

/// A public key from its one-line base64 form, or a whole `.pub` file (comment line first).
pub fn parse_public_key(text: &str) -> Result<minisign_verify::PublicKey> {
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    minisign_verify::PublicKey::from_base64(line)
        .map_err(|e| anyhow!("public key {line:?} is not a minisign public key: {e}"))
}

/// Checks `signature` (text of a `.minisig` file) over `data` with `public_key`.
pub fn verify(
    data: &[u8],
    signature: &[u8],
    public_key: &minisign_verify::PublicKey,
) -> Result<()> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| anyhow!("manifest.json.minisig is not UTF-8 text"))?;
    let signature = minisign_verify::Signature::decode(text)
        .map_err(|e| anyhow!("manifest.json.minisig is not a minisign signature: {e}"))?;
    match public_key.verify(data, &signature, false) {
        Ok(()) => Ok(()),
        Err(minisign_verify::Error::UnexpectedKeyId) => {
            bail!("manifest.json.minisig is signed by another key than this image's update key")
        }
        Err(e) => bail!(
            "manifest.json.minisig does not verify manifest.json with this image's update key: {e}"
        ),
    }
}
