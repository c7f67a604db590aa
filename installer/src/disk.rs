//! The target disk: its size, writing the decompressed image, and the ESP loader entry.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;

use anyhow::{bail, Context, Result};
use axoha_boot_contract::{budget, entry, layout, owner};

/// The EFI system partition type GUID, as stored on disk (mixed endian):
/// C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const ESP_TYPE_BYTES: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
const SECTOR: u64 = 512;
const CHUNK: usize = 1 << 20;

/// Size in bytes of a block device (BLKGETSIZE64) or a regular file (for tests).
#[allow(unsafe_code)]
pub fn size(path: &str) -> Result<u64> {
    let f = File::open(path).with_context(|| format!("target disk {path} does not exist"))?;
    let md = f.metadata()?;
    if md.file_type().is_block_device() {
        let mut bytes: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64.
        let rc = unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                0x8008_1272 as libc::c_ulong,
                &mut bytes as *mut u64,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("BLKGETSIZE64");
        }
        Ok(bytes)
    } else if md.is_file() {
        Ok(md.len())
    } else {
        bail!("{path} is neither a block device nor a file")
    }
}

/// Zeroes `len` bytes at `offset`: BLKZEROOUT on a block device (thin storage keeps it
/// unallocated), plain zero writes where that is refused.
#[allow(unsafe_code)]
fn zero(f: &mut File, offset: u64, len: u64, buf: &[u8]) -> Result<()> {
    let range = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length).
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), 0x127f as libc::c_ulong, range.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Whether a chunk is all zeros, eight bytes at a time: under QEMU's TCG a byte loop over the
/// image's 3 GiB costs more than the zstd decompression itself.
fn is_zero(buf: &[u8]) -> bool {
    let words = buf.chunks_exact(8);
    let tail = words.remainder();
    tail.iter().all(|b| *b == 0) && words.into_iter().all(|w| w == [0u8; 8])
}

/// Decompresses `image` (zstd) onto `disk`; returns the bytes written. Zero chunks are
/// zeroed (not skipped: the disk may hold an older system), each run of them with one
/// BLKZEROOUT, then everything is fsynced. Never more than `limit` bytes (what the image's
/// frame header records, checked against the disk): a stream that decompresses to more is an
/// error before it passes the end.
pub fn write_image(
    image: &[u8],
    disk: &str,
    limit: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut out = OpenOptions::new()
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {disk} for writing"))?;
    let mut dec = zstd::stream::read::Decoder::with_buffer(image).context("zstd stream")?;
    let mut buf = vec![0u8; CHUNK];
    let zeros = vec![0u8; CHUNK];
    let mut at = 0u64;
    // The run of zero chunks not yet zeroed: (offset, length).
    let mut zeros_at = (0u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = dec
                .read(&mut buf[filled..])
                .context("decompressing the image")?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if at + filled as u64 > limit {
            bail!("the image decompresses to more than the {limit} bytes its header records");
        }
        if is_zero(&buf[..filled]) {
            if zeros_at.1 == 0 {
                zeros_at.0 = at;
            }
            zeros_at.1 += filled as u64;
        } else {
            if zeros_at.1 > 0 {
                zero(&mut out, zeros_at.0, zeros_at.1, &zeros)?;
                zeros_at.1 = 0;
            }
            out.seek(SeekFrom::Start(at))?;
            out.write_all(&buf[..filled])
                .with_context(|| format!("writing {disk} at {at}"))?;
        }
        at += filled as u64;
        progress(at);
    }
    if zeros_at.1 > 0 {
        zero(&mut out, zeros_at.0, zeros_at.1, &zeros)?;
    }
    out.sync_all().with_context(|| format!("fsync {disk}"))?;
    Ok(at)
}

/// The uncompressed size recorded in the zstd frame header (the builder always writes it).
pub fn image_size(image: &[u8]) -> Result<u64> {
    match zstd::zstd_safe::get_frame_content_size(image) {
        Ok(Some(n)) => Ok(n),
        _ => bail!("the image's zstd frame does not record its size (not made by axoha-image?)"),
    }
}

