//! newc cpio archives (the initramfs format the kernel unpacks), written in-process so the
//! installer initramfs is reproducible: fixed owners, times and inode numbers, sorted input.

use std::io::Write;

use anyhow::{bail, Context, Result};

pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device (major, minor): /dev/console must exist before devtmpfs is mounted,
    /// or PID 1 starts without stdin/stdout/stderr.
    CharDev(u32, u32),
}

pub struct Entry {
    /// Path inside the archive, without a leading `/`.
    pub path: String,
    pub mode: u32,
    pub kind: Kind,
}

fn header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    size: usize,
    rdev: (u32, u32),
    mtime: u32,
    name: &str,
) -> Result<()> {
    let namesize = name.len() + 1;
    // newc's fields are 8 hex digits: a larger value would shift every field after it.
    if u32::try_from(size).is_err() || u32::try_from(namesize).is_err() {
        bail!("cpio: {name:?} is too large for a newc archive ({size} bytes)");
    }
    write!(
        out,
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{mtime:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 1, 0, 0, rdev.0, rdev.1, 0
    )?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    pad(out, 110 + namesize)?;
    Ok(())
}

fn pad(out: &mut impl Write, len: usize) -> Result<()> {
    let n = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..n])?;
    Ok(())
}

/// Writes `entries` (parents before children) as one newc archive with a trailer.
pub fn write(out: &mut impl Write, entries: &[Entry], mtime: u32) -> Result<()> {
    for (i, e) in entries.iter().enumerate() {
        if e.path.is_empty() || e.path.starts_with('/') || e.path.split('/').any(|c| c == "..") {
            bail!("cpio: bad path {:?}", e.path);
        }
        let ino = u32::try_from(i + 1).context("cpio: more entries than newc numbers")?;
        let perm = e.mode & 0o7777;
        let (fmt, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
            Kind::Dir => (0o040000, &[], (0, 0)),
            Kind::File(d) => (0o100000, d, (0, 0)),
            Kind::Symlink(t) => (0o120000, t.as_bytes(), (0, 0)),
            Kind::CharDev(ma, mi) => (0o020000, &[], (*ma, *mi)),
        };
        header(out, ino, fmt | perm, data.len(), rdev, mtime, &e.path)?;
        out.write_all(data)?;
        pad(out, data.len())?;
    }
    header(out, 0, 0, 0, (0, 0), 0, "TRAILER!!!")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_newc() {
        let mut buf = Vec::new();
        write(
            &mut buf,
            &[
                Entry {
                    path: "dev".into(),
                    mode: 0o755,
                    kind: Kind::Dir,
                },
                Entry {
                    path: "dev/console".into(),
                    mode: 0o600,
                    kind: Kind::CharDev(5, 1),
                },
                Entry {
                    path: "init".into(),
                    mode: 0o755,
                    kind: Kind::File(b"#!x".to_vec()),
                },
            ],
            1_700_000_000,
        )
        .unwrap();
        assert!(buf.starts_with(b"070701"));
        assert_eq!(buf.len() % 4, 0);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("dev/console\0"));
        assert!(text.contains("TRAILER!!!\0"));
        // The console's header: mode 020600, rdev 5:1.
        let at = text.find("dev/console").unwrap() - 110;
        assert_eq!(&text[at + 14..at + 22], "00002180");
        assert_eq!(&text[at + 78..at + 94], "0000000500000001");
        assert!(write(
            &mut Vec::new(),
            &[Entry {
                path: "/x".into(),
                mode: 0,
                kind: Kind::Dir
            }],
            0
        )
        .is_err());
    }
}
