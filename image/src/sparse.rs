//! Copying a partition image into a disk image, skipping runs of zeros so both stay sparse.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

const CHUNK: usize = 1 << 20;

/// Writes `src` into `disk` at `offset`; `src` must fit in `room` bytes. Only the data
/// segments of `src` are read (SEEK_DATA/SEEK_HOLE), and zero chunks within them are skipped.
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
    while pos < len {
        let Some((start, end)) = next_data(&input, pos, len)? else {
            break;
        };
        input.seek(SeekFrom::Start(start))?;
        let mut at = start;
        while at < end {
            let want = CHUNK.min((end - at) as usize);
            let n = read_full(&mut input, &mut buf[..want])?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|b| *b != 0) {
                let to = offset
                    .checked_add(at)
                    .context("partition offset past 64 bits")?;
                out.seek(SeekFrom::Start(to))?;
                out.write_all(&buf[..n])
                    .with_context(|| format!("writing {}", disk.display()))?;
            }
            at += n as u64;
        }
        pos = end;
    }
    out.sync_all()?;
    Ok(())
}

/// The next data segment at or after `pos`, as (start, end); `None` when only a hole is left.
fn next_data(f: &File, pos: u64, len: u64) -> Result<Option<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let start = match lseek(fd, pos as i64, Whence::SeekData) {
        Ok(s) => s as u64,
        Err(nix::errno::Errno::ENXIO) => return Ok(None),
        // A filesystem without SEEK_DATA: treat the rest as data.
        Err(_) => return Ok(Some((pos, len))),
    };
    let end = match lseek(fd, start as i64, Whence::SeekHole) {
        Ok(e) => e as u64,
        Err(_) => len,
    };
    Ok(Some((start, end.min(len))))
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