/// (offset, size) in bytes of the first ESP in a GPT, given the disk's first 34 sectors'
/// worth of header and entries (pure). Every field of the image's GPT is checked before use:
/// a malformed table is an error, never a panic or a wrapped-around offset.
pub fn find_esp(head: &[u8]) -> Result<(u64, u64)> {
    let hdr = head
        .get(SECTOR as usize..2 * SECTOR as usize)
        .context("short read of the GPT header")?;
    if &hdr[0..8] != b"EFI PART" {
        bail!("no GPT on the disk after writing the image");
    }
    let u64_at = |b: &[u8], o: usize| -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let u32_at = |b: &[u8], o: usize| -> u32 {
        let mut v = [0u8; 4];
        v.copy_from_slice(&b[o..o + 4]);
        u32::from_le_bytes(v)
    };
    let entries_lba = u64_at(hdr, 72);
    let count = u32_at(hdr, 80);
    let size = u32_at(hdr, 84) as usize;
    // UEFI: an entry is 128 * 2^n bytes; the fields we read end at byte 48.
    if size < 128 || !size.is_power_of_two() {
        bail!("malformed GPT: partition entry size {size}");
    }
    let table = entries_lba
        .checked_mul(SECTOR)
        .and_then(|b| usize::try_from(b).ok())
        .with_context(|| format!("malformed GPT: partition entries at LBA {entries_lba}"))?;
    for i in 0..count.min(128) as usize {
        let Some(start) = i.checked_mul(size).and_then(|o| o.checked_add(table)) else {
            break;
        };
        let Some(e) = start.checked_add(size).and_then(|end| head.get(start..end)) else {
            break;
        };
        if e[0..16] == ESP_TYPE_BYTES {
            let (first, last) = (u64_at(e, 32), u64_at(e, 40));
            let bytes = last
                .checked_sub(first)
                .and_then(|n| n.checked_add(1))
                .and_then(|n| n.checked_mul(SECTOR));
            let offset = first.checked_mul(SECTOR);
            let (Some(offset), Some(bytes)) = (offset, bytes) else {
                bail!("malformed GPT: the ESP spans LBA {first} to {last}");
            };
            return Ok((offset, bytes));
        }
    }
    bail!("no EFI system partition in the written image")
}

