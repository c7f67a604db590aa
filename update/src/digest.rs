//! `Sha256`: a SHA-256 digest in its one spelling (64 lowercase hex digits), and copying a
//! stream while hashing it.

use std::fmt;
use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use sha2::Digest;

/// A SHA-256 digest. Parsing is the only way to build one from text: exactly 64 lowercase
/// hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Parses 64 lowercase hex digits; `what` names the value in the error.
    pub fn parse(text: &str, what: &str) -> Result<Sha256> {
        Ok(Sha256(hex32(text, what)?))
    }
}

/// 32 bytes from exactly 64 lowercase hexadecimal digits.
pub(crate) fn hex32(text: &str, what: &str) -> Result<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        bail!("{what} {text:?} is not 64 lowercase hexadecimal digits");
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    Ok(out)
}

fn nibble(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// A stream that ended before the announced size.
#[derive(Debug)]
pub struct ShortRead {
    pub what: String,
    pub got: u64,
    pub want: u64,
}

impl fmt::Display for ShortRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ends after {} of {} bytes",
            self.what, self.got, self.want
        )
    }
}

impl std::error::Error for ShortRead {}

/// Copies exactly `bytes` bytes from `from` to `to` (`None`: hash only), hashing them;
/// returns the digest. A shorter stream is an error naming `what`.
pub fn copy_hashing(
    from: &mut dyn Read,
    mut to: Option<&mut dyn Write>,
    bytes: u64,
    what: &str,
) -> Result<Sha256> {
    let mut hasher = sha2::Sha256::new();
    let mut left = bytes;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from
            .read(&mut buf[..want])
            .with_context(|| format!("reading {what}"))?;
        if n == 0 {
            return Err(ShortRead {
                what: what.to_owned(),
                got: bytes - left,
                want: bytes,
            }
            .into());
        }
        hasher.update(&buf[..n]);
        if let Some(to) = to.as_mut() {
            to.write_all(&buf[..n])
                .with_context(|| format!("writing {what}"))?;
        }
        left -= n as u64;
    }
    Ok(Sha256(hasher.finalize().into()))
}

/// Copies like [`copy_hashing`] and requires the digest to be `expected`.
pub fn copy_verified(
    from: &mut dyn Read,
    to: Option<&mut dyn Write>,
    bytes: u64,
    expected: &Sha256,
    what: &str,
) -> Result<()> {
    let got = copy_hashing(from, to, bytes, what)?;
    if &got != expected {
        bail!("{what}: sha256 is {got}, the manifest says {expected}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_hex_of_the_right_length() {
        let good = "ab".repeat(32);
        assert_eq!(Sha256::parse(&good, "x").unwrap().to_string(), good);
        assert!(Sha256::parse(&"AB".repeat(32), "x").is_err());
        assert!(Sha256::parse(&"ab".repeat(31), "x").is_err());
        assert!(Sha256::parse(&format!("{good}0"), "x").is_err());
        assert!(Sha256::parse(&"zz".repeat(32), "x").is_err());
    }
}
