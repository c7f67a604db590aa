//! Copying a partition image into a disk image, skipping runs of zeros so both stay sparse.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

const CHUNK: usize = 1 << 20;

/// Writes `src` into `disk` at `offset`; `src` must fit in `room` bytes.
pub fn place(src: &Path, disk: &Path, offset: u64, room: u64) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let len = input.metadata()?.len();
    if len > room {
        bail!(
            "{} ({len} bytes) does not fit its partition ({room} bytes)",
            src.display()
        );
    }
    let mut out = OpenOptions::new()
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            out.seek(SeekFrom::Start(offset + pos))?;
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", disk.display()))?;
        }
        pos += n as u64;
    }
    out.sync_all()?;
    Ok(())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = f.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Copies a file keeping holes (for the raw artifact and test copies).
pub fn copy(src: &Path, dst: &Path) -> Result<()> {
    let len = File::open(src)?.metadata()?.len();
    let f = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    f.set_len(len)?;
    drop(f);
    place(src, dst, 0, len)
}