/// A window of the disk, so fatfs sees the ESP as if it were its own device.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len.saturating_sub(self.pos) as usize).min(buf.len());
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (self.len.saturating_sub(self.pos) as usize).min(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::other("write past the end of the ESP"));
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::End(d) => self.len as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if new < 0 {
            return Err(std::io::Error::other("seek before the start of the ESP"));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// The image's loader entry, where the node's arguments go (the boot contract's).
pub use axoha_boot_contract::entry::IMAGE_ENTRY as ENTRY;

/// The loader entry's `options` line fits the kernel's command line once systemd-boot adds
/// its `initrd=` (pure): a longer line would be cut at boot, silently dropping the node's
/// last arguments.
pub fn check_options_length(entry: &str) -> Result<()> {
    budget::check_options(entry::options_of(entry)).map_err(|total| {
        anyhow::anyhow!(
            "the installed loader entry's options make a {total}-byte kernel command line, \
             more than the kernel's {}",
            budget::MAX
        )
    })
}

/// The ESP's node file for an entry that boots a signed UKI: under Secure Boot its own
/// `.cmdline` is all the kernel gets, so the node's metadata (`axoha.KEY=VALUE`) goes into
/// the node file first boot reads (one argument a line). `None` for a kernel entry, whose
/// `options` carry them (pure).
pub fn node_file(entry_text: &str, args: &[String]) -> Option<String> {
    if !entry::is_uki(entry_text) {
        return None;
    }
    Some(
        args.iter()
            .filter(|a| owner::owner(a) == owner::Owner::Node)
            .map(|a| format!("{a}\n"))
            .collect(),
    )
}

/// Appends the node's arguments to the installed ESP's loader entry, with fatfs (no mount:
/// the installer kernel need not have vfat, and nothing is left mounted if we fail).
pub fn persist_args(disk: &str, args: &[String]) -> Result<String> {
    let mut file = OpenOptions::new().read(true).write(true).open(disk)?;
    let mut head = vec![0u8; 34 * SECTOR as usize];
    file.read_exact(&mut head).context("reading the GPT")?;
    let (start, len) = find_esp(&head)?;
    let slice = Slice {
        file,
        start,
        len,
        pos: 0,
    };
    let fs =
        fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).context("opening the ESP (FAT)")?;
    let root = fs.root_dir();
    let mut text = String::new();
    root.open_file(ENTRY)
        .with_context(|| format!("opening {ENTRY} on the ESP"))?
        .read_to_string(&mut text)?;
    let new = entry::add_args(&text, args);
    check_options_length(&new)?;
    let node = node_file(&text, args);
    let mut f = root.open_file(ENTRY)?;
    f.truncate()?;
    f.write_all(new.as_bytes())?;
    f.flush()?;
    drop(f);
    if let Some(node) = node {
        let mut f = root
            .create_file(layout::NODE_FILE)
            .with_context(|| format!("creating {} on the ESP", layout::NODE_FILE))?;
        f.truncate()?;
        f.write_all(node.as_bytes())?;
        f.flush()?;
    }
    drop(root);
    fs.unmount().context("writing the ESP back")?;
    OpenOptions::new().write(true).open(disk)?.sync_all()?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_esp_in_a_gpt() {
        let mut d = vec![0u8; 34 * 512];
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        // Entry 0: some other type; entry 1: the ESP at LBA 2048..264191.
        d[1024..1040].copy_from_slice(&[1; 16]);
        let e = 1024 + 128;
        d[e..e + 16].copy_from_slice(&ESP_TYPE_BYTES);
        d[e + 32..e + 40].copy_from_slice(&2048u64.to_le_bytes());
        d[e + 40..e + 48].copy_from_slice(&264191u64.to_le_bytes());
        assert_eq!(find_esp(&d).unwrap(), (2048 * 512, 128 << 20));
        d[512] = b'X';
        assert!(find_esp(&d).is_err());
    }

    #[test]
    fn a_signed_entry_gets_a_node_file_of_the_metadata() {
        let args = ["axoha.role=primary".to_owned(), "net.ifnames=0".to_owned()];
        let kernel = "title t\nlinux /axoha/a/vmlinuz\noptions usrhash=ab\n";
        assert_eq!(node_file(kernel, &args), None);
        let signed = "title t\nefi /axoha/a/linux.efi\noptions usrhash=ab\n";
        assert_eq!(
            node_file(signed, &args).as_deref(),
            Some("axoha.role=primary\n")
        );
    }

    #[test]
    fn options_must_fit_the_kernel_command_line() {
        let entry = |n: usize| format!("title a\noptions root=x {}\n", "a".repeat(n));
        assert!(check_options_length(&entry(2000)).is_ok());
        let err = check_options_length(&entry(2100)).unwrap_err().to_string();
        assert!(err.contains("2047"), "{err}");
    }

    #[test]
    fn a_malformed_gpt_is_an_error_not_a_panic() {
        let good = {
            let mut d = vec![0u8; 34 * 512];
            d[512..520].copy_from_slice(b"EFI PART");
            d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
            d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
            d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
            d[1024..1040].copy_from_slice(&ESP_TYPE_BYTES);
            d[1024 + 32..1024 + 40].copy_from_slice(&2048u64.to_le_bytes());
            d[1024 + 40..1024 + 48].copy_from_slice(&4095u64.to_le_bytes());
            d
        };
        assert_eq!(find_esp(&good).unwrap(), (2048 * 512, 2048 * 512));
        let with = |at: usize, bytes: &[u8]| {
            let mut d = good.clone();
            d[at..at + bytes.len()].copy_from_slice(bytes);
            d
        };
        for (what, d) in [
            ("entry size 0", with(512 + 84, &0u32.to_le_bytes())),
            ("entry size 16", with(512 + 84, &16u32.to_le_bytes())),
            ("entry size huge", with(512 + 84, &u32::MAX.to_le_bytes())),
            (
                "entries at LBA max",
                with(512 + 72, &u64::MAX.to_le_bytes()),
            ),
            (
                "entries past the head",
                with(512 + 72, &40u64.to_le_bytes()),
            ),
            ("last before first", with(1024 + 40, &1u64.to_le_bytes())),
            ("first LBA max", with(1024 + 32, &u64::MAX.to_le_bytes())),
            ("last LBA max", with(1024 + 40, &u64::MAX.to_le_bytes())),
            ("short", good[..600].to_vec()),
        ] {
            assert!(find_esp(&d).is_err(), "{what}");
        }
    }

    #[test]
    fn zstd_size_is_read_from_the_frame() {
        let data = vec![7u8; 100_000];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.set_pledged_src_size(Some(data.len() as u64)).unwrap();
        enc.include_contentsize(true).unwrap();
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(image_size(&z).unwrap(), 100_000);
        assert!(image_size(b"not zstd").is_err());
    }

    #[test]
    fn writes_onto_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::write(&disk, vec![0xffu8; 3 << 20]).unwrap();
        let mut data = vec![0u8; 3 << 20];
        data[5] = 1;
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let n = write_image(&z, disk.to_str().unwrap(), 3 << 20, |_| {}).unwrap();
        assert!(write_image(&z, disk.to_str().unwrap(), (3 << 20) - 1, |_| {}).is_err());
        assert_eq!(n, 3 << 20);
        assert_eq!(
            std::fs::read(&disk).unwrap(),
            data,
            "zero chunks are zeroed too"
        );
        // A run of zero chunks at the end, and one between data chunks.
        let mut data = vec![0u8; 5 << 20];
        data[(2 << 20) + 3] = 9;
        std::fs::write(&disk, vec![0xffu8; 5 << 20]).unwrap();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        write_image(&z, disk.to_str().unwrap(), 5 << 20, |_| {}).unwrap();
        assert_eq!(std::fs::read(&disk).unwrap(), data);
        assert!(is_zero(&[0; 13]) && !is_zero(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
    }
}
