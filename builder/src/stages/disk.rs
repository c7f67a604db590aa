//! Stages 4 and 5, filesystems and disk (design.md "Immutable /usr: as built", Disk): the read-only /usr as a
//! squashfs with its dm-verity tree, the state ext4 (everything but /usr), the ESP, and the
//! GPT of six partitions; then the targets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use axoha_boot_contract::layout::{
    state_bytes, Slot, ESP_NAME, ESP_SIZE, PART_ESP, PART_STATE, PART_USR_A, PART_USR_A_VERITY,
    STATE_NAME, VERITY_SIZE,
};
use axoha_disk::esp::Esp;
use axoha_disk::ext4::Ext4;
use axoha_disk::gpt::{
    Layout, Partition, Placed, ESP_TYPE, ROOT_X86_64_TYPE, USR_X86_64_TYPE, USR_X86_64_VERITY_TYPE,
};
use axoha_disk::verity::RootHash;
use axoha_disk::{sparse, squashfs, uuid, verity};

/// Identifiers derived from the definition's hash (same definition, same disk), but the
/// state partition's PARTUUID: the appliance's (its name and profile), the same for every
/// version. A node keeps its state partition through updates, and a signed slot's UKI names
/// it in its signed `.cmdline` (`root=PARTUUID=`), which the updater requires to be the
/// node's own (docs/secure-boot.md, "Updates").
pub struct Ids {
    pub disk: String,
    pub esp_part: String,
    pub state_part: String,
    pub state_fs: String,
    pub state_hash_seed: String,
    pub esp_volume: String,
    /// Slot B's PARTUUIDs until the first update sets them from its root hash.
    pub usr_b_part: String,
    pub usr_b_verity_part: String,
    /// `veritysetup format --salt` (64 hex digits) and `--uuid`.
    pub verity_salt: String,
    pub verity_uuid: String,
}

impl Ids {
    pub fn from_seed(seed: &str, appliance: &str) -> Ids {
        let salt = uuid::derived(seed, "usr-verity-salt-1").replace('-', "")
            + &uuid::derived(seed, "usr-verity-salt-2").replace('-', "");
        Ids {
            disk: uuid::derived(seed, "disk"),
            esp_part: uuid::derived(seed, "esp-partition"),
            state_part: uuid::derived(appliance, "state-partition"),
            state_fs: uuid::derived(seed, "state-filesystem"),
            state_hash_seed: uuid::derived(seed, "state-hash-seed"),
            esp_volume: uuid::fat_volume_id(seed),
            usr_b_part: uuid::derived(seed, "usr-b-partition"),
            usr_b_verity_part: uuid::derived(seed, "usr-b-verity-partition"),
            verity_salt: salt,
            verity_uuid: uuid::derived(seed, "usr-verity-uuid"),
        }
    }
}

/// The /usr image and its hash tree, made from the tree's /usr before the disk.
pub struct UsrImage {
    pub squashfs: PathBuf,
    pub verity: PathBuf,
    pub root_hash: RootHash,
}

