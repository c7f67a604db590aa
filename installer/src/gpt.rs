//! Growing the installed GPT to the target disk: the image's GPT describes a disk of the
//! image's size, so on a bigger disk the backup header sits in the middle and the rest is
//! unpartitioned. The installer moves the backup GPT to the disk's end and extends the last
//! partition (the state partition, `/`) to it; first boot then grows the ext4 filesystem online
//! (`x-systemd.growfs` in the image's fstab). Doing the table here rather than with
//! systemd-repart at boot: repart 252 cannot be relied on to re-read the partition table of
//! the disk the running root is on, and the installer is the one moment the disk is unused.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context, Result};

pub const SECTOR: u64 = 512;
/// The end of the grown partition is kept on a 1 MiB boundary, like every partition start.
const ALIGN: u64 = 2048;

/// CRC-32 (IEEE 802.3, reflected), the checksum GPT headers and entry arrays carry.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

// Callers check that `o + 4` / `o + 8` is inside `b` (fixed header offsets, or entries whose
// size was checked to be at least 128 bytes).
fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(v)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(v)
}
fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// What to write: `(lba, bytes)` pieces, and the grown partition's new size.
#[derive(Debug)]
pub struct Grown {
    pub writes: Vec<(u64, Vec<u8>)>,
    pub partition: usize,
    pub old_bytes: u64,
    pub new_bytes: u64,
}

/// Header with a fresh CRC over its first `size` bytes (pure).
fn seal(header: &mut [u8]) {
    let size = u32_at(header, 12) as usize;
    put_u32(header, 16, 0);
    let crc = crc32(&header[..size]);
    put_u32(header, 16, crc);
}

/// The GPT of `head` (LBA 0 up to the end of the entry array) grown to a disk of
/// `disk_sectors`; `None` when the disk has no room beyond the table (pure). Every field is
/// checked before use: this runs in PID 1, where a panic would be a kernel panic.
pub fn grow(head: &[u8], disk_sectors: u64) -> Result<Option<Grown>> {
    let hdr = head
        .get(SECTOR as usize..2 * SECTOR as usize)
        .context("short read of the GPT")?;
    if &hdr[0..8] != b"EFI PART" {
        bail!("no GPT on the disk after writing the image");
    }
    let hsize = u32_at(hdr, 12) as usize;
    let mut check = hdr[..hsize.min(SECTOR as usize)].to_vec();
    put_u32(&mut check, 16, 0);
    if hsize < 92 || hsize > SECTOR as usize || crc32(&check) != u32_at(hdr, 16) {
        bail!("the written GPT header is damaged (CRC mismatch)");
    }
    let (old_last_usable, entries_lba) = (u64_at(hdr, 48), u64_at(hdr, 72));
    let (count, esize) = (u32_at(hdr, 80) as usize, u32_at(hdr, 84) as usize);
    // UEFI: an entry is 128 * 2^n bytes (the fields read here end at byte 48).
    if esize < 128 || !esize.is_power_of_two() {
        bail!("malformed GPT: partition entry size {esize}");
    }
    let malformed = || format!("malformed GPT: {count} entries at LBA {entries_lba}");
    let start = entries_lba
        .checked_mul(SECTOR)
        .and_then(|b| usize::try_from(b).ok());
    let table_bytes = count.checked_mul(esize);
    let (Some(start), Some(table_bytes)) = (start, table_bytes) else {
        bail!(malformed());
    };
    let mut entries = start
        .checked_add(table_bytes)
        .and_then(|end| head.get(start..end))
        .with_context(malformed)?
        .to_vec();
    if crc32(&entries) != u32_at(hdr, 88) {
        bail!("the written GPT entry array is damaged (CRC mismatch)");
    }
    // Backup: entry array, then the header in the disk's last sector.
    let table_sectors = (table_bytes as u64).div_ceil(SECTOR);
    let backup_lba = disk_sectors.checked_sub(1);
    let backup_entries = backup_lba.and_then(|b| b.checked_sub(table_sectors));
    let last_usable = backup_entries.and_then(|b| b.checked_sub(1));
    let (Some(backup_lba), Some(backup_entries), Some(last_usable)) =
        (backup_lba, backup_entries, last_usable)
    else {
        return Ok(None);
    };
    if last_usable <= old_last_usable {
        return Ok(None);
    }
    let used = |i: usize| entries[i * esize..i * esize + 16].iter().any(|b| *b != 0);
    let last = (0..count)
        .filter(|i| used(*i))
        .max_by_key(|i| u64_at(&entries, i * esize + 40))
        .context("the GPT has no partitions")?;
    let (first, end) = (
        u64_at(&entries, last * esize + 32),
        u64_at(&entries, last * esize + 40),
    );
    if end < first {
        bail!(
            "malformed GPT: partition {} spans LBA {first} to {end}",
            last + 1
        );
    }
    let new_end = ((last_usable + 1) / ALIGN * ALIGN).saturating_sub(1);
    if new_end <= end {
        return Ok(None);
    }
    put_u64(&mut entries, last * esize + 40, new_end);

    let mut primary = hdr[..SECTOR as usize].to_vec();
    put_u64(&mut primary, 32, backup_lba);
    put_u64(&mut primary, 48, last_usable);
    put_u32(&mut primary, 88, crc32(&entries));
    let mut backup = primary.clone();
    put_u64(&mut backup, 24, backup_lba);
    put_u64(&mut backup, 32, 1);
    put_u64(&mut backup, 72, backup_entries);
    seal(&mut primary);
    seal(&mut backup);

    // The protective MBR covers the whole disk (or as much as 32 bits can say).
    let mut mbr = head[..SECTOR as usize].to_vec();
    if mbr[446 + 4] == 0xEE {
        put_u32(
            &mut mbr,
            446 + 12,
            (disk_sectors - 1).min(u64::from(u32::MAX)) as u32,
        );
    }
    let mut writes = vec![(0, mbr), (1, primary), (entries_lba, entries.clone())];
    writes.push((backup_entries, entries));
    writes.push((backup_lba, backup));
    // The image's own backup header, now inside the grown partition: cleared, so no tool
    // mistakes it for a second table.
    let old_backup = u64_at(hdr, 32);
    if old_backup > end && old_backup < backup_entries {
        writes.push((old_backup, vec![0; SECTOR as usize]));
    }
    Ok(Some(Grown {
        writes,
        partition: last + 1,
        old_bytes: (end + 1 - first) * SECTOR,
        new_bytes: (new_end + 1 - first) * SECTOR,
    }))
}

