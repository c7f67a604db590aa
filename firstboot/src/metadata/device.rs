//! Finding a metadata filesystem by its label on a live system: the NoCloud seed (`cidata`)
//! and the OpenStack config drive (`config-2`), each an ISO 9660 CD-ROM or a small vfat disk.

use std::path::{Path, PathBuf};

/// Lets udev finish probing devices (at most 10 s): we run early in boot, and a CD-ROM needs
/// its driver loaded and its label read before [`find_by_label`] can see it. Once per run:
/// under load a second `udevadm settle` can wait seconds again for unrelated events.
pub fn settle_udev() {
    let started = std::time::Instant::now();
    let _ = std::process::Command::new("udevadm")
        .args(["settle", "--timeout=10"])
        .status();
    crate::log::info(&format!(
        "waited {} ms for udev to finish probing devices (NoCloud seed and config drive lookup)",
        started.elapsed().as_millis()
    ));
}

/// The filesystem labelled one of `labels`, by label (after [`settle_udev`] when the caller
/// needs it); as a fallback we read the ISO 9660 volume id of the CD-ROM drives directly.
pub fn find_by_label(labels: &[&str]) -> Option<PathBuf> {
    for label in labels {
        let dev = Path::new("/dev/disk/by-label").join(label);
        if dev.exists() {
            return Some(dev);
        }
    }
    (0..4)
        .map(|i| PathBuf::from(format!("/dev/sr{i}")))
        .find(|dev| {
            iso9660_volume_id(dev)
                .is_some_and(|id| labels.iter().any(|l| id.eq_ignore_ascii_case(l)))
        })
}

/// The volume identifier of an ISO 9660 filesystem: 32 bytes at offset 40 of the primary
/// volume descriptor in sector 16.
fn iso9660_volume_id(dev: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(dev).ok()?;
    f.seek(SeekFrom::Start(16 * 2048)).ok()?;
    let mut pvd = [0u8; 72];
    f.read_exact(&mut pvd).ok()?;
    if &pvd[1..6] != b"CD001" {
        return None;
    }
    Some(String::from_utf8_lossy(&pvd[40..72]).trim_end().to_owned())
}