/// Moves the tree's /usr out to `work/usr` (leaving an empty /usr mount point, same owner and
/// mode, in the state tree), makes the squashfs and its verity tree from it and removes it.
/// `slot_bytes`: `usr_slot_size`, which the squashfs must fit.
pub fn usr_image(
    ids: &Ids,
    tree: &Path,
    work: &Path,
    slot_bytes: u64,
    epoch: i64,
    level: u8,
) -> Result<UsrImage> {
    let usr = tree.join("usr");
    let md = std::fs::symlink_metadata(&usr).with_context(|| format!("{}", usr.display()))?;
    if !md.is_dir() {
        bail!("{}: /usr of the image is not a directory", usr.display());
    }
    let moved = work.join("usr");
    std::fs::rename(&usr, &moved)
        .with_context(|| format!("moving {} out of the state tree", usr.display()))?;
    // The empty mount point: a copy of the old directory's owner, mode (and times, clamped).
    std::fs::create_dir(&usr).with_context(|| format!("creating {}", usr.display()))?;
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::os::unix::fs::chown(&usr, Some(md.uid()), Some(md.gid()))?;
        std::fs::set_permissions(&usr, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    let squashfs = work.join("usr.img");
    squashfs::build(&moved, &squashfs, epoch, level)?;
    std::fs::remove_dir_all(&moved).with_context(|| format!("removing {}", moved.display()))?;
    let bytes = std::fs::metadata(&squashfs)?.len();
    if bytes > slot_bytes {
        bail!(
            "usr_slot_size = {} MiB is too small: the /usr squashfs is {} MiB ({bytes} bytes); \
             raise usr_slot_size in the definition (every node's slots have this size, so leave \
             room for updates)",
            slot_bytes >> 20,
            bytes.div_ceil(1 << 20)
        );
    }
    let verity_path = work.join("usr.verity");
    let root_hash = verity::format(&squashfs, &verity_path, &ids.verity_salt, &ids.verity_uuid)?;
    let tree_bytes = std::fs::metadata(&verity_path)?.len();
    if tree_bytes > VERITY_SIZE {
        bail!(
            "the /usr verity tree ({tree_bytes} bytes) does not fit its {} MiB partition",
            VERITY_SIZE >> 20
        );
    }
    Ok(UsrImage {
        squashfs,
        verity: verity_path,
        root_hash,
    })
}

/// The six partitions of the spec, in order.
pub fn layout(ids: &Ids, usr: &RootHash, slot_bytes: u64, state_bytes: u64) -> Layout {
    let part = |name, type_guid, uuid: String, size_bytes| Partition {
        name,
        type_guid,
        uuid,
        size_bytes,
    };
    Layout {
        disk_guid: ids.disk.clone(),
        partitions: vec![
            part(ESP_NAME, ESP_TYPE, ids.esp_part.clone(), ESP_SIZE),
            part(
                Slot::A.usr_name(),
                USR_X86_64_TYPE,
                usr.data_partuuid(),
                slot_bytes,
            ),
            part(
                Slot::A.verity_name(),
                USR_X86_64_VERITY_TYPE,
                usr.hash_partuuid(),
                VERITY_SIZE,
            ),
            part(
                Slot::B.usr_name(),
                USR_X86_64_TYPE,
                ids.usr_b_part.clone(),
                slot_bytes,
            ),
            part(
                Slot::B.verity_name(),
                USR_X86_64_VERITY_TYPE,
                ids.usr_b_verity_part.clone(),
                VERITY_SIZE,
            ),
            part(
                STATE_NAME,
                ROOT_X86_64_TYPE,
                ids.state_part.clone(),
                state_bytes,
            ),
        ],
    }
}

/// The definition's `disk_size` and `usr_slot_size`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub disk: u64,
    pub usr_slot: u64,
}

/// Builds the raw disk at `raw`: the GPT first, then the ESP and the state ext4 made in place
/// at their partitions' offsets, and slot A's squashfs and verity tree copied in (sparse).
/// Slot B stays zeros.
pub fn assemble(
    ids: &Ids,
    sizes: Sizes,
    epoch: i64,
    usr: &UsrImage,
    tree: &Path,
    esp_tree: &Path,
    raw: &Path,
) -> Result<Vec<Placed>> {
    let state =
        state_bytes(sizes.disk, sizes.usr_slot).context("no room for the state partition")?;
    let layout = layout(ids, &usr.root_hash, sizes.usr_slot, state);
    let f = std::fs::File::create(raw)?;
    f.set_len(layout.disk_size()?)?;
    drop(f);
    let placed = layout.write(raw)?;
    Esp {
        volume_id: ids.esp_volume.clone(),
        size_bytes: ESP_SIZE,
        epoch,
    }
    .build(esp_tree, raw, placed[PART_ESP - 1].offset)?;
    for (src, n) in [
        (&usr.squashfs, PART_USR_A),
        (&usr.verity, PART_USR_A_VERITY),
    ] {
        let p = placed[n - 1];
        sparse::place(src, raw, p.offset, p.size)?;
    }
    let p = placed[PART_STATE - 1];
    Ext4 {
        label: "axoha-state".into(),
        uuid: ids.state_fs.clone(),
        hash_seed: ids.state_hash_seed.clone(),
        size_bytes: p.size,
        epoch,
    }
    .build(tree, raw, p.offset)?;
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_partitions_state_last_and_ids_from_the_root_hash() {
        let ids = Ids::from_seed("seed", "edge debian-12");
        let next = Ids::from_seed("seed 2", "edge debian-12");
        assert_eq!(
            ids.state_part, next.state_part,
            "one state partition per appliance"
        );
        assert_ne!(ids.disk, next.disk);
        assert_ne!(
            ids.state_part,
            Ids::from_seed("seed", "core debian-12").state_part
        );
        assert_eq!(ids.verity_salt.len(), 64);
        let hash = RootHash::parse(&"ab".repeat(32)).unwrap();
        let l = layout(&ids, &hash, 1 << 30, 1 << 30);
        let names: Vec<&str> = l.partitions.iter().map(|p| p.name).collect();
        assert_eq!(names, axoha_boot_contract::layout::PARTITION_NAMES);
        assert_eq!(l.partitions[PART_USR_A - 1].uuid, hash.data_partuuid());
        assert_eq!(
            l.partitions[PART_USR_A_VERITY - 1].uuid,
            hash.hash_partuuid()
        );
        assert_eq!(l.partitions[PART_STATE - 1].uuid, ids.state_part);
    }
}