/// Grows the GPT just written to `disk` (of `disk_bytes`) to the whole disk; `None` when
/// the disk is the image's size.
pub fn grow_disk(disk: &str, disk_bytes: u64) -> Result<Option<Grown>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {disk}"))?;
    let mut head = vec![0u8; 34 * SECTOR as usize];
    f.read_exact(&mut head).context("reading the GPT")?;
    let Some(g) = grow(&head, disk_bytes / SECTOR)? else {
        return Ok(None);
    };
    for (lba, bytes) in &g.writes {
        f.seek(SeekFrom::Start(lba * SECTOR))?;
        f.write_all(bytes)
            .with_context(|| format!("writing the GPT at sector {lba} of {disk}"))?;
    }
    f.sync_all().with_context(|| format!("fsync {disk}"))?;
    Ok(Some(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// A GPT as sfdisk writes it for a 64 MiB disk: ESP then root up to the last usable LBA.
    fn table(sectors: u64) -> Vec<u8> {
        let mut d = vec![0u8; 34 * SECTOR as usize];
        d[446 + 4] = 0xEE;
        put_u32(&mut d, 446 + 12, (sectors - 1) as u32);
        let mut entries = vec![0u8; 128 * 128];
        entries[0..16].copy_from_slice(&[1; 16]);
        put_u64(&mut entries, 32, 2048);
        put_u64(&mut entries, 40, 4095);
        entries[128..144].copy_from_slice(&[2; 16]);
        put_u64(&mut entries, 128 + 32, 4096);
        put_u64(&mut entries, 128 + 40, sectors - 34);
        let h = &mut d[512..1024];
        h[0..8].copy_from_slice(b"EFI PART");
        put_u32(h, 8, 0x0001_0000);
        put_u32(h, 12, 92);
        put_u64(h, 24, 1);
        put_u64(h, 32, sectors - 1);
        put_u64(h, 40, 34);
        put_u64(h, 48, sectors - 34);
        put_u64(h, 72, 2);
        put_u32(h, 80, 128);
        put_u32(h, 84, 128);
        put_u32(h, 88, crc32(&entries));
        seal(h);
        d[1024..1024 + entries.len()].copy_from_slice(&entries);
        d
    }

    #[test]
    fn grows_the_last_partition_and_moves_the_backup() {
        let old = 64 << 11; // 64 MiB in sectors
        let new = 100 << 11;
        let g = grow(&table(old), new).unwrap().unwrap();
        assert_eq!(g.partition, 2);
        assert_eq!(g.new_bytes, (new - 2048 - 4096) * SECTOR);
        let at = |lba: u64| &g.writes.iter().find(|(l, _)| *l == lba).unwrap().1;
        let primary = at(1);
        assert_eq!(u64_at(primary, 32), new - 1);
        assert_eq!(u64_at(primary, 48), new - 34);
        let backup = at(new - 1);
        assert_eq!(
            (u64_at(backup, 24), u64_at(backup, 32), u64_at(backup, 72)),
            (new - 1, 1, new - 33)
        );
        for h in [primary, backup] {
            let mut c = h[..92].to_vec();
            put_u32(&mut c, 16, 0);
            assert_eq!(crc32(&c), u32_at(h, 16));
            assert_eq!(u32_at(h, 88), crc32(at(new - 33)));
        }
        assert_eq!(u32_at(at(0), 446 + 12), (new - 1) as u32);
        assert!(at(old - 1).iter().all(|b| *b == 0), "old backup cleared");
    }

    /// `table` with header field `at` set to `v` (CRC made valid again, so the field's own
    /// check is what must refuse it).
    fn with_field(at: usize, v: u32) -> Vec<u8> {
        let mut t = table(64 << 11);
        put_u32(&mut t[512..1024], at, v);
        seal(&mut t[512..1024]);
        t
    }

    #[test]
    fn malformed_tables_are_errors_not_panics() {
        for (at, v) in [(84, 0), (84, 16), (84, 129), (80, u32::MAX), (72, u32::MAX)] {
            assert!(
                grow(&with_field(at, v), 100 << 11).is_err(),
                "field {at} = {v}"
            );
        }
        let t = table(64 << 11);
        for sectors in [0, 1, 33, 34, 2048] {
            assert!(grow(&t, sectors).unwrap().is_none(), "{sectors} sectors");
        }
        assert!(grow(&t[..600], 100 << 11).is_err());
    }

    #[test]
    fn same_size_disk_is_left_alone_and_damage_is_refused() {
        let t = table(64 << 11);
        assert!(grow(&t, 64 << 11).unwrap().is_none());
        let mut bad = t.clone();
        bad[1024 + 40] ^= 1;
        assert!(grow(&bad, 100 << 11).is_err());
    }
}
