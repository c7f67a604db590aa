//! The bundle's container: a strict subset of POSIX ustar, read and written here.
//!
//! Only what a bundle needs is accepted: `ustar\0` + `00` headers with a valid checksum,
//! regular files (type `0`), the whole name in the 100-byte `name` field (no `prefix`, no
//! link name), sizes in octal, zero padding, then the two zero blocks that end an archive
//! (trailing zero blocks up to one 10 KiB tar record are tolerated). Everything else: links,
//! directories, devices, FIFOs, PAX (`x`, `g`) and GNU (`L`, `K`, `ustar  `) headers, base-256
//! sizes, is refused by name rather than interpreted, so no name can be anything but what
//! the caller compares it with.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};

pub const BLOCK: u64 = 512;
/// Zero bytes tolerated after the end-of-archive blocks (one default tar record).
const TRAILER_MAX: u64 = 10240;

/// A header as read: the entry's name and size.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub size: u64,
}

/// Bytes of padding after `size` bytes of data.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the stream ends first.
fn read_full(from: &mut dyn Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = from.read(&mut buf[got..]).context("reading the bundle")?;
        if n == 0 {
            return Ok(false);
        }
        got += n;
    }
    Ok(true)
}

/// What follows where an entry or the end of the archive is expected.
pub enum Next {
    Entry(Header),
    End,
}

/// Reads the next header. `expected` names what should come, for messages.
pub fn read_header(from: &mut dyn Read, expected: &str) -> Result<Next> {
    let mut block = [0u8; BLOCK as usize];
    if !read_full(from, &mut block)? {
        bail!("bundle is truncated: it ends where the header of {expected} should be");
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(Next::End);
    }
    parse_header(&block).map(Next::Entry)
}

fn octal(field: &[u8], what: &str) -> Result<u64> {
    let end = field
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(field.len());
    let digits = &field[..end];
    if digits.is_empty()
        || !digits.iter().all(|b| (b'0'..=b'7').contains(b))
        || !field[end..].iter().all(|&b| b == 0 || b == b' ')
    {
        bail!(
            "tar header field {what} {:?} is not an octal number",
            String::from_utf8_lossy(field)
        );
    }
    let text = std::str::from_utf8(digits).expect("octal digits");
    u64::from_str_radix(text, 8)
        .with_context(|| format!("tar header field {what} {text:?} is too large"))
}

fn parse_header(block: &[u8; 512]) -> Result<Header> {
    let raw_name = &block[0..100];
    let name_end = raw_name.iter().position(|&b| b == 0).unwrap_or(100);
    let name = String::from_utf8_lossy(&raw_name[..name_end]).into_owned();
    let stored = octal(&block[148..156], "chksum")?;
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != computed {
        bail!("tar header of entry {name:?} has a bad checksum ({stored}, computed {computed})");
    }
    if &block[257..263] != b"ustar\0" || &block[263..265] != b"00" {
        bail!(
            "entry {name:?} is not a POSIX ustar header (magic {:?}); GNU and old tar formats are refused",
            String::from_utf8_lossy(&block[257..265])
        );
    }
    let kind = match block[156] {
        b'0' | 0 => None,
        b'1' => Some("a hard link"),
        b'2' => Some("a symbolic link"),
        b'3' => Some("a character device"),
        b'4' => Some("a block device"),
        b'5' => Some("a directory"),
        b'6' => Some("a FIFO"),
        b'7' => Some("a contiguous file"),
        b'x' | b'g' => Some("a PAX extended header"),
        b'L' | b'K' => Some("a GNU long name header"),
        _ => Some("of an unknown type"),
    };
    if let Some(kind) = kind {
        bail!(
            "entry {name:?} is {kind} (type {:?}); a bundle holds regular files only",
            char::from(block[156])
        );
    }
    if raw_name[name_end..].iter().any(|&b| b != 0) || name.is_empty() {
        bail!("entry {name:?} has a malformed name field");
    }
    if block[157..257].iter().any(|&b| b != 0) {
        bail!("entry {name:?} has a link name; a bundle holds regular files only");
    }
    if block[345..500].iter().any(|&b| b != 0) {
        bail!("entry {name:?} has a name prefix; bundle entry names are plain file names");
    }
    let size = octal(&block[124..136], "size")?;
    Ok(Header { name, size })
}

/// Skips the zero padding after an entry of `size` bytes.
pub fn skip_padding(from: &mut dyn Read, size: u64, name: &str) -> Result<()> {
    let mut pad = vec![0u8; padding(size) as usize];
    if !read_full(from, &mut pad)? {
        bail!("bundle is truncated: it ends in the padding after {name}");
    }
    if pad.iter().any(|&b| b != 0) {
        bail!("the padding after {name} is not zeros");
    }
    Ok(())
}

/// After the first zero block: the second one, then at most a record's worth of zeros.
pub fn read_end(from: &mut dyn Read) -> Result<()> {
    let mut block = [0u8; BLOCK as usize];
    if !read_full(from, &mut block)? {
        bail!("bundle is truncated: the second end-of-archive block is missing");
    }
    if block.iter().any(|&b| b != 0) {
        bail!("bundle has data after its end-of-archive block");
    }
    let mut rest = Vec::new();
    from.take(TRAILER_MAX + 1)
        .read_to_end(&mut rest)
        .context("reading the end of the bundle")?;
    if rest.len() as u64 > TRAILER_MAX || rest.iter().any(|&b| b != 0) {
        bail!("bundle has data after its end-of-archive blocks");
    }
    Ok(())
}

/// A ustar header for regular file `name` of `size` bytes (mode 0644, owner 0, time 0).
pub fn header(name: &str, size: u64) -> Result<[u8; 512]> {
    if name.is_empty() || name.len() > 99 || name.contains('/') {
        bail!("tar entry name {name:?} is not a short plain file name");
    }
    if size >= 1 << 33 {
        bail!("tar entry {name} is {size} bytes; ustar sizes stop below 8 GiB");
    }
    let mut block = [0u8; 512];
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].copy_from_slice(b"0000000\0");
    block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = b'0';
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(block)
}

/// Writes the zero padding after `size` bytes of data.
pub fn write_padding(to: &mut dyn Write, size: u64) -> Result<()> {
    to.write_all(&vec![0u8; padding(size) as usize])
        .context("writing tar padding")
}

/// Writes the two zero blocks that end an archive.
pub fn write_end(to: &mut dyn Write) -> Result<()> {
    to.write_all(&[0u8; 1024])
        .context("writing the end of the archive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_header_reads_back() {
        let block = header("usr.img", 12345).unwrap();
        assert_eq!(
            parse_header(&block).unwrap(),
            Header {
                name: "usr.img".into(),
                size: 12345
            }
        );
        assert!(header("../x", 1).is_err());
        assert!(header("x", 1 << 33).is_err());
    }

    #[test]
    fn other_types_are_refused() {
        let mut block = header("usr.img", 0).unwrap();
        block[156] = b'2';
        block[148..156].copy_from_slice(b"        ");
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let err = parse_header(&block).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
